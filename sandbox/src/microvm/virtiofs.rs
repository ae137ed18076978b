//! The virtio-fs device of a microVM: the `virtiofsd` crate's `FileSystem`
//! trait (FUSE requests arriving over vhost-user) translated into calls on
//! the sandbox's monofs [`Vfs`], and the vhost-user backend serving it on
//! a Unix socket that QEMU connects to.
//!
//! As `monofs::fuse` and `monofs::nfs`, no file-system logic lives here.
//! The only extra machinery is a per-thread memfd that bytes pass through
//! on their way in and out of guest memory, because `virtiofsd`'s
//! `ZeroCopyReader`/`ZeroCopyWriter` only move data to and from a host
//! `File`.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use monofs::object::Timestamp;
use monofs::vfs::{Attr, FileKind, RenameMode, SetAttr, VResult, Vfs};
use virtiofsd::filesystem::{
    Context, DirEntry, DirectoryIterator, Entry, Extensions, FileSystem, FsOptions, GetxattrReply, ListxattrReply,
    OpenOptions, SerializableFileSystem, SetattrValid, SetxattrFlags, ZeroCopyReader, ZeroCopyWriter,
};
use virtiofsd::fuse;
use virtiofsd::passthrough::{self, PassthroughFs, read_only::PassthroughFsRo};
use virtiofsd::soft_idmap::Id;

use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use virtiofsd::vhost_user::VhostUserFsBackendBuilder;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::error::{Error, Result};
use crate::sys;

/// How long the guest kernel may cache attributes and names. The tree is
/// only changed through this device while the VM runs, so this could be much
/// longer; 1 s matches the FUSE adapter.
const TTL: Duration = Duration::from_secs(1);

/// A monofs [`Vfs`] served as a virtio-fs device.
pub struct MonoVirtioFs {
    vfs: Arc<Vfs>,
}

impl MonoVirtioFs {
    /// Serves `vfs`.
    pub fn new(vfs: Arc<Vfs>) -> Self {
        MonoVirtioFs { vfs }
    }
}

thread_local! {
    /// Staging file for guest <-> host byte transfers (see module docs).
    static STAGE: RefCell<Option<File>> = const { RefCell::new(None) };
}

fn with_stage<T>(f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
    STAGE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let fd = nix::sys::memfd::memfd_create(c"monocore-virtiofs-stage", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .map_err(io::Error::from)?;
            *slot = Some(File::from(fd));
        }
        match slot.as_ref() {
            Some(file) => f(file),
            None => Err(io::Error::other("no staging file")),
        }
    })
}

fn err(e: monofs::vfs::VfsError) -> io::Error {
    io::Error::from_raw_os_error(e.errno())
}

fn res<T>(r: VResult<T>) -> io::Result<T> {
    r.map_err(err)
}

fn type_bits(k: FileKind) -> u32 {
    match k {
        FileKind::File => nix::libc::S_IFREG,
        FileKind::Dir => nix::libc::S_IFDIR,
        FileKind::Symlink => nix::libc::S_IFLNK,
        FileKind::Fifo => nix::libc::S_IFIFO,
        FileKind::Socket => nix::libc::S_IFSOCK,
        FileKind::CharDev => nix::libc::S_IFCHR,
        FileKind::BlockDev => nix::libc::S_IFBLK,
    }
}

fn dirent_type(k: FileKind) -> u32 {
    u32::from(match k {
        FileKind::File => nix::libc::DT_REG,
        FileKind::Dir => nix::libc::DT_DIR,
        FileKind::Symlink => nix::libc::DT_LNK,
        FileKind::Fifo => nix::libc::DT_FIFO,
        FileKind::Socket => nix::libc::DT_SOCK,
        FileKind::CharDev => nix::libc::DT_CHR,
        FileKind::BlockDev => nix::libc::DT_BLK,
    })
}

fn fuse_attr(a: &Attr) -> fuse::Attr {
    fuse::Attr {
        ino: a.ino,
        size: a.size,
        blocks: a.blocks,
        atime: a.atime.sec as u64,
        mtime: a.mtime.sec as u64,
        ctime: a.ctime.sec as u64,
        atimensec: a.atime.nsec,
        mtimensec: a.mtime.nsec,
        ctimensec: a.ctime.nsec,
        mode: type_bits(a.kind) | u32::from(a.perm),
        nlink: a.nlink,
        uid: a.uid.into(),
        gid: a.gid.into(),
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn entry(a: Attr) -> Entry {
    Entry { inode: a.ino, generation: 0, attr: fuse_attr(&a), attr_timeout: TTL, entry_timeout: TTL }
}

fn name(n: &CStr) -> &[u8] {
    n.to_bytes()
}

fn uid(ctx: &Context) -> u32 {
    ctx.uid.into_inner()
}

fn gid(ctx: &Context) -> u32 {
    ctx.gid.into_inner()
}

/// A directory listing taken in full at `readdir`, from `offset` on.
pub struct DirIter {
    entries: Vec<(u64, u64, u32, CString)>,
    pos: usize,
}

impl DirectoryIterator for DirIter {
    fn next(&mut self) -> Option<DirEntry<'_>> {
        let (ino, offset, type_, name) = self.entries.get(self.pos)?;
        self.pos += 1;
        Some(DirEntry { ino: *ino, offset: *offset, type_: *type_, name: name.as_c_str() })
    }
}

impl FileSystem for MonoVirtioFs {
    type Inode = u64;
    type Handle = u64;
    type DirIter = DirIter;

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        // READDIRPLUS: the server turns it into readdir + lookup per entry,
        // which saves the guest one round trip per name (ls -l, find).
        Ok(capable & (FsOptions::DO_READDIRPLUS | FsOptions::READDIRPLUS_AUTO))
    }

    fn destroy(&self) {
        if let Err(e) = self.vfs.flush() {
            tracing::error!("final flush failed: {e}");
        }
    }

    fn lookup(&self, _ctx: Context, parent: u64, n: &CStr) -> io::Result<Entry> {
        res(self.vfs.lookup(parent, name(n))).map(entry)
    }

    fn forget(&self, _ctx: Context, inode: u64, count: u64) {
        self.vfs.forget(inode, count);
    }

    fn getattr(&self, _ctx: Context, inode: u64, _h: Option<u64>) -> io::Result<(fuse::Attr, Duration)> {
        res(self.vfs.getattr(inode)).map(|a| (fuse_attr(&a), TTL))
    }

    fn setattr(
        &self,
        _ctx: Context,
        inode: u64,
        attr: fuse::SetattrIn,
        _h: Option<u64>,
        valid: SetattrValid,
    ) -> io::Result<(fuse::Attr, Duration)> {
        let ts = |sec: u64, nsec: u32| Timestamp { sec: sec as i64, nsec };
        let mut set = SetAttr::default();
        if valid.contains(SetattrValid::MODE) {
            set.mode = Some(attr.mode & 0o7777);
        }
        if valid.contains(SetattrValid::UID) {
            set.uid = Some(attr.uid.into_inner());
        }
        if valid.contains(SetattrValid::GID) {
            set.gid = Some(attr.gid.into_inner());
        }
        if valid.contains(SetattrValid::SIZE) {
            set.size = Some(attr.size);
        }
        if valid.contains(SetattrValid::ATIME_NOW) {
            set.atime = Some(Timestamp::now());
        } else if valid.contains(SetattrValid::ATIME) {
            set.atime = Some(ts(attr.atime, attr.atimensec));
        }
        if valid.contains(SetattrValid::MTIME_NOW) {
            set.mtime = Some(Timestamp::now());
        } else if valid.contains(SetattrValid::MTIME) {
            set.mtime = Some(ts(attr.mtime, attr.mtimensec));
        }
        res(self.vfs.setattr(inode, set)).map(|a| (fuse_attr(&a), TTL))
    }

    fn readlink(&self, _ctx: Context, inode: u64) -> io::Result<Vec<u8>> {
        res(self.vfs.readlink(inode))
    }

    fn symlink(&self, ctx: Context, target: &CStr, parent: u64, n: &CStr, _ext: Extensions) -> io::Result<Entry> {
        res(self.vfs.symlink(parent, name(n), target.to_bytes(), uid(&ctx), gid(&ctx))).map(entry)
    }

    fn mknod(
        &self,
        ctx: Context,
        parent: u64,
        n: &CStr,
        mode: u32,
        rdev: u32,
        umask: u32,
        _ext: Extensions,
    ) -> io::Result<Entry> {
        let mode = (mode & !umask) | (mode & nix::libc::S_IFMT);
        res(self.vfs.mknod(parent, name(n), mode, u64::from(rdev), uid(&ctx), gid(&ctx))).map(entry)
    }

    fn mkdir(&self, ctx: Context, parent: u64, n: &CStr, mode: u32, umask: u32, _ext: Extensions) -> io::Result<Entry> {
        res(self.vfs.mkdir(parent, name(n), mode & !umask, uid(&ctx), gid(&ctx))).map(entry)
    }

    fn unlink(&self, _ctx: Context, parent: u64, n: &CStr) -> io::Result<()> {
        res(self.vfs.unlink(parent, name(n)))
    }

    fn rmdir(&self, _ctx: Context, parent: u64, n: &CStr) -> io::Result<()> {
        res(self.vfs.rmdir(parent, name(n)))
    }

    fn rename(&self, _ctx: Context, olddir: u64, old: &CStr, newdir: u64, new: &CStr, flags: u32) -> io::Result<()> {
        let mode = if flags & nix::libc::RENAME_EXCHANGE != 0 {
            RenameMode::Exchange
        } else if flags & nix::libc::RENAME_NOREPLACE != 0 {
            RenameMode::NoReplace
        } else {
            RenameMode::Replace
        };
        res(self.vfs.rename(olddir, name(old), newdir, name(new), mode))
    }

    fn link(&self, _ctx: Context, inode: u64, newparent: u64, newname: &CStr) -> io::Result<Entry> {
        res(self.vfs.link(inode, newparent, name(newname))).map(entry)
    }

    fn open(&self, _ctx: Context, inode: u64, _kill_priv: bool, flags: u32) -> io::Result<(Option<u64>, OpenOptions)> {
        let flags = flags as i32;
        let write = flags & nix::libc::O_ACCMODE != nix::libc::O_RDONLY;
        let truncate = flags & nix::libc::O_TRUNC != 0;
        res(self.vfs.open(inode, write, truncate))?;
        // Vfs keeps an open count per inode, not per handle: fh 0 for all.
        Ok((Some(0), OpenOptions::KEEP_CACHE))
    }

    fn create(
        &self,
        ctx: Context,
        parent: u64,
        n: &CStr,
        mode: u32,
        _kill_priv: bool,
        _flags: u32,
        umask: u32,
        _ext: Extensions,
    ) -> io::Result<(Entry, Option<u64>, OpenOptions)> {
        let a = res(self.vfs.create(parent, name(n), mode & !umask, uid(&ctx), gid(&ctx)))?;
        Ok((entry(a), Some(0), OpenOptions::empty()))
    }

    fn read<W: ZeroCopyWriter>(
        &self,
        _ctx: Context,
        inode: u64,
        _h: u64,
        mut w: W,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        _flags: u32,
    ) -> io::Result<usize> {
        let data = self.vfs.read(inode, offset, size as usize).map_err(|e| {
            tracing::warn!("read {inode} @{offset}+{size}: {e}");
            err(e)
        })?;
        if data.is_empty() {
            return Ok(0);
        }
        with_stage(|stage| {
            // The writer hands preadv all of its guest buffers, not just
            // `count` bytes: the file must end where the data ends.
            stage.set_len(data.len() as u64)?;
            stage.write_all_at(&data, 0)?;
            w.read_from_file_at(stage, data.len(), 0, None)
        })
        .inspect_err(|e| tracing::warn!("read {inode}: copy to guest: {e}"))
    }

    fn write<R: ZeroCopyReader>(
        &self,
        _ctx: Context,
        inode: u64,
        _h: u64,
        mut r: R,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        _delayed_write: bool,
        _kill_priv: bool,
        _flags: u32,
    ) -> io::Result<usize> {
        let data = with_stage(|stage| {
            let n = r.write_to_file_at(stage, size as usize, 0, None)?;
            let mut buf = vec![0u8; n];
            stage.read_exact_at(&mut buf, 0)?;
            Ok(buf)
        })?;
        res(self.vfs.write(inode, offset, &data))
    }

    fn flush(&self, _ctx: Context, _inode: u64, _h: u64, _lock_owner: u64) -> io::Result<()> {
        Ok(())
    }

    fn fsync(&self, _ctx: Context, _inode: u64, _datasync: bool, _h: u64) -> io::Result<()> {
        self.vfs.flush().map(|_| ()).map_err(|e| {
            tracing::error!("fsync: {e}");
            io::Error::from_raw_os_error(nix::libc::EIO)
        })
    }

    fn release(
        &self,
        _ctx: Context,
        inode: u64,
        _flags: u32,
        _h: u64,
        _flush: bool,
        _flock_release: bool,
        _lock_owner: Option<u64>,
    ) -> io::Result<()> {
        self.vfs.release(inode);
        Ok(())
    }

    fn statfs(&self, _ctx: Context, _inode: u64) -> io::Result<nix::libc::statvfs64> {
        let (mut blocks, mut bfree) = (1u64 << 30, 1u64 << 30);
        if let Ok(s) = nix::sys::statvfs::statvfs(self.vfs.repo().path()) {
            let frag = s.fragment_size().max(1);
            blocks = s.blocks() * frag / 4096;
            bfree = s.blocks_available() * frag / 4096;
        }
        let mut st = sys::zeroed_statvfs64();
        st.f_bsize = 4096;
        st.f_frsize = 4096;
        st.f_blocks = blocks;
        st.f_bfree = bfree;
        st.f_bavail = bfree;
        st.f_files = self.vfs.inode_count();
        st.f_ffree = u64::MAX / 2;
        st.f_namemax = 255;
        Ok(st)
    }

    fn setxattr(
        &self,
        _ctx: Context,
        inode: u64,
        n: &CStr,
        value: &[u8],
        flags: u32,
        _extra: SetxattrFlags,
    ) -> io::Result<()> {
        let flags = flags as i32;
        res(self.vfs.setxattr(
            inode,
            name(n),
            value,
            flags & nix::libc::XATTR_CREATE != 0,
            flags & nix::libc::XATTR_REPLACE != 0,
        ))
    }

    fn getxattr(&self, _ctx: Context, inode: u64, n: &CStr, size: u32) -> io::Result<GetxattrReply> {
        let v = res(self.vfs.getxattr(inode, name(n)))?;
        xattr_size(size, v.len())?;
        Ok(if size == 0 { GetxattrReply::Count(v.len() as u32) } else { GetxattrReply::Value(v) })
    }

    fn listxattr(&self, _ctx: Context, inode: u64, size: u32) -> io::Result<ListxattrReply> {
        let v = res(self.vfs.listxattr(inode))?;
        xattr_size(size, v.len())?;
        Ok(if size == 0 { ListxattrReply::Count(v.len() as u32) } else { ListxattrReply::Names(v) })
    }

    fn removexattr(&self, _ctx: Context, inode: u64, n: &CStr) -> io::Result<()> {
        res(self.vfs.removexattr(inode, name(n)))
    }

    fn opendir(&self, _ctx: Context, _inode: u64, _flags: u32) -> io::Result<(Option<u64>, OpenOptions)> {
        Ok((Some(0), OpenOptions::CACHE_DIR))
    }

    fn readdir(&self, _ctx: Context, inode: u64, _h: u64, _size: u32, offset: u64) -> io::Result<DirIter> {
        // Offsets are the cookies of `vfs::listing`, which no change
        // elsewhere in the directory shifts.
        let entries = res(self.vfs.list(inode, offset))?
            .0
            .into_iter()
            .filter_map(|e| Some((e.ino, e.cookie, dirent_type(e.kind), CString::new(e.name).ok()?)))
            .collect();
        Ok(DirIter { entries, pos: 0 })
    }

    fn releasedir(&self, _ctx: Context, _inode: u64, _flags: u32, _h: u64) -> io::Result<()> {
        Ok(())
    }

    fn fsyncdir(&self, ctx: Context, inode: u64, datasync: bool, h: u64) -> io::Result<()> {
        self.fsync(ctx, inode, datasync, h)
    }

    fn syncfs(&self, ctx: Context, inode: u64) -> io::Result<()> {
        self.fsync(ctx, inode, false, 0)
    }
}

impl SerializableFileSystem for MonoVirtioFs {}

fn xattr_size(size: u32, len: usize) -> io::Result<()> {
    if size != 0 && len > size as usize { Err(io::Error::from_raw_os_error(nix::libc::ERANGE)) } else { Ok(()) }
}

/// The vhost-user-fs backend for one VM, serving on its own thread.
pub struct Server {
    socket: PathBuf,
    thread: Option<JoinHandle<std::result::Result<(), String>>>,
}

impl Server {
    /// Listens on `socket` and serves `vfs` to the first (only) client.
    pub fn start(vfs: Arc<Vfs>, socket: &Path) -> Result<Server> {
        Self::serve(MonoVirtioFs::new(vfs), socket, false)
    }

    /// Listens on `socket` and serves host directory `dir` through
    /// virtiofsd's own passthrough file system (a `-v` volume). Read-only
    /// volumes use its read-only variant, which refuses every change
    /// whatever the guest's mount options say.
    pub fn start_passthrough(dir: &Path, read_only: bool, socket: &Path) -> Result<Server> {
        let root_dir = dir
            .to_str()
            .filter(|d| d.starts_with('/'))
            .ok_or_else(|| Error::Setup(format!("volume {}: not an absolute UTF-8 path", dir.display())))?
            .to_owned();
        // No xattrs: the guest's root would otherwise set `trusted.*` and
        // `security.*` ones on host files as the host's root.
        let cfg = passthrough::Config { root_dir, ..Default::default() };
        let failed = |e: io::Error| Error::io(format!("serving volume {}", dir.display()), e);
        // PassthroughFs::new clears the umask of the whole process; ours is
        // put back, and the serving threads clear their own (see `serve`).
        let umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let served = if read_only {
            PassthroughFsRo::new(cfg).map_err(failed).and_then(|fs| Self::serve(fs, socket, true))
        } else {
            PassthroughFs::new(cfg).map_err(failed).and_then(|fs| Self::serve(fs, socket, true))
        };
        nix::sys::stat::umask(umask);
        served
    }

    /// Serves `fs` on its own thread. `own_umask` (a host directory): the
    /// thread (and the vring workers it starts) get a file-system context
    /// of their own with umask 0, so the guest's modes reach the host as
    /// asked without touching this process's umask, and lose CAP_MKNOD,
    /// so the guest cannot make device nodes in the host directory (a
    /// world-writable node of the host's disk, say); fifos and sockets
    /// need no capability.
    fn serve<F>(fs: F, socket: &Path, own_umask: bool) -> Result<Server>
    where
        F: FileSystem + SerializableFileSystem + Send + Sync + 'static,
    {
        let mut listener = Listener::new(socket, true)
            .map_err(|e| Error::Setup(format!("listening on {}: {e:?}", socket.display())))?;
        let (ready_tx, ready) = std::sync::mpsc::sync_channel::<std::result::Result<(), String>>(1);
        let thread = std::thread::Builder::new()
            .name("virtiofs".into())
            .spawn(move || {
                let setup = || -> std::result::Result<VhostUserDaemon<_>, String> {
                    if own_umask {
                        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
                            .map_err(|e| format!("unshare(CLONE_FS): {e}"))?;
                        nix::sys::stat::umask(nix::sys::stat::Mode::empty());
                        // Capabilities are per thread, and threads started
                        // here inherit this one's.
                        for set in [caps::CapSet::Effective, caps::CapSet::Permitted] {
                            caps::drop(None, set, caps::Capability::CAP_MKNOD)
                                .map_err(|e| format!("dropping CAP_MKNOD: {e}"))?;
                        }
                    }
                    // One request thread (pool size 0): a larger pool makes
                    // virtiofsd unshare(CLONE_FS) per worker; the tag is
                    // given on QEMU's device.
                    let backend = Arc::new(
                        VhostUserFsBackendBuilder::default()
                            .set_thread_pool_size(0)
                            .build(fs)
                            .map_err(|e| format!("virtio-fs backend: {e}"))?,
                    );
                    VhostUserDaemon::new(
                        "monocore-virtiofs".into(),
                        backend,
                        GuestMemoryAtomic::new(GuestMemoryMmap::new()),
                    )
                    .map_err(|e| format!("vhost-user daemon: {e:?}"))
                };
                let mut daemon = match setup() {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        d
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                daemon.start(&mut listener).map_err(|e| format!("vhost-user start: {e:?}"))?;
                match daemon.wait() {
                    Ok(())
                    | Err(vhost_user_backend::Error::HandleRequest(
                        vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
                    )) => Ok(()),
                    Err(e) => Err(format!("vhost-user: {e:?}")),
                }
            })
            .map_err(|e| Error::io("starting the virtio-fs thread", e))?;
        let server = Server { socket: socket.to_owned(), thread: Some(thread) };
        match ready.recv() {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => Err(Error::Setup(e)),
            Err(_) => Err(Error::Setup("the virtio-fs thread ended while starting".into())),
        }
    }

    /// Waits for the backend to end; call once QEMU is gone. A backend
    /// still waiting for QEMU to connect (it died first) is woken by a
    /// connection of our own, which hangs up at once.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        if !thread.is_finished() {
            let _ = UnixStream::connect(&self.socket);
        }
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("virtio-fs backend: {e}"),
            Err(_) => tracing::warn!("the virtio-fs backend panicked"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A volume's backend starts (read-only or not), leaves this process's
    /// umask alone, and ends when woken without a VM.
    #[test]
    fn passthrough_volumes_start_and_keep_the_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("shared");
        let before = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        for (i, ro) in [false, true].into_iter().enumerate() {
            let server = Server::start_passthrough(&shared, ro, &dir.path().join(format!("v{i}.sock"))).expect("start");
            server.finish();
        }
        let after = nix::sys::stat::umask(before);
        assert_eq!(after.bits(), 0o022, "restored, not cleared");
        let err = Server::start_passthrough(Path::new("relative"), false, &dir.path().join("x.sock"));
        assert!(err.is_err());
    }
}
