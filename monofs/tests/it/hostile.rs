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

/// A directory swapped with a symlink to a directory outside the source
/// (RENAME_EXCHANGE, over and over) while commits run: no revision holds
/// what the symlink points to (18 of 56 did; probe). A commit may fail
/// instead, saying the directory was replaced.
#[test]
fn a_directory_swapped_for_a_symlink_during_a_commit_is_not_followed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, secret) = (dir.path().join("src"), dir.path().join("secret"));
    for i in 0..30 {
        monofs_fixtures::write(&src.join(format!("a/b/c/f{i}")), b"real");
        monofs_fixtures::write(&secret.join(format!("c/f{i}")), b"SECRET");
    }
    std::os::unix::fs::symlink(&secret, src.join("a/swap")).expect("symlink");
    let repo = memory_repo();
    let stop = AtomicBool::new(false);
    let revisions = std::thread::scope(|s| {
        s.spawn(|| {
            let a = src.join("a");
            while !stop.load(Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &a.join("b"),
                    nix::fcntl::AT_FDCWD,
                    &a.join("swap"),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        });
        let made: Vec<_> =
            (0..30).map(|i| repo.commit_dir(&src, &super::opts(&format!("c{i}")), &NoProgress)).collect();
        stop.store(true, Ordering::Relaxed);
        made
    });
    for made in revisions {
        let rev = match made {
            Ok(c) => c.revision,
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("replaced") || e.contains("No such file"), "{e}");
                continue;
            }
        };
        let out = tempfile::tempdir().expect("tempdir");
        super::restore(&repo, &rev, out.path());
        let leaked = walk_files(out.path()).into_iter().any(|f| std::fs::read(f).is_ok_and(|d| d == b"SECRET"));
        assert!(!leaked, "revision {rev} holds a file from outside the source");
    }
}

/// Every regular file below `dir`, not following symlinks.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let ft = e.file_type().expect("type");
        if ft.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    out
}
