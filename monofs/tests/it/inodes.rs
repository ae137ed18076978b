//! Inode numbers across sessions of a mounted tree: kept for stored names,
//! never given again once a session that may have given them out ended
//! without storing them (an NFS client keeps them in its file handles).

use std::sync::Arc;

use monofs::vfs::{ROOT, Vfs};
use monofs::{InitOptions, Repository};

#[test]
fn numbers_a_crashed_session_gave_out_are_not_given_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let kept = vfs.create(ROOT, b"kept", 0o644, 0, 0).expect("create").ino;
    vfs.flush().expect("flush");
    let lost = vfs.create(ROOT, b"lost", 0o644, 0, 0).expect("create").ino;
    // A crash: the session ends without storing "lost".
    drop(vfs);
    let vfs = Vfs::new(repo.clone(), None).expect("vfs again");
    assert_eq!(vfs.lookup(ROOT, b"kept").expect("lookup").ino, kept, "a stored name keeps its number");
    assert!(vfs.lookup(ROOT, b"lost").is_err());
    for i in 0..100 {
        let ino = vfs.create(ROOT, format!("new{i}").as_bytes(), 0o644, 0, 0).expect("create").ino;
        assert_ne!(ino, lost, "a number the crashed session gave out was given again");
    }
}

/// Hard links reload from the store wherever their names are: two names
/// in one subdirectory (the tree could not be loaded: the link was looked
/// up before its directory was named in its parent), and a group whose
/// first name's directory was renamed after a flush (the other name's
/// directory, unchanged, kept a link to the old path).
#[test]
fn hard_links_reload_after_flushes_and_renames() {
    use monofs::vfs::RenameMode;

    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let x = vfs.mkdir(ROOT, b"x", 0o755, 0, 0).expect("mkdir").ino;
    let b = vfs.create(x, b"b", 0o644, 0, 0).expect("create").ino;
    vfs.write(b, 0, b"same file").expect("write");
    vfs.link(b, x, b"a").expect("link in the same directory");
    let a_dir = vfs.mkdir(ROOT, b"A", 0o755, 0, 0).expect("mkdir").ino;
    let d = vfs.mkdir(ROOT, b"D", 0o755, 0, 0).expect("mkdir").ino;
    let f = vfs.create(a_dir, b"f", 0o644, 0, 0).expect("create").ino;
    vfs.write(f, 0, b"linked across").expect("write");
    vfs.link(f, d, b"g").expect("link");
    vfs.flush().expect("flush");
    vfs.rename(ROOT, b"A", ROOT, b"B", RenameMode::Replace).expect("rename the first name's directory");
    vfs.flush().expect("flush");
    drop(vfs);
    let vfs = Vfs::new(repo.clone(), None).expect("the tree loads again");
    let read = |parent, name: &[u8]| {
        let ino = vfs.lookup(parent, name).expect("lookup").ino;
        (ino, vfs.read(ino, 0, 100).expect("read").to_vec())
    };
    let x = vfs.lookup(ROOT, b"x").expect("x").ino;
    let ((ia, a), (ib, b)) = (read(x, b"a"), read(x, b"b"));
    assert_eq!((ia, a.as_slice()), (ib, &b"same file"[..]));
    assert_eq!(b, b"same file");
    let (bd, dd) = (vfs.lookup(ROOT, b"B").expect("B").ino, vfs.lookup(ROOT, b"D").expect("D").ino);
    let ((i1, c1), (i2, c2)) = (read(bd, b"f"), read(dd, b"g"));
    assert_eq!((i1, c1.as_slice()), (i2, &b"linked across"[..]));
    assert_eq!(c2, b"linked across");
    assert_eq!(vfs.getattr(i1).expect("attr").nlink, 2);
    drop(vfs);
    let Ok(repo) = Arc::try_unwrap(repo) else { panic!("another handle on the repository") };
    let out = dir.path().join("out");
    let root = repo.worktree().expect("worktree");
    repo.restore(&root, &out, false, &monofs::NoProgress).expect("checkout --to");
    assert_eq!(std::fs::read(out.join("D/g")).expect("D/g"), b"linked across");
}

/// A tree 5000 directories deep (mkdir and chdir, again and again) is
/// stored and loaded again without overflowing a thread's stack: storing
/// it recursed once per level, and the mount died with its changes.
#[test]
fn very_deep_trees_are_stored_and_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Arc::new(Vfs::new(repo.clone(), None).expect("vfs"));
    let mut at = ROOT;
    for _ in 0..5000 {
        at = vfs.mkdir(at, b"d", 0o755, 0, 0).expect("mkdir").ino;
    }
    let f = vfs.create(at, b"deep", 0o644, 0, 0).expect("create").ino;
    vfs.write(f, 0, b"at the bottom").expect("write");
    // On a thread with a small stack, as FUSE's and the flusher's are.
    let flushed = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn({
            let vfs = vfs.clone();
            move || vfs.flush().map(drop)
        })
        .expect("spawn")
        .join()
        .expect("the flush overflowed its stack");
    flushed.expect("flush");
    drop(vfs);
    let loaded = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || Vfs::new(repo, None).map(|_| ()))
        .expect("spawn")
        .join()
        .expect("the load overflowed its stack");
    loaded.expect("load");
}

/// Files stop at 16 TiB, as on ext4: a truncate to 2^62 is EFBIG at once
/// (it was taken, and the mount was killed for memory at its next flush).
#[test]
fn files_stop_at_sixteen_tebibytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo, None).expect("vfs");
    let f = vfs.create(ROOT, b"sparse", 0o644, 0, 0).expect("create").ino;
    let size = |n| monofs::vfs::SetAttr { size: Some(n), ..Default::default() };
    let err = vfs.setattr(f, size(1 << 62)).expect_err("2^62 bytes");
    assert_eq!(err.errno(), nix::libc::EFBIG);
    assert_eq!(vfs.write(f, (16 << 40) - 1, b"xy").expect_err("past 16 TiB").errno(), nix::libc::EFBIG);
    assert_eq!(vfs.setattr(f, size(16 << 40)).expect("16 TiB").size, 16 << 40);
}
