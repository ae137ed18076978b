//! A full disk and I/O errors in the store, on a small tmpfs: nothing the
//! store said it had is lost, nothing is marked stored that was not, and
//! the store goes on once space is freed.

use std::sync::Arc;

use monofs::vfs::{ROOT, Vfs};
use monofs::{InitOptions, Repository};
use monofs_fixtures::{Rng, SmallFs};

/// Bytes free on `disk` (to root, which the tests run as).
fn free(disk: &SmallFs) -> u64 {
    let fs = nix::sys::statvfs::statvfs(&disk.0).expect("statvfs");
    fs.blocks_free() * fs.fragment_size()
}

/// Fills `disk` with a file until `leave` bytes are free (none: until a
/// write fails); returns the file, to remove for room again.
fn fill(disk: &SmallFs, leave: u64) -> std::path::PathBuf {
    let filler = disk.0.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    if leave == 0 {
        while std::io::Write::write_all(&mut f, &[1u8; 1 << 16]).is_ok() {}
    } else {
        let bytes = vec![1u8; free(disk).saturating_sub(leave) as usize];
        std::io::Write::write_all(&mut f, &bytes).expect("fill the disk");
    }
    filler
}

/// A flush whose commit fails (here: the disk is full) leaves every change
/// pending: directories are not taken as stored under ids the store never
/// got, so the next flush, once there is room, stores them, and the tree
/// reloads whole. (A flush used to mark them stored before the commit; the
/// next one then pointed the working tree at a root that did not exist.)
#[test]
fn a_failed_flush_leaves_every_change_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallFs::mount(&dir.path().join("disk"), 16) else { return };
    let path = disk.0.join("repo");
    let repo = Arc::new(Repository::init(&path, InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    // Leave less room on the disk than a commit asks for.
    let filler = fill(&disk, 1 << 20);
    let mut ino = ROOT;
    for name in [&b"a"[..], b"b", b"c"] {
        ino = vfs.mkdir(ino, name, 0o755, 0, 0).expect("mkdir").ino;
    }
    let err = vfs.flush().expect_err("no room to store the directories");
    assert!(err.is_disk_full(), "{err}");
    std::fs::remove_file(&filler).expect("free the disk");
    let root = vfs.flush().expect("flush once there is room");
    assert_eq!(repo.worktree().expect("worktree"), root);
    let again = Vfs::new(repo, None).expect("the stored tree loads");
    let mut ino = ROOT;
    for name in [&b"a"[..], b"b", b"c"] {
        ino = again.lookup(ino, name).expect("stored").ino;
    }
}

/// An I/O error inside the store (here a full disk that the free-space
/// check did not foresee: a large value outside the object packs) makes
/// redb refuse every later call until the file is opened again. The store
/// opens it again by itself, so once space is freed the mount's flushes
/// work again and nothing is lost.
#[test]
fn the_store_recovers_from_an_io_error() {
    use monofs::store::Table;

    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallFs::mount(&dir.path().join("disk"), 16) else { return };
    let repo = Arc::new(Repository::init(&disk.0.join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let a = Rng::new(5).bytes(1 << 20);
    let ino = vfs.create(ROOT, b"a", 0o644, 0, 0).expect("create").ino;
    vfs.write(ino, 0, &a).expect("write");
    vfs.flush().expect("flush with room");

    let filler = fill(&disk, 0);
    let mut tx = repo.begin().expect("begin");
    let latched = tx.put(Table::Meta, b"pad", &[7u8; 4 << 20]).map_err(monofs::Error::from).and_then(|()| {
        tx.commit()?;
        Ok(())
    });
    let err = latched.expect_err("4 MiB on a full disk");
    assert!(err.is_disk_full(), "{err}");

    let b = Rng::new(6).bytes(100_000);
    let ino = vfs.create(ROOT, b"b", 0o644, 0, 0).expect("create").ino;
    vfs.write(ino, 0, &b).expect("write");
    assert!(vfs.flush().is_err(), "the disk is still full");
    std::fs::remove_file(&filler).expect("free the disk");
    vfs.flush().expect("flush once there is room again");

    let again = Vfs::new(repo, None).expect("the stored tree loads");
    for (name, want) in [(&b"a"[..], &a), (b"b", &b)] {
        let ino = again.lookup(ROOT, name).expect("stored").ino;
        assert_eq!(&again.read(ino, 0, 2 << 20).expect("read")[..], &want[..]);
    }
}

/// Relaxed commits (a bulk copy's) can leave their pages for the next
/// commit to write: the free-space check counts them, so a disk without
/// room for them is refused before redb fails, and the store goes on once
/// space is freed. (Uncounted, redb failed on the write and the store
/// stayed failed, as opening it again would drop the relaxed commit.)
#[test]
fn relaxed_commits_count_against_the_free_space() {
    use monofs::store::{RedbStore, Store};

    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallFs::mount(&dir.path().join("disk"), 64) else { return };
    let path = disk.0.join("s.redb");
    let store = RedbStore::create(&path).expect("create");
    let put = |keys: std::ops::Range<u8>, relaxed: bool| -> Result<(), monofs::store::StoreError> {
        let mut tx = store.begin()?;
        if relaxed {
            tx.set_relaxed()?;
        }
        for k in keys {
            tx.put_object(&[k; 32], &Rng::new(u64::from(k)).bytes(1 << 20), false)?;
        }
        tx.commit()
    };
    put(0..20, true).expect("a relaxed commit of 20 MiB");
    let filler = fill(&disk, 8 << 20);
    let err = put(20..21, false).expect_err("no room for what the relaxed commit left unwritten");
    assert!(monofs::Error::Store(err).is_disk_full());
    std::fs::remove_file(&filler).expect("free the disk");
    put(21..22, false).expect("a commit once there is room");
    drop(store);
    let again = RedbStore::open(&path).expect("reopen");
    for k in [0u8, 19, 21] {
        let frame = again.get_frame(&[k; 32]).expect("read").expect("stored");
        assert_eq!(&frame[..], &Rng::new(u64::from(k)).bytes(1 << 20)[..]);
    }
}

/// gc on a nearly full disk frees what it can: the packs nothing points
/// into go first, in a commit that adds nothing; rewriting packs that are
/// partly garbage is refused for want of room, and the store file still
/// shrinks.
#[test]
fn gc_frees_space_on_a_full_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallFs::mount(&dir.path().join("disk"), 32) else { return };
    let path = disk.0.join("repo");
    let repo = Arc::new(Repository::init(&path, InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let keep = Rng::new(8).bytes(300_000);
    for (name, data) in [(&b"keep"[..], keep.clone()), (b"big", Rng::new(9).bytes(8 << 20))] {
        let ino = vfs.create(ROOT, name, 0o644, 0, 0).expect("create").ino;
        vfs.write(ino, 0, &data).expect("write");
    }
    vfs.flush().expect("flush");
    vfs.unlink(ROOT, b"big").expect("rm");
    vfs.flush().expect("flush");
    drop(vfs);
    let Ok(repo) = Arc::try_unwrap(repo) else { panic!("another handle on the repository") };

    // Nearly full: less room than a commit that adds objects asks for,
    // enough for redb's pages of one that only removes.
    fill(&disk, 1 << 20);
    let before = free(&disk);
    repo.gc().expect("gc on a full disk");
    let after = free(&disk);
    assert!(after >= before + (6 << 20), "gc freed {} KiB", (after - before) >> 10);
    drop(repo);
    let repo = Arc::new(Repository::open(&path, &mut || Ok(Vec::new())).expect("open"));
    assert!(repo.fsck().expect("fsck").is_sound());
    let vfs = Vfs::new(repo, None).expect("vfs");
    let ino = vfs.lookup(ROOT, b"keep").expect("kept").ino;
    assert_eq!(&vfs.read(ino, 0, 1 << 20).expect("read")[..], &keep[..]);
}

/// An `init` that fails (a full disk) or is killed before it wrote its
/// config leaves nothing that blocks the next one: the directory is not
/// taken for a repository (nor for an unfinished clone), and `init` there
/// works once there is room. A real repository is still refused.
#[test]
fn an_init_that_failed_or_died_can_be_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallFs::mount(&dir.path().join("disk"), 16) else { return };
    let path = disk.0.join("repo");
    let filler = fill(&disk, 0);
    let failed = Repository::init(&path, InitOptions::default());
    assert!(failed.as_ref().is_err_and(monofs::Error::is_disk_full), "{:?}", failed.err());
    assert!(!path.join(monofs::repo::STORE_FILE).exists(), "the failed init left its store");
    std::fs::remove_file(filler).expect("rm");
    drop(Repository::init(&path, InitOptions::default()).expect("init again"));
    let again = Repository::init(&path, InitOptions::default());
    assert!(matches!(again, Err(monofs::Error::AlreadyARepository(_))), "{:?}", again.err());

    // Killed after the store was made, before the config: a store with
    // its tables and nothing else.
    let killed = dir.path().join("killed");
    std::fs::create_dir(&killed).expect("mkdir");
    drop(monofs::store::RedbStore::create(&killed.join(monofs::repo::STORE_FILE)).expect("store"));
    let opened = Repository::open(&killed, &mut || Ok(Vec::new()));
    assert!(matches!(opened, Err(monofs::Error::NotARepository(_))), "{:?}", opened.err());
    drop(Repository::init(&killed, InitOptions::default()).expect("init over the remains"));
    assert!(Repository::open(&killed, &mut || Ok(Vec::new())).is_ok());

    // Killed while the store file had no header yet: not taken for a
    // repository (it said "already a monofs repository"), nor overwritten.
    let headless = dir.path().join("headless");
    std::fs::create_dir(&headless).expect("mkdir");
    std::fs::write(headless.join(monofs::repo::STORE_FILE), [0u8; 100]).expect("write");
    let err = Repository::init(&headless, InitOptions::default()).expect_err("refused").to_string();
    assert!(err.contains("not a store monofs can read") && err.contains("remove it"), "{err}");
    assert_eq!(std::fs::read(headless.join(monofs::repo::STORE_FILE)).expect("kept"), [0u8; 100]);
}

/// A repository on read-only media (a backup disk mounted `ro`) opens for
/// reading: its history, trees and file contents come back, and changes
/// fail with an error instead of the open failing on the lock file.
#[test]
fn a_repository_on_read_only_media_can_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallFs::mount(&dir.path().join("disk"), 32) else { return };
    let path = disk.0.join("repo");
    let src = dir.path().join("src");
    let data = Rng::new(21).bytes(200_000);
    monofs_fixtures::write(&src.join("a/file"), &data);
    let repo = Repository::init(&path, InitOptions::default()).expect("init");
    let rev = super::commit(&repo, &src, "on the backup disk");
    drop(repo);
    disk.set_writable(false);
    let repo = Repository::open(&path, &mut || Ok(Vec::new())).expect("open read-only");
    assert_eq!(repo.head().expect("head"), Some(rev));
    assert_eq!(repo.log(false).expect("log").len(), 1);
    let out = dir.path().join("out");
    repo.restore_revision(&rev, &out, false, &monofs::NoProgress).expect("checkout --to");
    assert!(std::fs::read(out.join("a/file")).expect("read") == data);
    let report = repo.fsck().expect("fsck");
    assert!(report.is_sound() && matches!(report.store, monofs::store::Integrity::Unchecked(_)));
    drop(repo);
    let repo = Repository::open_verified(&path, &mut || Ok(Vec::new())).expect("fsck's open, read-only");
    let refused = repo.commit_dir(&src, &super::opts("no room for it"), &monofs::NoProgress);
    assert!(refused.is_err(), "a commit on read-only media succeeded");
    drop(repo);
    disk.set_writable(true);
}
