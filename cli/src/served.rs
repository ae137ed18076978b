//! The state of a running mount that other commands act on through the
//! control socket.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use fuser::INodeNo;
use monofs::Repository;
use monofs::vfs::Vfs;

/// A mounted working tree.
pub struct Served {
    /// The tree being served.
    pub vfs: Arc<Vfs>,
    /// Sends cache invalidations to the kernel (set once the session exists).
    pub notifier: Mutex<Option<fuser::Notifier>>,
}

impl Served {
    /// Lets `change` move the working tree (a checkout) with the mount's
    /// edits stored first and none in between (see [`Vfs::switch`]), then
    /// drops what the kernel cached of the old tree.
    pub fn switch(&self, change: impl FnOnce(&Repository) -> Result<(), monofs::Error>) -> anyhow::Result<()> {
        let (names, inodes) = self.vfs.switch(change)?;
        if let Ok(guard) = self.notifier.lock()
            && let Some(n) = guard.as_ref()
        {
            for (parent, name) in names {
                let _ = n.inval_entry(INodeNo(parent), OsStr::from_bytes(&name));
            }
            for ino in inodes {
                let _ = n.inval_inode(INodeNo(ino), 0, 0);
            }
        }
        Ok(())
    }
}
