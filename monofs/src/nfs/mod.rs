//! The NFSv3 adapter (over the `nfsserve` crate): translates NFS calls into
//! [`Vfs`] calls. No file-system logic lives here.
//!
//! File handles are 16 bytes: 8 bytes derived from the repository id, then
//! the inode number. Inode numbers are persistent, so handles survive a
//! server restart; a handle of another repository is BADHANDLE, one whose
//! inode is gone STALE.
//!
//! Clients reach the [`front`](NfsServer), which answers what nfsserve
//! lacks or gets wrong (hard links, special files, COMMIT, directory
//! listings, CREATE's modes, guarded SETATTR) and hands it the rest.

mod front;
mod listing;
mod procs;
mod rpc;
mod validate;

pub use front::{BackendNet, HostNet, NfsServer};

use std::sync::Arc;

use async_trait::async_trait;
use nfsserve::nfs::{
    FSF_CANSETTIME, FSF_HOMOGENEOUS, FSF_LINK, FSF_SYMLINK, fattr3, fileid3, filename3, fsinfo3, ftype3, nfs_fh3,
    nfspath3, nfsstat3, nfstime3, post_op_attr, sattr3, set_atime, set_gid3, set_mode3, set_mtime, set_size3, set_uid3,
    specdata3,
};
use nfsserve::vfs::{NFSFileSystem, ReadDirResult, VFSCapabilities};

use crate::object::Timestamp;
use crate::vfs::{Attr, FileKind, Ino, ROOT, RenameMode, SetAttr, Vfs, VfsError};

/// A [`Vfs`] served over NFSv3.
#[derive(Clone)]
pub struct NfsFs {
    vfs: Arc<Vfs>,
    prefix: [u8; 8],
    /// The write verifier: new for every server run, so that clients
    /// resend UNSTABLE writes a restarted server may have lost.
    write_verf: [u8; 8],
    durable: Arc<procs::Durable>,
}

impl NfsFs {
    /// Serves `vfs`; handles carry a prefix derived from the repository id.
    pub fn new(vfs: Arc<Vfs>) -> NfsFs {
        let id = vfs.repo().config().repo_id;
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&blake3::hash(&id).as_bytes()[..8]);
        let mut write_verf = [0u8; 8];
        if getrandom::fill(&mut write_verf).is_err() {
            // Still new per run: the clock moves between restarts.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            write_verf = (now.as_nanos() as u64).to_le_bytes();
        }
        NfsFs { vfs, prefix, write_verf, durable: Arc::default() }
    }
}

fn status(e: VfsError) -> nfsstat3 {
    use nix::libc::*;
    match e.errno() {
        EPERM => nfsstat3::NFS3ERR_PERM,
        ENOENT => nfsstat3::NFS3ERR_NOENT,
        EIO => nfsstat3::NFS3ERR_IO,
        EACCES => nfsstat3::NFS3ERR_ACCES,
        EEXIST => nfsstat3::NFS3ERR_EXIST,
        EXDEV => nfsstat3::NFS3ERR_XDEV,
        ENOTDIR => nfsstat3::NFS3ERR_NOTDIR,
        EISDIR => nfsstat3::NFS3ERR_ISDIR,
        EINVAL => nfsstat3::NFS3ERR_INVAL,
        EFBIG => nfsstat3::NFS3ERR_FBIG,
        ENOSPC => nfsstat3::NFS3ERR_NOSPC,
        EROFS => nfsstat3::NFS3ERR_ROFS,
        ENAMETOOLONG => nfsstat3::NFS3ERR_NAMETOOLONG,
        ENOTEMPTY => nfsstat3::NFS3ERR_NOTEMPTY,
        _ => nfsstat3::NFS3ERR_IO,
    }
}

fn time(t: Timestamp) -> nfstime3 {
    nfstime3 { seconds: t.sec.clamp(0, i64::from(u32::MAX)) as u32, nseconds: t.nsec }
}

fn from_time(t: nfstime3) -> Timestamp {
    Timestamp { sec: i64::from(t.seconds), nsec: t.nseconds.min(999_999_999) }
}

fn fattr(a: &Attr) -> fattr3 {
    let ftype = match a.kind {
        FileKind::File => ftype3::NF3REG,
        FileKind::Dir => ftype3::NF3DIR,
        FileKind::Symlink => ftype3::NF3LNK,
        FileKind::Fifo => ftype3::NF3FIFO,
        FileKind::Socket => ftype3::NF3SOCK,
        FileKind::CharDev => ftype3::NF3CHR,
        FileKind::BlockDev => ftype3::NF3BLK,
    };
    let rdev = u64::from(a.rdev);
    fattr3 {
        ftype,
        mode: u32::from(a.perm),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.blocks * 512,
        rdev: specdata3 {
            specdata1: nix::sys::stat::major(rdev) as u32,
            specdata2: nix::sys::stat::minor(rdev) as u32,
        },
        fsid: 0,
        fileid: a.ino,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
    }
}

fn set_attr(s: &sattr3) -> SetAttr {
    let when = |now: bool, t: Option<nfstime3>| if now { Some(Timestamp::now()) } else { t.map(from_time) };
    SetAttr {
        mode: match s.mode {
            set_mode3::mode(m) => Some(m),
            set_mode3::Void => None,
        },
        uid: match s.uid {
            set_uid3::uid(u) => Some(u),
            set_uid3::Void => None,
        },
        gid: match s.gid {
            set_gid3::gid(g) => Some(g),
            set_gid3::Void => None,
        },
        size: match s.size {
            set_size3::size(n) => Some(n),
            set_size3::Void => None,
        },
        atime: match s.atime {
            set_atime::DONT_CHANGE => None,
            set_atime::SET_TO_SERVER_TIME => when(true, None),
            set_atime::SET_TO_CLIENT_TIME(t) => when(false, Some(t)),
        },
        mtime: match s.mtime {
            set_mtime::DONT_CHANGE => None,
            set_mtime::SET_TO_SERVER_TIME => when(true, None),
            set_mtime::SET_TO_CLIENT_TIME(t) => when(false, Some(t)),
        },
    }
}

impl NfsFs {
    /// Reads `count` bytes at `offset`: the bytes, whether they reach the
    /// end of the file, and the attributes they were read under.
    fn read_at(&self, id: fileid3, offset: u64, count: u32) -> Result<(bytes::Bytes, bool, fattr3), nfsstat3> {
        let attr = self.vfs.getattr(id).map_err(status)?;
        let data = self.vfs.read(id, offset, count as usize).map_err(status)?;
        let eof = offset + data.len() as u64 >= attr.size;
        Ok((data, eof, fattr(&attr)))
    }

    /// A node just made through the VFS took a kernel-style reference;
    /// NFS never forgets, so give it back at once.
    fn made(&self, a: Attr) -> (fileid3, fattr3) {
        self.vfs.forget(a.ino, 1);
        (a.ino, fattr(&a))
    }

    fn owner(s: &sattr3) -> (u32, u32) {
        let uid = if let set_uid3::uid(u) = s.uid { u } else { 0 };
        let gid = if let set_gid3::gid(g) = s.gid { g } else { 0 };
        (uid, gid)
    }
}

#[async_trait]
impl NFSFileSystem for NfsFs {
    fn capabilities(&self) -> VFSCapabilities {
        if self.vfs.is_read_only() { VFSCapabilities::ReadOnly } else { VFSCapabilities::ReadWrite }
    }

    fn root_dir(&self) -> fileid3 {
        ROOT
    }

    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        self.vfs.resolve(dirid, &filename.0).map(|a| a.ino).map_err(status)
    }

    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        self.vfs.getattr(id).map(|a| fattr(&a)).map_err(status)
    }

    /// Never called: the front answers SETATTR itself (`procs`), guard
    /// and all.
    async fn setattr(&self, _: fileid3, _: sattr3) -> Result<fattr3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    async fn read(&self, id: fileid3, offset: u64, count: u32) -> Result<(Vec<u8>, bool), nfsstat3> {
        self.read_at(id, offset, count).map(|(data, eof, _)| (data.into(), eof))
    }

    async fn write(&self, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        self.vfs.write(id, offset, data).map_err(status)?;
        self.getattr(id).await
    }

    /// Never called: the front answers CREATE itself (`procs`), keeping
    /// UNCHECKED and EXCLUSIVE apart from GUARDED.
    async fn create(&self, _: fileid3, _: &filename3, _: sattr3) -> Result<(fileid3, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    /// Never called, as [`create`](Self::create).
    async fn create_exclusive(&self, _: fileid3, _: &filename3) -> Result<fileid3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    async fn mkdir(&self, dirid: fileid3, dirname: &filename3) -> Result<(fileid3, fattr3), nfsstat3> {
        let a = self.vfs.mkdir(dirid, &dirname.0, 0o755, 0, 0).map_err(status)?;
        Ok(self.made(a))
    }

    async fn remove(&self, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        let a = self.vfs.resolve(dirid, &filename.0).map_err(status)?;
        let r = if a.kind == FileKind::Dir {
            self.vfs.rmdir(dirid, &filename.0)
        } else {
            self.vfs.unlink(dirid, &filename.0)
        };
        r.map_err(status)
    }

    async fn rename(
        &self,
        from_dirid: fileid3,
        from_filename: &filename3,
        to_dirid: fileid3,
        to_filename: &filename3,
    ) -> Result<(), nfsstat3> {
        self.vfs.rename(from_dirid, &from_filename.0, to_dirid, &to_filename.0, RenameMode::Replace).map_err(status)
    }

    /// Never called: the front answers READDIR and READDIRPLUS itself
    /// (`listing`), with cookies that survive hard links and removals.
    async fn readdir(&self, _: fileid3, _: fileid3, _: usize) -> Result<ReadDirResult, nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    async fn symlink(
        &self,
        dirid: fileid3,
        linkname: &filename3,
        symlink: &nfspath3,
        attr: &sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let (uid, gid) = Self::owner(attr);
        let a = self.vfs.symlink(dirid, &linkname.0, &symlink.0, uid, gid).map_err(status)?;
        Ok(self.made(a))
    }

    /// Never called: the front answers READLINK itself (`procs`).
    async fn readlink(&self, _: fileid3) -> Result<nfspath3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    /// nfsserve's transfer sizes (its peer mirror server offers the same),
    /// no file-size limit of its own, and hard links: the front serves LINK.
    async fn fsinfo(&self, root: fileid3) -> Result<fsinfo3, nfsstat3> {
        const MIB: u32 = 1 << 20;
        Ok(fsinfo3 {
            obj_attributes: self.vfs.getattr(root).map_or(post_op_attr::Void, |a| post_op_attr::attributes(fattr(&a))),
            rtmax: MIB,
            rtpref: 124 << 10,
            rtmult: MIB,
            wtmax: MIB,
            wtpref: MIB,
            wtmult: MIB,
            dtpref: MIB,
            maxfilesize: crate::vfs::MAX_FILE_SIZE,
            time_delta: nfstime3 { seconds: 0, nseconds: 1_000_000 },
            properties: FSF_LINK | FSF_SYMLINK | FSF_HOMOGENEOUS | FSF_CANSETTIME,
        })
    }

    fn id_to_fh(&self, id: fileid3) -> nfs_fh3 {
        let mut data = self.prefix.to_vec();
        data.extend_from_slice(&id.to_le_bytes());
        nfs_fh3 { data }
    }

    fn fh_to_id(&self, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
        if fh.data.len() != 16 || fh.data[..8] != self.prefix {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&fh.data[8..]);
        let ino: Ino = u64::from_le_bytes(raw);
        // A handle of a removed file is stale, never another file's.
        self.vfs.getattr(ino).map(|_| ino).map_err(|_| nfsstat3::NFS3ERR_STALE)
    }

    fn serverid(&self) -> [u8; 8] {
        self.prefix
    }
}
