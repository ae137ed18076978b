//! The working tree's root directory keeps what a mount changes on it
//! (mode, owner, xattrs) across sessions and into the next commit; a
//! checkout gives it the checked-out revision's, and a revision's tree
//! shows that revision's.

use std::sync::Arc;

use monofs::diff::root_change;
use monofs::vfs::{ROOT, SetAttr, Vfs};
use monofs::{InitOptions, Repository};

use super::{commit, opts};

fn root_of(vfs: &Vfs) -> (u16, u32) {
    let a = vfs.getattr(ROOT).expect("getattr");
    (a.perm, a.uid)
}

#[test]
fn root_metadata_is_kept_committed_and_checked_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    monofs_fixtures::write(&dir.path().join("src/f"), b"x");
    let first = commit(&repo, &dir.path().join("src"), "first");
    let before = repo.read_revision(&first).expect("rev").root_meta;

    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    assert_eq!(u32::from(vfs.getattr(ROOT).expect("getattr").perm), before.mode, "the root comes from HEAD");
    vfs.setattr(ROOT, SetAttr { mode: Some(0o700), uid: Some(4321), ..SetAttr::default() }).expect("chmod");
    vfs.setxattr(ROOT, b"user.k", b"v", false, false).expect("setxattr");
    vfs.flush().expect("flush");
    drop(vfs);

    // A new session shows them, and they are a change to commit.
    let vfs = Vfs::new(repo.clone(), None).expect("vfs again");
    assert_eq!(root_of(&vfs), (0o700, 4321));
    assert_eq!(vfs.getxattr(ROOT, b"user.k").expect("getxattr"), b"v");
    drop(vfs);
    assert!(repo.worktree_dirty().expect("dirty"), "a changed root is an uncommitted change");
    let now = repo.worktree_root_meta().expect("root meta").expect("recorded");
    let change = root_change(&before, &now).expect("the root differs");
    assert_eq!((change.path.as_str(), change.what), (".", vec!["mode", "owner", "xattrs"]));

    let second = repo.commit_worktree(&opts("chmod /")).expect("commit").revision;
    let committed = repo.read_revision(&second).expect("rev").root_meta;
    assert_eq!((committed.mode, committed.uid), (0o700, 4321));
    assert_eq!(committed.xattrs, [(b"user.k".to_vec(), b"v".to_vec())]);
    assert!(!repo.worktree_dirty().expect("dirty"));

    // A checkout through the mounted tree shows the revision's root.
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    vfs.switch(|r| r.checkout(&first, false)).expect("checkout");
    assert_eq!(u32::from(root_of(&vfs).0), before.mode);
    assert!(vfs.getxattr(ROOT, b"user.k").is_err(), "the first revision's root has no xattr");
    drop(vfs);
    assert!(!repo.worktree_dirty().expect("dirty"), "a checkout leaves nothing to commit");
    assert_eq!(u32::from(root_of(&Vfs::new(repo.clone(), None).expect("vfs")).0), before.mode);

    // A revision's tree has the revision's root.
    assert_eq!(root_of(&Vfs::new(repo.clone(), Some(second)).expect("revision")), (0o700, 4321));
}

/// A record left by a mount does not outlive the tree it was made for: a
/// commit of a directory with the same content sets the root's metadata.
#[test]
fn a_commit_from_a_directory_replaces_the_recorded_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let src = dir.path().join("src");
    monofs_fixtures::write(&src.join("f"), b"x");
    commit(&repo, &src, "first");
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    vfs.setattr(ROOT, SetAttr { mode: Some(0o700), ..SetAttr::default() }).expect("chmod");
    vfs.flush().expect("flush");
    drop(vfs);
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o750)).expect("chmod src");
    let opts = monofs::CommitOptions { discard_changes: true, ..opts("again") };
    let rev = repo.commit_dir(&src, &opts, &monofs::NoProgress).expect("commit").revision;
    assert_eq!(repo.read_revision(&rev).expect("rev").root_meta.mode, 0o750);
    assert!(!repo.worktree_dirty().expect("dirty"));
    assert_eq!(root_of(&Vfs::new(repo, None).expect("vfs")).0, 0o750);
}

/// A record is an uncommitted change only while it differs from HEAD's
/// root: a chmod undone leaves nothing to commit, and a forced checkout
/// discards one.
#[test]
fn a_record_is_kept_only_while_it_differs_from_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    monofs_fixtures::write(&dir.path().join("src/f"), b"x");
    let first = commit(&repo, &dir.path().join("src"), "first");
    let mode = repo.read_revision(&first).expect("rev").root_meta.mode;
    let chmod = |vfs: &Vfs, mode: u32| {
        vfs.setattr(ROOT, SetAttr { mode: Some(mode), ..SetAttr::default() }).expect("chmod");
        vfs.flush().expect("flush");
    };
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    chmod(&vfs, 0o700);
    assert!(repo.worktree_dirty().expect("dirty"));
    chmod(&vfs, mode);
    assert!(!repo.worktree_dirty().expect("dirty"), "back to HEAD's root: nothing to commit");
    // A file made and removed in the root moves only its mtime, which no
    // diff shows: no record (it stopped syncs into this tree).
    let tmp = vfs.create(ROOT, b"swap", 0o644, 0, 0).expect("create");
    vfs.release(tmp.ino);
    vfs.unlink(ROOT, b"swap").expect("unlink");
    vfs.flush().expect("flush");
    assert!(!repo.worktree_dirty().expect("dirty"), "an mtime alone is no change");
    assert_eq!(repo.tree_root_meta("WORKTREE").expect("record"), None);
    chmod(&vfs, 0o711);
    drop(vfs);
    repo.checkout(&first, true).expect("forced checkout");
    assert!(!repo.worktree_dirty().expect("dirty"));
    assert_eq!(u32::from(root_of(&Vfs::new(repo.clone(), None).expect("vfs")).0), mode);
}
