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
