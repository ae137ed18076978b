//! One process at a time per repository: an advisory lock on `REPO/lock`
//! holding the owner's PID, so a second process can say who has it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file's name in a repository directory.
pub const LOCK_FILE: &str = "lock";

/// Held for as long as the repository is open; released on drop (and by the
/// kernel when the process dies, so a kill -9 leaves no stale lock).
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

impl RepoLock {
    /// Takes the lock or fails with [`Error::Locked`] naming the holder.
    pub fn acquire(repo: &Path) -> Result<RepoLock> {
        Self::take(repo, File::try_lock)
    }

    /// [`RepoLock::acquire`] of a repository whose lock file exists: fails
    /// rather than create one.
    pub fn acquire_existing(repo: &Path) -> Result<RepoLock> {
        let path = repo.join(LOCK_FILE);
        if !path.is_file() {
            return Err(Error::io(&path, std::io::ErrorKind::NotFound.into()));
        }
        Self::acquire(repo)
    }

    /// Takes the lock shared with other processes that open the repository
    /// shared (see [`crate::Repository::open_shared`]); an exclusive holder
    /// makes it fail with [`Error::Locked`], and so does a shared one for an
    /// exclusive requester. The PID in the file is the last sharer's.
    pub fn acquire_shared(repo: &Path) -> Result<RepoLock> {
        Self::take(repo, File::try_lock_shared)
    }

    fn take(repo: &Path, lock: fn(&File) -> std::result::Result<(), TryLockError>) -> Result<RepoLock> {
        let path = repo.join(LOCK_FILE);
        // Not through a symlink: a planted `lock` would have the PID
        // written into whatever file it points to.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Error::Locked {
                    path: repo.to_owned(),
                    pid: if pid.is_empty() { "unknown".into() } else { pid.to_owned() },
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            write!(f, "{}", std::process::id())?;
            f.flush()
        };
        write(&mut file).map_err(|e| Error::io(&path, e))?;
        Ok(RepoLock { _file: file })
    }
}

/// Runs `open` until it does not fail with [`Error::Locked`], for up to
/// `wait`: the holder may be a short command, or `serve --http` between
/// requests. Each time the repository is found locked (the last time
/// too), `locked` gets the holder's PID and may give up with its own error
/// instead (for a holder that will not let go, such as a mount).
pub fn wait_for_lock<T, E: From<Error>>(
    wait: std::time::Duration,
    mut open: impl FnMut() -> Result<T>,
    mut locked: impl FnMut(&str) -> std::result::Result<(), E>,
) -> std::result::Result<T, E> {
    let start = std::time::Instant::now();
    loop {
        match open() {
            Err(Error::Locked { path, pid }) => {
                locked(&pid)?;
                if start.elapsed() >= wait {
                    return Err(Error::Locked { path, pid }.into());
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            result => return Ok(result?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_while_locked_and_gives_up_when_told_or_late() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = RepoLock::acquire(dir.path()).expect("lock");
        // Released by another thread after a few tries.
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(250));
            drop(held);
        });
        let mut seen = 0;
        let got: Result<RepoLock> = wait_for_lock(
            std::time::Duration::from_secs(5),
            || RepoLock::acquire(dir.path()),
            |_| {
                seen += 1;
                Ok(())
            },
        );
        release.join().expect("join");
        let lock = got.expect("the lock, once released");
        assert!(seen >= 1, "it waited");

        // Late: the last error is the lock's.
        let late: Result<RepoLock> =
            wait_for_lock(std::time::Duration::ZERO, || RepoLock::acquire(dir.path()), |_| Ok(()));
        assert!(matches!(late, Err(Error::Locked { .. })), "{late:?}");
        // Told to give up: the caller's error, at once.
        #[derive(Debug)]
        enum Gave {
            Up(String),
            Repo,
        }
        impl From<Error> for Gave {
            fn from(_: Error) -> Gave {
                Gave::Repo
            }
        }
        let start = std::time::Instant::now();
        let told = wait_for_lock(
            std::time::Duration::from_secs(60),
            || RepoLock::acquire(dir.path()),
            |pid| Err(Gave::Up(pid.to_owned())),
        );
        assert!(matches!(told, Err(Gave::Up(ref pid)) if *pid == std::process::id().to_string()), "{told:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        drop(lock);
    }

    #[test]
    fn a_lock_file_that_is_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        std::os::unix::fs::symlink(&victim, dir.path().join(LOCK_FILE)).expect("symlink");
        assert!(RepoLock::acquire(dir.path()).is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    }
}
