//! The FUSE adapter: translates kernel requests into [`Vfs`] calls. No
//! file-system logic lives here.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::BackingId;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow,
};

use crate::filecache::FileCache;
use crate::object::Timestamp;
use crate::vfs::{Attr, FileKind, RenameMode, SetAttr, VResult, Vfs, VfsError};

/// How long the kernel may cache attributes and names. Changes made behind
/// the kernel's back (checkout) are announced with invalidations.
const TTL: Duration = Duration::from_secs(1);

/// A [`Vfs`] served to the kernel.
pub struct FuseFs {
    vfs: Arc<Vfs>,
    ids: IdShift,
    flush_on_unmount: bool,
    passthrough: Option<Passthrough>,
}

/// File handle of opens whose reads the kernel passes through to a file of
/// the [`FileCache`].
const PASSTHROUGH_FH: u64 = 1;

/// File handle of opens the kernel caches (the usual kind); counted per
/// inode while passthrough is on.
const CACHED_FH: u64 = 0;

/// Files smaller than this are read through the VFS: a copy would cost more
/// than it saves.
const PASSTHROUGH_MIN: u64 = 64 << 10;

/// Reads of unchanged files handed to the kernel (FUSE passthrough).
struct Passthrough {
    cache: FileCache,
    /// The kernel agreed at init (Linux 6.9+, root).
    enabled: AtomicBool,
    /// The opens of each inode, by kind.
    open: Mutex<Opens>,
}

/// The kernel puts an inode either in passthrough or in cached I/O mode
/// and refuses (EIO) an open of the other kind while one is in use, such
/// as a file read by one process and written by another. So only code is
/// passed through (programs and libraries, which are run and mapped, and
/// seldom written in place: see [`Vfs::is_code`]), not while the inode has
/// cached opens, and an open for writing of an inode with passthrough opens
/// is ETXTBSY while anyone reads it that way (Linux says so only while a
/// program runs).
#[derive(Default)]
struct Opens {
    /// Backing file and open count per inode: the kernel wants one backing
    /// file for all the passthrough opens of an inode.
    passthrough: HashMap<u64, (BackingId, u32)>,
    /// Cached opens per inode.
    cached: HashMap<u64, u32>,
}

impl FuseFs {
    /// Serves `vfs` with the stored owners as they are.
    pub fn new(vfs: Arc<Vfs>) -> FuseFs {
        FuseFs { vfs, ids: IdShift::NONE, flush_on_unmount: true, passthrough: None }
    }

    /// Serves `vfs` with owners shifted by `ids`: for a root file system
    /// used from a user namespace whose ids map to a host range, so that a
    /// file stored as owned by root is owned by the namespace's root.
    pub fn with_id_shift(vfs: Arc<Vfs>, ids: IdShift) -> FuseFs {
        FuseFs { vfs, ids, flush_on_unmount: true, passthrough: None }
    }

    /// Passes reads of unchanged files (64 KiB and more) through to whole
    /// copies kept in `cache`, where the kernel supports it (FUSE
    /// passthrough, Linux 6.9+, as root): they then read as fast as local
    /// files, and the page cache keeps them across mounts of the same
    /// contents. Not for encrypted repositories (the copies are plaintext):
    /// there it does nothing.
    pub fn with_file_cache(mut self, cache: FileCache) -> FuseFs {
        if !self.vfs.repo().config().encrypted {
            self.passthrough =
                Some(Passthrough { cache, enabled: AtomicBool::new(false), open: Mutex::new(Opens::default()) });
        }
        self
    }

    /// The cached whole copy of `ino`, opened, when its reads may be passed
    /// through: an unchanged program or library (see [`Opens`]) of
    /// [`PASSTHROUGH_MIN`] bytes or more. Made outside the lock on the
    /// opens, as copying a large program takes a while.
    fn passthrough_copy(&self, pt: &Passthrough, ino: u64) -> Option<std::fs::File> {
        let (id, size) = self.vfs.stored_content(ino).ok().flatten()?;
        if size < PASSTHROUGH_MIN || !self.vfs.is_code(ino).unwrap_or(false) {
            return None;
        }
        let copy = pt.cache.get_or_fill(&id, size, &mut |offset, len| {
            self.vfs.read(ino, offset, len).map(Vec::from).map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
        });
        match copy.and_then(std::fs::File::open) {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::debug!("no passthrough for inode {ino}: {e}");
                None
            }
        }
    }

    /// Opens `ino` for reading: passed through to its cached copy when it
    /// qualifies and has no cached opens, joining the passthrough opens it
    /// has in any case (the kernel takes no other kind beside them), else
    /// cached. Decided under one hold of the opens.
    fn open_read(&self, ino: u64, reply: ReplyOpen) {
        let Some(pt) = self.passthrough.as_ref().filter(|p| p.enabled.load(Ordering::Relaxed)) else {
            return match self.cached_open(ino, || self.vfs.open(ino, false, false)) {
                Ok((fh, flags)) => reply.opened(fh, flags),
                Err(e) => reply.error(e),
            };
        };
        let copy = self.passthrough_copy(pt, ino);
        let Ok(mut opens) = pt.open.lock() else { return reply.error(Errno::EIO) };
        if let Some((backing, count)) = opens.passthrough.get_mut(&ino) {
            match self.vfs.open(ino, false, false) {
                Ok(()) => {
                    *count += 1;
                    reply.opened_passthrough(FileHandle(PASSTHROUGH_FH), FopenFlags::empty(), backing);
                }
                Err(e) => reply.error(Errno::from_i32(e.errno())),
            }
            return;
        }
        let backing = match copy.filter(|_| !opens.cached.contains_key(&ino)).map(|f| reply.open_backing(&f)) {
            Some(Ok(backing)) => Some(backing),
            Some(Err(e)) => {
                tracing::debug!("no passthrough for inode {ino}: {e}");
                None
            }
            None => None,
        };
        if let Err(e) = self.vfs.open(ino, false, false) {
            return reply.error(Errno::from_i32(e.errno()));
        }
        match backing {
            Some(backing) => {
                reply.opened_passthrough(FileHandle(PASSTHROUGH_FH), FopenFlags::empty(), &backing);
                opens.passthrough.insert(ino, (backing, 1));
            }
            None => {
                *opens.cached.entry(ino).or_default() += 1;
                reply.opened(FileHandle(CACHED_FH), FopenFlags::FOPEN_KEEP_CACHE);
            }
        }
    }

    /// Opens `ino` in the VFS with `open` and answers as a cached open,
    /// counted (see [`Opens`]); ETXTBSY while the inode has passthrough
    /// opens, before `open` runs (it may truncate).
    fn cached_open(&self, ino: u64, open: impl FnOnce() -> VResult<()>) -> Result<(FileHandle, FopenFlags), Errno> {
        // The page cache stays valid across opens: only this process
        // changes the tree, and a checkout invalidates what it replaces.
        let cached = (FileHandle(CACHED_FH), FopenFlags::FOPEN_KEEP_CACHE);
        let opens = self.passthrough.as_ref().filter(|p| p.enabled.load(Ordering::Relaxed)).map(|p| p.open.lock());
        let Some(Ok(mut opens)) = opens else {
            return open().map(|()| cached).map_err(|e| Errno::from_i32(e.errno()));
        };
        if opens.passthrough.contains_key(&ino) {
            return Err(Errno::ETXTBSY);
        }
        open().map_err(|e| Errno::from_i32(e.errno()))?;
        *opens.cached.entry(ino).or_default() += 1;
        Ok(cached)
    }

    /// Leaves unflushed edits unflushed at unmount: for a throwaway tree,
    /// whose owner flushes explicitly if it wants to keep it.
    pub fn without_flush_on_unmount(mut self) -> FuseFs {
        self.flush_on_unmount = false;
        self
    }

    /// Stores every pending change (fsync, fsyncdir) and answers: ENOSPC
    /// when the repository's disk is full, EIO for other failures.
    fn store(&self, reply: ReplyEmpty) {
        match self.vfs.flush() {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(Errno::from_i32(VfsError::from(e).errno())),
        }
    }

    /// The stored owner of what `req` creates.
    fn owner(&self, req: &Request) -> (u32, u32) {
        (self.ids.stored_uid(req.uid()), self.ids.stored_gid(req.gid()))
    }
}

/// A block of stored ids `0..count` presented to the kernel as
/// `uid..uid+count` (and `gid..gid+count`), as a user namespace's
/// `uid_map` line `0 uid count` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdShift {
    /// Host uid of stored uid 0.
    pub uid: u32,
    /// Host gid of stored gid 0.
    pub gid: u32,
    /// How many ids are mapped.
    pub count: u32,
}

/// What ids outside the mapped block become (the kernel's overflow id).
const OVERFLOW_ID: u32 = 65534;

impl IdShift {
    /// Every id as it is.
    pub const NONE: IdShift = IdShift { uid: 0, gid: 0, count: u32::MAX };

    fn shift_out(base: u32, count: u32, id: u32) -> u32 {
        if id < count { id.saturating_add(base) } else { OVERFLOW_ID }
    }

    fn shift_in(base: u32, count: u32, host: u32) -> u32 {
        host.checked_sub(base).filter(|id| *id < count).unwrap_or(OVERFLOW_ID)
    }

    /// The host uid of stored uid `id`.
    pub fn host_uid(&self, id: u32) -> u32 {
        Self::shift_out(self.uid, self.count, id)
    }

    /// The host gid of stored gid `id`.
    pub fn host_gid(&self, id: u32) -> u32 {
        Self::shift_out(self.gid, self.count, id)
    }

    /// The stored uid of host uid `host`.
    pub fn stored_uid(&self, host: u32) -> u32 {
        Self::shift_in(self.uid, self.count, host)
    }

    /// The stored gid of host gid `host`.
    pub fn stored_gid(&self, host: u32) -> u32 {
        Self::shift_in(self.gid, self.count, host)
    }
}

fn system_time(t: Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + Duration::from_nanos(u64::from(t.nsec))
    }
}

/// A time the kernel set (setattr), as fuser 0.18 hands it over: it turns
/// the kernel's (seconds, nanoseconds) before 1970 into the epoch minus
/// (|seconds| + nanoseconds), so -1.5 s (-2, 500000000) arrives as -2.5 s.
/// This takes the kernel's two numbers back.
fn time_or_now(t: TimeOrNow) -> Timestamp {
    match t {
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp { sec: d.as_secs() as i64, nsec: d.subsec_nanos() },
            Err(e) => Timestamp { sec: -(e.duration().as_secs() as i64), nsec: e.duration().subsec_nanos() },
        },
        TimeOrNow::Now => Timestamp::now(),
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr, ids: IdShift) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: ids.host_uid(a.uid),
        gid: ids.host_gid(a.gid),
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn errno<T>(r: &VResult<T>) -> Errno {
    match r {
        Ok(_) => Errno::EIO,
        Err(e) => Errno::from_i32(e.errno()),
    }
}

fn entry(reply: ReplyEntry, r: VResult<Attr>, ids: IdShift) {
    match r {
        Ok(a) => reply.entry(&TTL, &file_attr(&a, ids), Generation(0)),
        Err(_) => reply.error(errno(&r)),
    }
}

fn empty(reply: ReplyEmpty, r: VResult<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(_) => reply.error(errno(&r)),
    }
}

fn bytes(name: &OsStr) -> &[u8] {
    name.as_bytes()
}

impl fuser::Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Fewer, larger requests; the kernel clamps to what it supports.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        if let Some(pt) = &self.passthrough {
            // Backing files on a plain (unstacked) file system.
            let agreed = config.add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok();
            pt.enabled.store(agreed, Ordering::Relaxed);
            if !agreed {
                tracing::info!("the kernel offers no FUSE passthrough: reads go through the VFS");
            }
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if !self.flush_on_unmount {
            return;
        }
        if let Err(e) = self.vfs.flush() {
            tracing::error!("final flush failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        entry(reply, self.vfs.lookup(parent.0, bytes(name)), self.ids);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.vfs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a, self.ids)),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (uid, gid) = (uid.map(|u| self.ids.stored_uid(u)), gid.map(|g| self.ids.stored_gid(g)));
        let set = SetAttr { mode, uid, gid, size, atime: atime.map(time_or_now), mtime: mtime.map(time_or_now) };
        match self.vfs.setattr(ino.0, set) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a, self.ids)),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.vfs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let (uid, gid) = self.owner(req);
        let mode = mode & !umask | (mode & nix::libc::S_IFMT);
        entry(reply, self.vfs.mknod(parent.0, bytes(name), mode, u64::from(rdev), uid, gid), self.ids);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let (uid, gid) = self.owner(req);
        entry(reply, self.vfs.mkdir(parent.0, bytes(name), mode & !umask, uid, gid), self.ids);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.vfs.unlink(parent.0, bytes(name)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.vfs.rmdir(parent.0, bytes(name)));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let (uid, gid) = self.owner(req);
        entry(reply, self.vfs.symlink(parent.0, bytes(link_name), target.as_os_str().as_bytes(), uid, gid), self.ids);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else {
            RenameMode::Replace
        };
        empty(reply, self.vfs.rename(parent.0, bytes(name), newparent.0, bytes(newname), mode));
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        entry(reply, self.vfs.link(ino.0, newparent.0, bytes(newname)), self.ids);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let acc = flags.0 & nix::libc::O_ACCMODE;
        let write = acc != nix::libc::O_RDONLY;
        let truncate = flags.0 & nix::libc::O_TRUNC != 0;
        if !write && !truncate {
            return self.open_read(ino.0, reply);
        }
        match self.cached_open(ino.0, || self.vfs.open(ino.0, write, truncate)) {
            Ok((fh, flags)) => reply.opened(fh, flags),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.vfs.read(ino.0, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.vfs.write(ino.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: fuser::LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(pt) = &self.passthrough
            && let Ok(mut open) = pt.open.lock()
        {
            match fh.0 {
                PASSTHROUGH_FH => count_down(&mut open.passthrough, ino.0, |(_, count)| count),
                CACHED_FH => count_down(&mut open.cached, ino.0, |count| count),
                _ => {}
            }
        }
        self.vfs.release(ino.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.store(reply);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        // Offsets are the cookies of `vfs::listing`, which no change
        // elsewhere in the directory shifts.
        match self.vfs.list(ino.0, offset) {
            Ok((entries, _)) => {
                for e in &entries {
                    if reply.add(INodeNo(e.ino), e.cookie, file_type(e.kind), OsStr::from_bytes(&e.name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    /// No ioctls: ENOTTY, which is what `isatty` (TCGETS) and other probes
    /// expect, quietly (fuser's default logs a warning for each).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn lseek(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let data = match whence {
            nix::libc::SEEK_DATA => true,
            nix::libc::SEEK_HOLE => false,
            // The kernel answers the other kinds itself.
            _ => return reply.error(Errno::EINVAL),
        };
        let Ok(offset) = u64::try_from(offset) else { return reply.error(Errno::ENXIO) };
        match self.vfs.seek(ino.0, offset, data) {
            Ok(found) => reply.offset(found as i64),
            Err(e) => reply.error(Errno::from_i32(e.errno())),
        }
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.store(reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (mut blocks, mut bfree) = (1u64 << 30, 1u64 << 30);
        if let Ok(s) = nix::sys::statvfs::statvfs(self.vfs.repo().path()) {
            let frag = s.fragment_size().max(1);
            blocks = s.blocks() * frag / 4096;
            bfree = s.blocks_available() * frag / 4096;
        }
        // No inode table to fill: as many free as the 32-bit count df shows
        // for file systems without one, and the total is used plus free.
        let (used, free) = (self.vfs.inode_count(), u64::from(u32::MAX));
        reply.statfs(blocks, bfree, bfree, used + free, free, 4096, 255, 4096);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let create = flags & nix::libc::XATTR_CREATE != 0;
        let replace = flags & nix::libc::XATTR_REPLACE != 0;
        empty(reply, self.vfs.setxattr(ino.0, bytes(name), value, create, replace));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr_reply(reply, size, self.vfs.getxattr(ino.0, bytes(name)));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(reply, size, self.vfs.listxattr(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.vfs.removexattr(ino.0, bytes(name)));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (uid, gid) = self.owner(req);
        let attr = match self.vfs.create(parent.0, bytes(name), mode & !umask, uid, gid) {
            Ok(a) => a,
            Err(e) => return reply.error(Errno::from_i32(e.errno())),
        };
        // A new inode: no passthrough open to mind, only the count.
        match self.cached_open(attr.ino, || Ok(())) {
            Ok((fh, flags)) => reply.created(&TTL, &file_attr(&attr, self.ids), Generation(0), fh, flags),
            Err(e) => reply.error(e),
        }
    }
}

/// Takes one open of `ino` off `opens`, whose open count `count` finds,
/// and the inode's entry with the last.
fn count_down<V>(opens: &mut HashMap<u64, V>, ino: u64, count: impl Fn(&mut V) -> &mut u32) {
    if let Some(entry) = opens.get_mut(&ino) {
        let n = count(entry);
        *n -= 1;
        if *n == 0 {
            opens.remove(&ino);
        }
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, r: VResult<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(Errno::from_i32(e.errno())),
    }
}

#[cfg(test)]
mod tests {
    use super::IdShift;

    #[test]
    fn id_shift_maps_a_block_and_overflows_outside_it() {
        let s = IdShift { uid: 100_000, gid: 200_000, count: 65_536 };
        assert_eq!((s.host_uid(0), s.host_gid(0)), (100_000, 200_000));
        assert_eq!(s.host_uid(65_535), 165_535);
        assert_eq!(s.host_uid(65_536), 65_534, "beyond the block: the overflow id");
        assert_eq!((s.stored_uid(100_005), s.stored_gid(200_007)), (5, 7));
        assert_eq!(s.stored_uid(0), 65_534, "host root is nobody inside");
        assert_eq!(s.stored_uid(165_536), 65_534);
        for id in [0, 1, 1000, 65_535] {
            assert_eq!(s.stored_uid(s.host_uid(id)), id);
        }
        let none = IdShift::NONE;
        assert_eq!((none.host_uid(0), none.stored_uid(4242), none.host_gid(u32::MAX - 1)), (0, 4242, u32::MAX - 1));
    }
}
