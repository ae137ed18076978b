//! One process at a time per repository: an advisory lock on `REPO/lock`
//! holding the owner's PID, so a second process can say who has it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

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

    /// Takes the lock shared with other processes that open the repository
    /// shared (see [`crate::Repository::open_shared`]); an exclusive holder
    /// makes it fail with [`Error::Locked`], and so does a shared one for an
    /// exclusive requester. The PID in the file is the last sharer's.
    pub fn acquire_shared(repo: &Path) -> Result<RepoLock> {
        Self::take(repo, File::try_lock_shared)
    }

    fn take(repo: &Path, lock: fn(&File) -> std::result::Result<(), TryLockError>) -> Result<RepoLock> {
        let path = repo.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
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
