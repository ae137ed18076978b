//! Damaged objects are reported by fsck and never read back as data; gc
//! removes only what nothing reaches.

use monofs::object::Kind;
use monofs::store::Table;
use monofs::{Error, InitOptions, NoProgress, Repository};
use monofs_fixtures::{Rng, write};

use super::{commit, opts};

fn repo_with_data(dir: &std::path::Path) -> (Repository, monofs::ObjectId) {
    let repo = Repository::init(&dir.join("repo"), InitOptions::default()).expect("init");
    let src = dir.join("src");
    write(&src.join("a/big.bin"), &Rng::new(1).bytes(300_000));
    write(&src.join("small"), b"small file");
    let rev = commit(&repo, &src, "data");
    (repo, rev)
}

fn chunk_ids(repo: &Repository) -> Vec<monofs::ObjectId> {
    let mut ids = Vec::new();
    repo.store()
        .scan(Table::Objects, b"", &mut |k, v| {
            let id = monofs::ObjectId::from_slice(k).expect("id");
            if repo.codec().open(&id, v).map(|(kind, _)| kind == Kind::Chunk).unwrap_or(false) {
                ids.push(id);
            }
            true
        })
        .expect("scan");
    ids
}

#[test]
fn corrupt_and_truncated_chunks_are_named_by_fsck_and_never_returned() {
    for damage in ["flip", "truncate", "delete"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, rev) = repo_with_data(dir.path());
        assert!(repo.fsck().expect("fsck").is_sound());
        let victim = chunk_ids(&repo)[0];
        let mut stored = repo.store().get(Table::Objects, victim.as_bytes()).expect("get").expect("present");
        let mut tx = repo.begin().expect("tx");
        match damage {
            "flip" => {
                let last = stored.len() - 1;
                stored[last] ^= 0x01;
                tx.put(Table::Objects, victim.as_bytes(), &stored).expect("put");
            }
            "truncate" => {
                stored.truncate(stored.len() / 2);
                tx.put(Table::Objects, victim.as_bytes(), &stored).expect("put");
            }
            _ => tx.delete(Table::Objects, victim.as_bytes()).expect("delete"),
        }
        tx.commit().expect("commit");
        let report = repo.fsck().expect("fsck");
        assert_eq!(report.problems.len(), 1, "{damage}: {:?}", report.problems);
        assert_eq!(report.problems[0].id, victim);
        assert_eq!(report.problems[0].paths, vec!["a/big.bin".to_string()], "{damage}");
        let out = tempfile::tempdir().expect("tempdir");
        let root = repo.read_revision(&rev).expect("rev").root;
        let err = repo.restore(&root, out.path(), false, &NoProgress).expect_err("restore of damaged data");
        assert!(matches!(err, Error::Corrupt { .. } | Error::MissingObject(_)), "{damage}: unexpected error {err}");
        assert!(!out.path().join("a/big.bin").exists(), "{damage}: a truncated file passes for the file");
    }
}

#[test]
fn gc_removes_only_unreachable_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, rev) = repo_with_data(dir.path());
    // The empty tree made by init is unreachable once the first commit moved
    // the working tree.
    assert_eq!(repo.gc().expect("gc").removed, 1);
    let mut tx = repo.begin().expect("tx");
    let orphan = repo.put_object(tx.as_mut(), Kind::Chunk, b"nobody refers to me").expect("put");
    tx.commit().expect("commit");
    let summary = repo.gc().expect("gc");
    assert_eq!(summary.removed, 1);
    assert!(!repo.has_object(&orphan).expect("has"));
    assert!(repo.fsck().expect("fsck").is_sound());
    let out = tempfile::tempdir().expect("tempdir");
    let root = repo.read_revision(&rev).expect("rev").root;
    repo.restore(&root, out.path(), false, &NoProgress).expect("restore after gc");
    assert_eq!(std::fs::read(out.path().join("small")).expect("read"), b"small file");
    assert_eq!(repo.gc().expect("second gc").removed, 0);
}

#[test]
fn a_second_open_reports_the_lock_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _) = repo_with_data(dir.path());
    let err = Repository::open(repo.path(), &mut || Ok(Vec::new())).expect_err("second open");
    let Error::Locked { pid, .. } = &err else { panic!("unexpected {err}") };
    assert_eq!(pid, &std::process::id().to_string());
    drop(repo);
    Repository::open(&dir.path().join("repo"), &mut || Ok(Vec::new())).expect("open after release");
}

#[test]
fn stat_cache_skips_unchanged_files_and_notices_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init");
    let src = dir.path().join("src");
    for i in 0..20 {
        write(&src.join(format!("f{i}")), &Rng::new(i).bytes(1000));
    }
    // Files changed within the last second are never cached (racy stat).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = repo.commit_dir(&src, &opts("one"), &NoProgress).expect("commit");
    assert_eq!(first.reused_files, 0);
    let second = repo.commit_dir(&src, &opts("two"), &NoProgress).expect("commit");
    assert_eq!(second.reused_files, 20);
    assert_eq!(second.root, first.root);
    // Same size, new bytes: the changed ctime/mtime must force a re-read.
    write(&src.join("f3"), &Rng::new(99).bytes(1000));
    let third = repo.commit_dir(&src, &opts("three"), &NoProgress).expect("commit");
    assert_eq!(third.reused_files, 19);
    assert_ne!(third.root, first.root);
}

/// Damage to the store file's own structures, checked page by page when
/// fsck opens it: a damaged commit slot is a clear error, never a panic
/// (a plain open panicked in redb on damage of its allocator state, and
/// fsck reported 0 problems before panicking as it closed); damage to
/// 4 KiB pages all over the first 128 KiB is either repaired by redb or
/// reported, and an open after it works or fails cleanly.
#[test]
fn fsck_verifies_the_store_file_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _) = repo_with_data(dir.path());
    drop(repo);
    let path = dir.path().join("repo");
    let file = path.join(monofs::repo::STORE_FILE);
    let clean = std::fs::read(&file).expect("read");
    let no_passphrase = &mut || Ok(Vec::new());
    let verified = Repository::open_verified(&path, no_passphrase).expect("open a sound store");
    assert!(verified.fsck().expect("fsck").is_sound());
    drop(verified);
    // A commit slot of redb's header.
    let mut bytes = clean.clone();
    bytes[113..123].fill(0xff);
    std::fs::write(&file, &bytes).expect("damage");
    let damaged = Repository::open_verified(&path, no_passphrase);
    assert!(matches!(damaged, Err(Error::Store(_))), "{:?}", damaged.err());
    for offset in (4096..clean.len().min(128 << 10)).step_by(4096 + 300) {
        let mut bytes = clean.clone();
        bytes[offset..offset + 10].fill(0xa5);
        std::fs::write(&file, &bytes).expect("damage");
        let checked = std::panic::catch_unwind(|| {
            let Ok(repo) = Repository::open_verified(&path, &mut || Ok(Vec::new())) else { return };
            let _ = repo.fsck();
        });
        assert!(checked.is_ok(), "fsck panicked on damage at {offset}");
    }
}

/// A hard link whose target is no file of its tree (what a bug in storing
/// renamed directories left behind) is a problem for fsck, named by path.
#[test]
fn fsck_finds_hard_links_to_nothing() {
    use monofs::object::{Dir, Entry, EntryKind, Meta};

    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _) = repo_with_data(dir.path());
    let link = Entry {
        name: b"dangling".to_vec(),
        kind: EntryKind::HardLink { target: b"A/f".to_vec() },
        meta: Meta::default(),
    };
    let ((root, _), mut tx, _) = repo
        .write_objects(|sink| {
            let d = Dir { entries: vec![link], size: 0 };
            Ok((sink.put(Kind::Dir, &d.encode())?, ()))
        })
        .expect("write");
    repo.set_ref(tx.as_mut(), monofs::repo::WORKTREE, &root).expect("set");
    tx.commit().expect("commit");
    let report = repo.fsck().expect("fsck");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].error.contains("dangling") && report.problems[0].error.contains("A/f"));
}

/// Files small enough to live inside their directory count as unique
/// data (`stats` said "0 B" and a compression ratio of 0.00x for them),
/// once however many revisions and directories hold them.
#[test]
fn stats_count_files_kept_inside_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init");
    write(&dir.path().join("src/a"), b"twelve bytes");
    write(&dir.path().join("src/b"), b"eight by");
    write(&dir.path().join("src/sub/same-as-a"), b"twelve bytes");
    commit(&repo, &dir.path().join("src"), "one");
    commit(&repo, &dir.path().join("src"), "again");
    let stats = repo.stats().expect("stats");
    assert_eq!(stats.unique_bytes, 20);
    assert!(stats.compression_ratio() > 0.0);
}
