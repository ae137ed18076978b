//! A checkout through the mount ([`Vfs::switch`]) while files are open: as
//! on a local file system where the checkout replaces files, a descriptor
//! opened before it keeps the file it opened, and nothing it writes
//! reaches the checked-out tree.

use std::sync::Arc;

use monofs::vfs::{ROOT, Vfs};
use monofs::{CommitOptions, InitOptions, Repository};

fn opts(msg: &str) -> CommitOptions {
    CommitOptions { message: msg.into(), author: "t".into(), time: None, discard_changes: false }
}

fn commit(vfs: &Vfs, msg: &str) -> monofs::ObjectId {
    vfs.commit(&opts(msg)).expect("commit").revision
}

#[test]
fn open_files_keep_what_they_opened_across_a_checkout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let changed = vfs.create(ROOT, b"changed", 0o644, 0, 0).expect("create").ino;
    vfs.write(changed, 0, b"version one").expect("write");
    vfs.release(changed);
    let same = vfs.create(ROOT, b"same", 0o644, 0, 0).expect("create").ino;
    vfs.write(same, 0, b"unchanged").expect("write");
    vfs.release(same);
    let one = commit(&vfs, "one");
    vfs.write(changed, 0, b"version two, longer").expect("write");
    let gone = vfs.create(ROOT, b"gone", 0o644, 0, 0).expect("create").ino;
    vfs.write(gone, 0, b"only in two").expect("write");
    commit(&vfs, "two");

    // Open across the checkout: `changed` and `gone` (still open from
    // create), and `same`.
    vfs.open(changed, true, false).expect("open");
    vfs.open(same, false, false).expect("open");
    vfs.switch(|r| r.checkout(&one, false)).expect("checkout one");

    // The descriptors read what they opened...
    assert_eq!(&vfs.read(changed, 0, 100).expect("read")[..], b"version two, longer");
    assert_eq!(&vfs.read(gone, 0, 100).expect("read")[..], b"only in two");
    // ...the paths show revision one under new numbers, an unchanged file
    // under its own...
    let now = vfs.lookup(ROOT, b"changed").expect("lookup");
    assert_ne!(now.ino, changed, "the checked-out file took the open file's number");
    assert_eq!(&vfs.read(now.ino, 0, 100).expect("read")[..], b"version one");
    assert!(vfs.lookup(ROOT, b"gone").is_err());
    assert_eq!(vfs.lookup(ROOT, b"same").expect("lookup").ino, same);
    // ...and what the old descriptors write stays with them.
    vfs.write(changed, 0, b"LOGLINE").expect("write through the old descriptor");
    vfs.write(gone, 0, b"LOGLINE").expect("write through the old descriptor");
    vfs.flush().expect("flush");
    assert_eq!(&vfs.read(now.ino, 0, 100).expect("read")[..], b"version one");
    assert!(matches!(repo.commit_worktree(&opts("three")), Err(monofs::Error::NothingToCommit)));
    for ino in [changed, same, gone] {
        vfs.release(ino);
    }
    // Closed and forgotten by the kernel (one lookup, from create): gone.
    vfs.forget(changed, 1);
    assert!(vfs.read(changed, 0, 1).is_err(), "closed and unnamed: gone");
    assert_eq!(&vfs.read(same, 0, 100).expect("read")[..], b"unchanged");
}
