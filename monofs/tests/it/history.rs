//! Working tree, HEAD, checkout and the revision graph.

use monofs::{Error, NoProgress};
use monofs_fixtures::write;

use super::{commit, memory_repo, opts};

#[test]
fn commit_after_checkout_of_old_revision_branches_and_loses_nothing() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    write(&src.path().join("f"), b"1");
    let r1 = commit(&repo, src.path(), "one");
    write(&src.path().join("f"), b"2");
    let r2 = commit(&repo, src.path(), "two");
    repo.checkout(&r1, false).expect("checkout");
    assert_eq!(repo.head().expect("head"), Some(r1));
    assert!(matches!(repo.commit_worktree(&opts("noop")), Err(Error::NothingToCommit)));
    write(&src.path().join("g"), b"3");
    let r3 = commit(&repo, src.path(), "three");
    assert_eq!(repo.read_revision(&r3).expect("rev").parents, vec![r1]);
    let line: Vec<_> = repo.log(false).expect("log").into_iter().map(|(id, _)| id).collect();
    assert_eq!(line, vec![r3, r1]);
    let all: Vec<_> = repo.log(true).expect("log").into_iter().map(|(id, _)| id).collect();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&r2));
    assert_eq!(repo.resolve("HEAD~1").expect("resolve"), r1);
    assert_eq!(repo.resolve(&r2.short(10)).expect("short id"), r2);
    assert!(matches!(repo.resolve("HEAD~5"), Err(Error::HistoryTooShort { found: 1, .. })));
    assert!(matches!(repo.resolve("abc"), Err(Error::UnknownRevision(_))));
}

#[test]
fn checkout_refuses_to_drop_uncommitted_changes() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    write(&src.path().join("f"), b"1");
    let r1 = commit(&repo, src.path(), "one");
    write(&src.path().join("f"), b"22");
    let r2 = commit(&repo, src.path(), "two");
    // Make the working tree differ from HEAD, as a mount's edits would.
    let old_root = repo.read_revision(&r1).expect("rev").root;
    let mut tx = repo.begin().expect("tx");
    repo.set_ref(tx.as_mut(), monofs::repo::WORKTREE, &old_root).expect("set");
    tx.commit().expect("commit");
    assert!(repo.worktree_dirty().expect("dirty"));
    assert!(matches!(repo.checkout(&r2, false), Err(Error::DirtyWorkingTree)));
    assert_eq!(repo.worktree().expect("wt"), old_root, "a refused checkout changed the working tree");
    // commit --from would make its directory the working tree: refused too.
    let dropped = repo.commit_dir(src.path(), &opts("from a directory"), &NoProgress);
    assert!(matches!(dropped, Err(Error::DirtyWorkingTree)), "{dropped:?}");
    assert_eq!(repo.head().expect("head"), Some(r2));
    assert_eq!(repo.worktree().expect("wt"), old_root, "a refused commit changed the working tree");
    let c = repo.commit_worktree(&opts("from worktree")).expect("worktree commit");
    assert_eq!(repo.read_revision(&c.revision).expect("rev").parents, vec![r2]);
    repo.checkout(&r1, false).expect("clean now");
    let mut tx = repo.begin().expect("tx");
    let r2_root = repo.read_revision(&r2).expect("rev").root;
    repo.set_ref(tx.as_mut(), monofs::repo::WORKTREE, &r2_root).expect("set");
    tx.commit().expect("commit");
    repo.checkout(&r1, true).expect("forced");
    assert_eq!(repo.worktree().expect("wt"), old_root);
    let mut tx = repo.begin().expect("tx");
    repo.set_ref(tx.as_mut(), monofs::repo::WORKTREE, &r2_root).expect("set");
    tx.commit().expect("commit");
    let discard = monofs::CommitOptions { discard_changes: true, ..opts("over the changes") };
    let c = repo.commit_dir(src.path(), &discard, &NoProgress).expect("commit --from --force");
    assert_eq!(repo.worktree().expect("wt"), c.root);
}

#[test]
fn diff_reports_added_modified_deleted_and_type_changes() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    let p = src.path();
    write(&p.join("keep"), b"k");
    write(&p.join("mod"), b"1");
    write(&p.join("gone/inner"), b"x");
    write(&p.join("becomes-link"), b"f");
    let r1 = commit(&repo, p, "one");
    write(&p.join("mod"), b"2");
    std::fs::remove_dir_all(p.join("gone")).expect("rm");
    write(&p.join("new/deep/file"), b"n");
    std::fs::remove_file(p.join("becomes-link")).expect("rm");
    std::os::unix::fs::symlink("keep", p.join("becomes-link")).expect("symlink");
    let r2 = commit(&repo, p, "two");
    let root = |r| repo.read_revision(&r).expect("rev").root;
    let lines: Vec<String> = repo
        .diff_trees(&root(r1), &root(r2))
        .expect("diff")
        .iter()
        .map(|c| format!("{} {}", c.status.letter(), c.path))
        .collect();
    assert_eq!(lines, ["T becomes-link", "D gone", "D gone/inner", "M mod", "A new", "A new/deep", "A new/deep/file"]);
    assert!(repo.diff_trees(&root(r2), &root(r2)).expect("diff").is_empty());
}

/// A directory's mtime shows only when it changed alone (a `touch`):
/// otherwise its entries' changes say it.
#[test]
fn diff_shows_a_directory_mtime_that_changed_alone() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    let p = src.path();
    write(&p.join("d/f"), b"1");
    let r1 = commit(&repo, p, "one");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::open(p.join("d")).and_then(|d| d.set_modified(later)).expect("touch d");
    let r2 = commit(&repo, p, "two");
    write(&p.join("d/g"), b"2");
    let r3 = commit(&repo, p, "three");
    let root = |r| repo.read_revision(&r).expect("rev").root;
    let lines = |x, y| -> Vec<String> {
        let changes = repo.diff_trees(&root(x), &root(y)).expect("diff");
        changes.iter().map(|c| format!("{} {} {}", c.status.letter(), c.path, c.what.join(","))).collect()
    };
    assert_eq!(lines(r1, r2), ["M d mtime"]);
    assert_eq!(lines(r2, r3), ["A d/g "]);
}

#[test]
fn restore_refuses_non_empty_target_unless_forced() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    write(&src.path().join("f"), b"data");
    let rev = commit(&repo, src.path(), "one");
    let root = repo.read_revision(&rev).expect("rev").root;
    let out = tempfile::tempdir().expect("tempdir");
    write(&out.path().join("f"), b"old");
    write(&out.path().join("other"), b"stays");
    assert!(matches!(repo.restore(&root, out.path(), false, &NoProgress), Err(Error::NotEmpty(_))));
    repo.restore(&root, out.path(), true, &NoProgress).expect("forced restore");
    assert_eq!(std::fs::read(out.path().join("f")).expect("read"), b"data");
    assert_eq!(std::fs::read(out.path().join("other")).expect("read"), b"stays");
}

/// Directories that were there before a restore end with the tree's user
/// attributes only: the target's own (empty, so no --force needed) and,
/// under --force, those of directories the tree has too.
#[test]
fn restored_directories_keep_no_stale_user_attributes() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    write(&src.path().join("d/f"), b"data");
    let rev = commit(&repo, src.path(), "one");
    let out = tempfile::tempdir().expect("tempdir");
    if xattr::set(out.path(), "user.old", b"1").is_err() {
        eprintln!("SKIP restored_directories_keep_no_stale_user_attributes: no user xattrs here");
        return;
    }
    repo.restore_revision(&rev, out.path(), false, &NoProgress).expect("restore into an empty directory");
    assert_eq!(xattr::get(out.path(), "user.old").expect("get"), None, "the target kept its attribute");
    xattr::set(out.path().join("d"), "user.stale", b"1").expect("set");
    repo.restore_revision(&rev, out.path(), true, &NoProgress).expect("forced restore");
    assert_eq!(xattr::get(out.path().join("d"), "user.stale").expect("get"), None);
}

#[test]
fn forced_restore_does_not_follow_symlinks_out_of_the_target() {
    let repo = memory_repo();
    let src = tempfile::tempdir().expect("tempdir");
    write(&src.path().join("d/f"), b"data");
    let rev = commit(&repo, src.path(), "one");
    let root = repo.read_revision(&rev).expect("rev").root;
    let out = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(elsewhere.path(), out.path().join("d")).expect("symlink");
    repo.restore(&root, out.path(), true, &NoProgress).expect("restore");
    assert!(!elsewhere.path().join("f").exists(), "restore wrote through a symlink");
    assert_eq!(std::fs::read(out.path().join("d/f")).expect("read"), b"data");
}
