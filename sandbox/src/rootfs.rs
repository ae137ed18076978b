//! A sandbox's root file system on the host: its monofs working tree
//! mounted through FUSE, with owners shifted into the sandbox's id range.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{MountOption, SessionACL};
use monofs::filecache::FileCache;
use monofs::fuse::{FuseFs, IdShift};
use monofs::vfs::Vfs;
use nix::mount::{MntFlags, umount2};

use crate::error::{Error, Result};
use crate::spec::IdRange;

/// Most bytes of whole-file copies kept for passthrough reads.
pub const FILE_CACHE_LIMIT: u64 = 2 << 30;

/// FUSE threads per sandbox: a sandbox is one command, not a file server.
const FUSE_THREADS: usize = 2;

/// A mounted root file system; unmounted by [`Rootfs::unmount`] (or, as a
/// last resort, when dropped).
pub struct Rootfs {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl Rootfs {
    /// Mounts `vfs` on `mountpoint` for a sandbox whose ids are `ids`.
    /// Unmounting does not flush: a kept sandbox flushes explicitly, a
    /// thrown-away one writes nothing it does not have to.
    /// Reads of unchanged files of 64 KiB and more pass through to copies in
    /// `file_cache` (shared by every sandbox of the home, at most
    /// [`FILE_CACHE_LIMIT`] bytes), so they are as fast as local files and
    /// stay in the page cache from one sandbox to the next.
    pub fn mount(vfs: Arc<Vfs>, mountpoint: &Path, name: &str, ids: IdRange, file_cache: &Path) -> Result<Rootfs> {
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("monocore:{name}")),
            MountOption::Subtype("monofs".into()),
            MountOption::DefaultPermissions,
            // Device nodes in an image must never open the host's devices.
            MountOption::NoDev,
        ];
        // The sandbox's processes run as other host users than the mounter.
        config.acl = SessionACL::All;
        config.n_threads = Some(FUSE_THREADS);
        let shift = IdShift { uid: ids.first, gid: ids.first, count: ids.count };
        let session = fuser::Session::new(
            FuseFs::with_id_shift(vfs, shift)
                .without_flush_on_unmount()
                .with_file_cache(FileCache::new(file_cache, FILE_CACHE_LIMIT)),
            mountpoint,
            &config,
        )
        .and_then(fuser::Session::spawn)
        .map_err(|e| Error::io(format!("mounting the root file system on {}", mountpoint.display()), e))?;
        Ok(Rootfs { session: Some(session), mountpoint: mountpoint.to_owned() })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the FUSE session to end.
    pub fn unmount(mut self) -> Result<()> {
        self.close()
    }

    fn close(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else { return Ok(()) };
        if let Err(e) = session.umount_and_join() {
            tracing::debug!("unmounting {}: {e}; detaching", self.mountpoint.display());
            detach(&self.mountpoint)?;
        }
        Ok(())
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("{e}");
        }
    }
}

/// Lazily unmounts whatever is mounted on `path` (a stale FUSE mount left
/// by a killed supervisor included); not mounted is fine.
pub fn detach(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::sys(format!("unmounting {}", path.display()), e)),
    }
}
