//! Trees crafted to escape the restore directory are refused.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use monofs::object::{Dir, Entry, EntryKind, Kind, Meta};
use monofs::{Error, NoProgress, Repository};

use super::memory_repo;

fn entry(name: &str, kind: EntryKind) -> Entry {
    Entry { name: name.as_bytes().to_vec(), kind, meta: Meta { mode: 0o755, ..Meta::default() } }
}

/// Stores `root` and restores it, which must fail as an invalid tree path;
/// returns the directory it was restored into.
fn refused_restore(repo: &Repository, root: &Dir) -> tempfile::TempDir {
    let mut tx = repo.begin().expect("tx");
    let id = repo.put_object(tx.as_mut(), Kind::Dir, &root.encode()).expect("put");
    tx.commit().expect("commit");
    let out = tempfile::tempdir().expect("tempdir");
    let err = repo.restore(&id, out.path(), false, &NoProgress).expect_err("hostile restore");
    assert!(matches!(err, Error::InvalidTreePath(_)), "unexpected {err}");
    out
}

#[test]
fn hard_link_through_a_symlinked_directory_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    monofs_fixtures::write(&outside.path().join("secret"), b"do not link me");
    let repo = memory_repo();
    let root = Dir {
        entries: vec![
            entry("d", EntryKind::Symlink { target: outside.path().as_os_str().as_bytes().to_vec() }),
            Entry {
                name: b"x".to_vec(),
                kind: EntryKind::HardLink { target: b"d/secret".to_vec() },
                meta: Meta::default(),
            },
        ],
        size: 0,
    };
    let out = refused_restore(&repo, &root);
    assert!(!out.path().join("x").exists());
    assert_eq!(std::fs::metadata(outside.path().join("secret")).expect("stat").nlink(), 1);
}

#[test]
fn hard_link_target_with_dot_dot_is_refused() {
    let repo = memory_repo();
    let root = Dir {
        entries: vec![Entry {
            name: b"x".to_vec(),
            kind: EntryKind::HardLink { target: b"../etc/passwd".to_vec() },
            meta: Meta::default(),
        }],
        size: 0,
    };
    refused_restore(&repo, &root);
}
