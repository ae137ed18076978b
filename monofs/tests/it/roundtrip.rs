//! Commit then restore gives back the same tree; the same tree always gets
//! the same root id.

use std::path::Path;

use monofs::repo::ChunkerParams;
use monofs::{InitOptions, NoProgress, Repository};
use monofs_fixtures::{Rng, assert_same_tree, make_tree, set_mtime, write};
use proptest::prelude::*;

use super::{commit, memory_repo, restore};

#[test]
fn fixture_tree_round_trips_plain_and_encrypted() {
    let src = tempfile::tempdir().expect("tempdir");
    make_tree(src.path());
    for passphrase in [None, Some(b"pw".to_vec())] {
        let repo = Repository::in_memory(InitOptions {
            passphrase,
            kdf: monofs::crypto::KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 },
            ..Default::default()
        })
        .expect("repo");
        let rev = commit(&repo, src.path(), "one");
        let out = tempfile::tempdir().expect("tempdir");
        restore(&repo, &rev, &out.path().join("t"));
        assert_same_tree(src.path(), &out.path().join("t"));
    }
}

#[test]
fn deep_chunk_lists_round_trip() {
    // Tiny chunks force a file across several list levels (fan-out 2048).
    let repo = Repository::in_memory(InitOptions {
        chunker: Some(ChunkerParams { min: 64, avg: 256, max: 1024 }),
        ..Default::default()
    })
    .expect("repo");
    let src = tempfile::tempdir().expect("tempdir");
    let data = Rng::new(7).bytes(3 << 20);
    write(&src.path().join("big"), &data);
    let rev = commit(&repo, src.path(), "big");
    let root = repo.read_dir(&repo.read_revision(&rev).expect("rev").root).expect("root");
    let monofs::object::EntryKind::File { content: monofs::object::Content::List(list), size } = &root.entries[0].kind
    else {
        panic!("expected a chunk list");
    };
    assert_eq!(*size, data.len() as u64);
    assert!(repo.read_chunk_list(list).expect("list").level >= 1, "expected a multi-level list");
    let out = tempfile::tempdir().expect("tempdir");
    restore(&repo, &rev, out.path());
    assert_eq!(std::fs::read(out.path().join("big")).expect("read"), data);
}

#[test]
fn unchanged_tree_gets_the_same_root_in_any_repository() {
    let src = tempfile::tempdir().expect("tempdir");
    make_tree(src.path());
    let (a, b) = (memory_repo(), memory_repo());
    let ra = a.read_revision(&commit(&a, src.path(), "x")).expect("rev").root;
    let rb = b.read_revision(&commit(&b, src.path(), "y")).expect("rev").root;
    assert_eq!(ra, rb);
}

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>, u32),
    Dir(Vec<(String, Node)>),
    Link(String),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (proptest::collection::vec(any::<u8>(), 0..2000), prop_oneof![Just(0o644u32), Just(0o600), Just(0o755)])
            .prop_map(|(d, m)| Node::File(d, m)),
        (0usize..4000, any::<u8>()).prop_map(|(n, b)| Node::File(vec![b; n * 50], 0o644)),
        "[a-z./]{1,12}".prop_map(Node::Link),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        proptest::collection::btree_map("[a-zA-Z0-9_ -]{1,8}", inner, 0..6)
            .prop_map(|m| Node::Dir(m.into_iter().collect()))
    })
}

fn materialise(path: &Path, node: &Node) {
    match node {
        Node::File(data, mode) => {
            write(path, data);
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(*mode)).expect("chmod");
            set_mtime(path, 1_600_000_000 + data.len() as i64, 7);
        }
        Node::Link(target) => std::os::unix::fs::symlink(target, path).expect("symlink"),
        Node::Dir(children) => {
            std::fs::create_dir_all(path).expect("mkdir");
            for (name, child) in children {
                materialise(&path.join(name), child);
            }
            set_mtime(path, 1_500_000_000, 0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(children in proptest::collection::btree_map("[a-z]{1,6}", node(), 0..8)) {
        let src = tempfile::tempdir().expect("tempdir");
        let tree = src.path().join("t");
        materialise(&tree, &Node::Dir(children.into_iter().collect()));
        let repo = memory_repo();
        let rev = commit(&repo, &tree, "p");
        let out = tempfile::tempdir().expect("tempdir");
        restore(&repo, &rev, &out.path().join("t"));
        assert_same_tree(&tree, &out.path().join("t"));
        let again = repo.commit_dir(&tree, &super::opts("again"), &NoProgress).expect("commit");
        prop_assert_eq!(again.root, repo.read_revision(&rev).expect("rev").root);
    }
}

#[test]
fn checkout_restores_the_root_directory_itself() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let src = tempfile::tempdir().expect("tempdir");
    let tree = src.path().join("t");
    write(&tree.join("f"), b"x");
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    set_mtime(&tree, 1_234_567_890, 42);
    let repo = memory_repo();
    let rev = commit(&repo, &tree, "root meta");
    let out = tempfile::tempdir().expect("tempdir");
    let target = out.path().join("t");
    repo.restore_revision(&rev, &target, false, &NoProgress).expect("restore");
    let (a, b) = (std::fs::metadata(&tree).expect("stat"), std::fs::metadata(&target).expect("stat"));
    assert_eq!(b.mode() & 0o7777, 0o750);
    assert_eq!((b.mtime(), b.mtime_nsec()), (a.mtime(), a.mtime_nsec()));
    assert_eq!((b.uid(), b.gid()), (a.uid(), a.gid()));
}

/// A sparse file is committed without reading its holes, as a dense copy
/// would be, and comes back sparse, with the same bytes: runs of zeros are
/// holes in the restored file (and are not read back from the store).
#[test]
fn sparse_files_restore_sparse() {
    use std::os::unix::fs::{FileExt as _, MetadataExt as _};

    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    let size = 48u64 << 20;
    let file = std::fs::File::create(src.path().join("disk.img")).expect("create");
    file.set_len(size).expect("set_len");
    let island = Rng::new(5).bytes(300_000);
    file.write_all_at(&island, 20 << 20).expect("write");
    file.write_all_at(b"tail", size - 4).expect("write");
    drop(file);
    let rev = commit(&repo, src.path(), "sparse");
    // Its holes were skipped, not read, yet it is stored as a dense copy is.
    let dense = std::fs::read(src.path().join("disk.img")).expect("read");
    let chunker = monofs::content::Chunker::for_repo(&repo);
    let ((whole, _), tx, _) =
        repo.write_objects(|sink| chunker.store(sink, &mut &dense[..], Path::new("dense"), |_| {})).expect("store");
    tx.commit().expect("commit");
    let root = repo.read_dir(&repo.read_revision(&rev).expect("rev").root).expect("root");
    let monofs::object::EntryKind::File { content, .. } = &root.entries[0].kind else { panic!("not a file") };
    assert!(*content == whole, "a sparse commit stored other chunks");
    let out = tempfile::tempdir().expect("tempdir");
    restore(&repo, &rev, out.path());
    let path = out.path().join("disk.img");
    let back = std::fs::read(&path).expect("read");
    assert_eq!(back.len() as u64, size);
    assert!(back[20 << 20..(20 << 20) + island.len()] == island[..]);
    assert_eq!(&back[back.len() - 4..], b"tail");
    let zeros = back.iter().filter(|b| **b == 0).count() as u64;
    assert!(zeros >= size - island.len() as u64 - 4, "the holes read as zeros");
    let allocated = std::fs::metadata(&path).expect("metadata").blocks() * 512;
    assert!(allocated < 4 << 20, "{allocated} bytes allocated for {size} sparse bytes");
}

/// Attributes the target refuses (here a namespace no file system takes
/// from a process) do not stop a restore; they are counted and the first
/// is named.
#[test]
fn refused_xattrs_are_counted_not_dropped_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = std::sync::Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = monofs::vfs::Vfs::new(repo.clone(), None).expect("vfs");
    let ino = vfs.create(monofs::vfs::ROOT, b"f", 0o644, 0, 0).expect("create").ino;
    vfs.write(ino, 0, b"content").expect("write");
    vfs.setxattr(ino, b"user.kept", b"1", false, false).expect("xattr");
    vfs.setxattr(ino, b"system.monofs_test", b"2", false, false).expect("xattr");
    // A namespace Linux does not have is refused there and then, as ext4
    // refuses it, rather than stored to fail at checkout.
    let bogus = vfs.setxattr(ino, b"bogus.t", b"3", false, false).expect_err("bogus.t");
    assert_eq!(bogus.errno(), nix::libc::EOPNOTSUPP);
    vfs.release(ino);
    let opts = monofs::CommitOptions { message: "x".into(), author: "t".into(), time: None, discard_changes: false };
    let rev = vfs.commit(&opts).expect("commit").revision;
    let out = dir.path().join("out");
    let summary = repo.restore_revision(&rev, &out, false, &NoProgress).expect("restore");
    assert_eq!(std::fs::read(out.join("f")).expect("read"), b"content");
    assert_eq!(summary.xattrs_lost, 1, "{summary:?}");
    let first = summary.first_xattr_lost.expect("named");
    assert!(first.contains("system.monofs_test") && first.contains("/f"), "{first}");
}
