//! Trees built or changed with the editor equal trees snapshotted from disk.

use std::path::Path;

use monofs::content::Chunker;
use monofs::edit::TreeEditor;
use monofs::object::{EntryKind, Meta, Timestamp};
use monofs::{NoProgress, ObjectId, Repository};
use monofs_fixtures::{set_mtime, write};

use super::{commit, memory_repo};

const T: Timestamp = Timestamp { sec: 1_500_000_000, nsec: 5 };

fn meta(mode: u32) -> Meta {
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    Meta { mode, uid, gid, mtime: T, xattrs: Vec::new() }
}

/// Applies `f` to an editor over `base` and writes the result.
fn edit(
    repo: &Repository,
    base: Option<&ObjectId>,
    f: impl FnOnce(&mut TreeEditor<'_>, &monofs::repo::ObjectSink<'_>) + Send,
) -> ObjectId {
    let ((root, _), tx, _) = repo
        .write_objects(|sink| {
            let mut ed = TreeEditor::new(repo, base)?;
            f(&mut ed, sink);
            ed.finish(sink)
        })
        .expect("edit");
    tx.commit().expect("commit");
    root
}

fn file(repo: &Repository, sink: &monofs::repo::ObjectSink<'_>, data: &[u8]) -> EntryKind {
    let (content, size) = Chunker::for_repo(repo).store(sink, &mut &data[..], Path::new("mem"), |_| {}).expect("store");
    EntryKind::File { size, content }
}

fn disk_tree(d: &Path) {
    use std::os::unix::fs::PermissionsExt;
    write(&d.join("a/x"), b"hello");
    std::fs::hard_link(d.join("a/x"), d.join("a/link")).expect("link");
    write(&d.join("big"), &vec![7u8; 100_000]);
    std::os::unix::fs::symlink("a/x", d.join("sym")).expect("symlink");
    for p in ["a/x", "big"] {
        std::fs::set_permissions(d.join(p), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        set_mtime(&d.join(p), T.sec, 5);
    }
    set_mtime(&d.join("sym"), T.sec, 5);
    std::fs::set_permissions(d.join("a"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    set_mtime(&d.join("a"), T.sec, 5);
}

#[test]
fn built_tree_equals_snapshot_of_the_same_tree() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    disk_tree(src.path());
    let from_disk = repo.read_revision(&commit(&repo, src.path(), "disk")).expect("rev").root;
    let built = edit(&repo, None, |ed, sink| {
        // Tar order: the link names an earlier path that sorts after it.
        ed.mkdir(b"a", meta(0o755)).expect("mkdir");
        ed.put(b"a/x", file(&repo, sink, b"hello"), meta(0o644)).expect("put");
        ed.put(b"a/link", EntryKind::HardLink { target: b"a/x".to_vec() }, Meta::default()).expect("link");
        ed.put(b"big", file(&repo, sink, &vec![7u8; 100_000]), meta(0o644)).expect("put");
        ed.put(b"sym", EntryKind::Symlink { target: b"a/x".to_vec() }, meta(0o777)).expect("symlink");
    });
    assert_eq!(built, from_disk);
}

#[test]
fn edits_change_only_what_they_touch() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    disk_tree(src.path());
    let base = repo.read_revision(&commit(&repo, src.path(), "disk")).expect("rev").root;
    // Removing the holder of a hard-link group promotes the other member.
    let after = edit(&repo, Some(&base), |ed, _| {
        assert!(ed.remove(b"a/link").expect("remove"));
        assert!(!ed.remove(b"nope/x").expect("remove missing"));
    });
    let out = tempfile::tempdir().expect("tempdir");
    repo.restore(&after, out.path(), false, &NoProgress).expect("restore");
    assert_eq!(std::fs::read(out.path().join("a/x")).expect("read"), b"hello");
    assert!(!out.path().join("a/link").exists());
    let changes: Vec<String> = repo
        .diff_trees(&base, &after)
        .expect("diff")
        .iter()
        .map(|c| format!("{} {}", c.status.letter(), c.path))
        .collect();
    // a/x names the same file as before: the layout changed, not the file.
    assert_eq!(changes, ["D a/link"]);

    // Opaque clear, then re-add: unrelated subtrees keep their ids.
    let cleared = edit(&repo, Some(&base), |ed, sink| {
        ed.clear(b"a").expect("clear");
        ed.put(b"a/new", file(&repo, sink, b"n"), meta(0o600)).expect("put");
    });
    let (old_root, new_root) = (repo.read_dir(&base).expect("dir"), repo.read_dir(&cleared).expect("dir"));
    assert_eq!(old_root.get(b"big"), new_root.get(b"big"));
    let names: Vec<String> = repo
        .diff_trees(&base, &cleared)
        .expect("diff")
        .iter()
        .map(|c| format!("{} {}", c.status.letter(), c.path))
        .collect();
    assert_eq!(names, ["D a/link", "A a/new", "D a/x"]);
}

#[test]
fn bad_paths_are_refused() {
    let repo = memory_repo();
    let ((), tx, _) = repo
        .write_objects(|sink| {
            let mut ed = TreeEditor::new(&repo, None)?;
            for bad in [&b"../x"[..], b"a/../../x", b"a\0b"] {
                assert!(ed.put(bad, file(&repo, sink, b"x"), meta(0o644)).is_err(), "{bad:?}");
            }
            assert!(ed.put(b"self", EntryKind::HardLink { target: b"self".to_vec() }, Meta::default()).is_err());
            let dangling = ed.put(b"l", EntryKind::HardLink { target: b"missing".to_vec() }, Meta::default());
            assert!(dangling.is_err(), "a link to nothing was accepted");
            ed.mkdir(b"d", meta(0o755))?;
            assert!(ed.put(b"l", EntryKind::HardLink { target: b"d".to_vec() }, Meta::default()).is_err());
            Ok(())
        })
        .expect("edit");
    drop(tx);
}

/// A hard link names the file at its target when it was made, as `tar`
/// extraction does: replacing the target's path afterwards (a new file, a
/// whiteout and a file, a symlink; in the same layer or a later one) leaves
/// the link's content, and a link to a link joins the first link's file.
#[test]
fn links_keep_the_file_they_were_made_to() {
    use std::os::unix::fs::MetadataExt as _;

    let repo = memory_repo();
    let link = |t: &[u8]| EntryKind::HardLink { target: t.to_vec() };
    let lower = edit(&repo, None, |ed, sink| {
        ed.put(b"f", file(&repo, sink, b"data"), meta(0o644)).expect("put");
        ed.put(b"h", link(b"f"), Meta::default()).expect("link");
        ed.put(b"h2", link(b"h"), Meta::default()).expect("link to a link");
        // Within one layer: made, linked, replaced.
        ed.put(b"g", file(&repo, sink, b"old g"), meta(0o644)).expect("put");
        ed.put(b"k", link(b"g"), Meta::default()).expect("link");
        ed.put(b"g", file(&repo, sink, b"new g"), meta(0o644)).expect("replace");
        ed.put(b"k2", link(b"g"), Meta::default()).expect("link to the new g");
        // Replaced by a directory that a later entry implies.
        ed.put(b"d", file(&repo, sink, b"was a file"), meta(0o644)).expect("put");
        ed.put(b"dl", link(b"d"), Meta::default()).expect("link");
        ed.put(b"d/x", file(&repo, sink, b"x"), meta(0o644)).expect("put below");
    });
    let upper = edit(&repo, Some(&lower), |ed, sink| {
        ed.put(b"f", file(&repo, sink, b"new"), meta(0o644)).expect("replace f");
        ed.put(b"h3", link(b"h"), Meta::default()).expect("link to an old link");
        ed.put(b"s", file(&repo, sink, b"s"), meta(0o644)).expect("put");
    });
    let whited = edit(&repo, Some(&lower), |ed, _| {
        assert!(ed.remove(b"f").expect("whiteout"));
        ed.put(b"f", EntryKind::Symlink { target: b"/etc/passwd".to_vec() }, meta(0o777)).expect("symlink");
    });
    let out = tempfile::tempdir().expect("tempdir");
    let read = |dir: &str, name: &str| std::fs::read(out.path().join(dir).join(name)).expect(name);
    let ino = |dir: &str, name: &str| std::fs::symlink_metadata(out.path().join(dir).join(name)).expect(name).ino();
    for (dir, root) in [("lower", lower), ("upper", upper), ("whited", whited)] {
        repo.restore(&root, &out.path().join(dir), false, &NoProgress).expect("restore");
    }
    assert_eq!(read("lower", "h2"), b"data");
    assert_eq!((ino("lower", "f"), ino("lower", "h2")), (ino("lower", "h"), ino("lower", "h")));
    assert_eq!((read("lower", "k"), read("lower", "k2")), (b"old g".to_vec(), b"new g".to_vec()));
    assert_eq!(ino("lower", "g"), ino("lower", "k2"));
    assert_eq!(read("lower", "dl"), b"was a file");
    assert_eq!(read("lower", "d/x"), b"x");
    assert_ne!(ino("lower", "g"), ino("lower", "k"));
    assert_eq!(read("upper", "f"), b"new");
    for name in ["h", "h2", "h3"] {
        assert_eq!(read("upper", name), b"data", "{name} followed the new f");
        assert_eq!(ino("upper", name), ino("upper", "h"));
    }
    assert_ne!(ino("upper", "f"), ino("upper", "h"));
    assert!(std::fs::symlink_metadata(out.path().join("whited/f")).expect("f").file_type().is_symlink());
    assert_eq!((read("whited", "h"), read("whited", "h2")), (b"data".to_vec(), b"data".to_vec()));
}
