//! Named working trees: copy-on-write branches of a tree (a sandbox's root
//! on an image), served by the VFS, independent of each other and of the
//! main working tree, kept from gc until deleted.

use std::sync::Arc;

use monofs::vfs::{ROOT, Tree, Vfs};
use monofs::{InitOptions, NoProgress, Repository};
use monofs_fixtures::write;

use super::commit;

#[test]
fn named_worktrees_branch_a_tree_independently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init");
    write(&dir.path().join("src/etc/conf"), b"base");
    let base = repo.read_revision(&commit(&repo, &dir.path().join("src"), "image")).expect("rev").root;
    repo.create_worktree("sb1", &base).expect("create");
    repo.create_worktree("sb2", &base).expect("create");
    assert!(repo.create_worktree("sb1", &base).is_err(), "a second tree of the same name");
    let repo = Arc::new(repo);
    {
        let vfs = Vfs::serve(repo.clone(), Tree::Named("sb1".into())).expect("serve");
        let a = vfs.create(ROOT, b"new", 0o644, 0, 0).expect("create");
        vfs.write(a.ino, 0, b"sandbox data").expect("write");
        vfs.release(a.ino);
        let etc = vfs.lookup(ROOT, b"etc").expect("lookup");
        vfs.unlink(etc.ino, b"conf").expect("unlink");
        vfs.flush().expect("flush");
    }
    let sb1 = repo.named_worktree("sb1").expect("sb1");
    assert_eq!(repo.named_worktree("sb2").expect("sb2"), base, "another tree changed");
    let changes: Vec<String> = repo
        .diff_trees(&base, &sb1)
        .expect("diff")
        .iter()
        .map(|c| format!("{} {}", c.status.letter(), c.path))
        .collect();
    assert_eq!(changes, ["D etc/conf", "A new"]);
    // Reopening keeps the edits and the inode numbers of the branch.
    let ino = {
        let vfs = Vfs::serve(repo.clone(), Tree::Named("sb1".into())).expect("serve");
        let a = vfs.lookup(ROOT, b"new").expect("lookup");
        assert_eq!(&vfs.read(a.ino, 0, 100).expect("read")[..], b"sandbox data");
        a.ino
    };
    let vfs = Vfs::serve(repo.clone(), Tree::Named("sb1".into())).expect("serve");
    assert_eq!(vfs.lookup(ROOT, b"new").expect("lookup").ino, ino);
    drop(vfs);
    let repo = Arc::try_unwrap(repo).expect("sole owner");
    repo.gc().expect("gc");
    assert!(repo.fsck().expect("fsck").is_sound());
    let out = tempfile::tempdir().expect("tempdir");
    repo.restore(&sb1, out.path(), false, &NoProgress).expect("restore after gc");
    assert_eq!(std::fs::read(out.path().join("new")).expect("read"), b"sandbox data");
    repo.delete_worktree("sb1").expect("delete");
    assert!(repo.named_worktree("sb1").is_err());
    let mut left = 0;
    repo.store()
        .scan(monofs::store::Table::Inodes, &[0xff], &mut |_, _| {
            left += 1;
            true
        })
        .expect("scan");
    assert_eq!(left, 0, "inode numbers of the deleted tree remain");
}
