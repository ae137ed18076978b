//! Free space on the disk, checked before redb writes: redb treats a failed
//! write as fatal for the open database (every later call fails with
//! "Previous I/O error" until it is reopened), so a mount whose disk fills
//! up would be left unable to store anything, even once space is freed. A
//! transaction refuses to go on while the disk lacks room for what it may
//! still have to write, before redb has written any of it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::store::{StoreError, StoreResult};

/// Bytes of objects added between two looks at the disk.
const CHECK_EVERY: u64 = 1 << 20;

/// Room kept for what redb writes besides the objects (index pages, the
/// allocator's state, the commit itself): this much, plus a sixteenth of
/// what the transaction adds, up to [`HEADROOM_MAX`].
const HEADROOM_MIN: u64 = 2 << 20;
const HEADROOM_MAX: u64 = 16 << 20;

/// Counts what a write transaction adds and checks the disk now and then.
pub(super) struct DiskSpace {
    file: Arc<Path>,
    /// Bytes redb may hold in memory, not yet written: its write buffer.
    buffered_max: u64,
    /// Bytes earlier (relaxed) commits may have left unwritten.
    unwritten: u64,
    added: u64,
    unchecked: u64,
}

impl DiskSpace {
    /// For a transaction on database `file`, whose cache holds at most
    /// `buffered_max` bytes of unwritten pages, after relaxed commits that
    /// added `unwritten` bytes since the last durable one.
    pub fn new(file: Arc<Path>, buffered_max: u64, unwritten: u64) -> DiskSpace {
        DiskSpace { file, buffered_max, unwritten, added: 0, unchecked: 0 }
    }

    /// The bytes of objects added so far.
    pub fn added(&self) -> u64 {
        self.added
    }

    /// Counts `bytes` of objects about to be added; looks at the disk once
    /// a [`CHECK_EVERY`] has gone by since the last look. Records (the stat
    /// cache, refs) are small beside objects and not counted: should they
    /// not fit, the store recovers once space is freed (see
    /// `RedbStore::reopen`).
    pub fn add(&mut self, bytes: usize) -> StoreResult<()> {
        self.added += bytes as u64;
        self.unchecked += bytes as u64;
        if self.unchecked < CHECK_EVERY {
            return Ok(());
        }
        self.unchecked = 0;
        self.check()
    }

    /// Fails with an error of kind `StorageFull` (ENOSPC) unless the disk
    /// has room for what is still unwritten plus the headroom. A
    /// transaction that adds no objects after durable commits (removals,
    /// refs: `gc` on a full disk) is let through, and so is one on a file
    /// system that reports no size: their writes will say.
    pub fn check(&self) -> StoreResult<()> {
        if self.added == 0 && self.unwritten == 0 {
            return Ok(());
        }
        let Some(free) = free_bytes(&self.file) else { return Ok(()) };
        let need =
            (self.unwritten + self.added).min(self.buffered_max) + HEADROOM_MIN + (self.added / 16).min(HEADROOM_MAX);
        if free >= need {
            return Ok(());
        }
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        Err(StoreError(Box::new(io::Error::new(
            io::ErrorKind::StorageFull,
            // What the whole operation needs is not known here (only what
            // it has added so far): a figure would name a goal that moves
            // with the free space, as it did.
            format!(
                "the disk holding {} is full: {:.1} MiB free is not enough to store this safely (No space left on device)",
                self.file.display(),
                mib(free),
            ),
        ))))
    }
}

/// Bytes this process may still write on the file system holding `path`
/// (root may use the blocks kept for root, as its writes can); `None` when
/// the file system reports no size.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let fs = nix::sys::statvfs::statvfs(path).ok()?;
    if fs.blocks() == 0 {
        return None;
    }
    let blocks = if nix::unistd::geteuid().is_root() { fs.blocks_free() } else { fs.blocks_available() };
    Some(blocks.saturating_mul(fs.fragment_size()))
}
