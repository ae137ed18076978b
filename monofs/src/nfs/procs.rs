//! The calls the front answers itself: the NFSv3 procedures nfsserve does
//! not implement (MKNOD, LINK, COMMIT), those whose modes its interface
//! cannot tell apart (CREATE: UNCHECKED takes an existing file, EXCLUSIVE
//! keeps a verifier) or that it gets wrong (SETATTR applied a change its
//! guard refused and sent a second reply after the refusal; SETATTR and
//! READLINK cut their failure replies short), READ and WRITE (the bulk of
//! the bytes, which should not take a detour through nfsserve, and whose
//! WRITE must not claim FILE_SYNC for data that is not stored yet),
//! READDIR and READDIRPLUS (whose cookies nfsserve got wrong; see
//! [`super::listing`]), and portmap's GETPORT, which must name the front's
//! port rather than nfsserve's private one.

use std::io::Cursor;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use nfsserve::nfs::{
    diropargs3, fileid3, ftype3, nfs_fh3, nfspath3, nfsstat3, nfstime3, post_op_attr, post_op_fh3, pre_op_attr, sattr3,
    set_mode3, specdata3, wcc_attr, wcc_data,
};
use nfsserve::vfs::NFSFileSystem as _;
use nfsserve::xdr::XDR;

use super::rpc::{self, Call};
use super::{NfsFs, status};
use crate::object::Timestamp;
use crate::vfs::{FileKind, SetAttr};

const NFS: u32 = nfsserve::nfs::PROGRAM;
const PORTMAP: u32 = 100_000;
const MOUNT: u32 = 100_005;

/// The largest READ answered, as FSINFO's `rtmax` tells clients.
const MAX_READ: u32 = 1 << 20;

/// `createmode3` of a CREATE (RFC 1813, 3.3.8).
const UNCHECKED: u32 = 0;
const GUARDED: u32 = 1;
const EXCLUSIVE: u32 = 2;

/// `stable_how` of a WRITE (RFC 1813, 3.3.7).
const UNSTABLE: u32 = 0;
const FILE_SYNC: u32 = 2;

/// Counts for the group commit of [`NfsFs::sync`].
#[derive(Debug, Default)]
pub struct Durable {
    /// Changes (WRITEs and every call that changes the tree) taken so far.
    written: AtomicU64,
    /// `written` as of the start of the last completed store.
    stored: AtomicU64,
    /// Held by the one caller storing the tree.
    storing: Mutex<()>,
}

/// A call the front answers.
#[derive(Debug, Clone, Copy)]
pub enum Proc {
    SetAttr,
    ReadLink,
    Read,
    Write,
    Create,
    Mknod,
    Link,
    ReadDir,
    ReadDirPlus,
    Commit,
    GetPort,
}

impl Proc {
    /// Whether an answer to it may have changed the tree, apart from WRITE.
    fn changes(self) -> bool {
        matches!(self, Proc::SetAttr | Proc::Create | Proc::Mknod | Proc::Link)
    }

    /// The procedure the front answers for `call`, None for nfsserve's.
    pub fn of(call: &Call) -> Option<Proc> {
        Some(match (call.prog, call.vers, call.proc) {
            (NFS, 3, 2) => Proc::SetAttr,
            (NFS, 3, 5) => Proc::ReadLink,
            (NFS, 3, 6) => Proc::Read,
            (NFS, 3, 7) => Proc::Write,
            (NFS, 3, 8) => Proc::Create,
            (NFS, 3, 11) => Proc::Mknod,
            (NFS, 3, 15) => Proc::Link,
            (NFS, 3, 16) => Proc::ReadDir,
            (NFS, 3, 17) => Proc::ReadDirPlus,
            (NFS, 3, 21) => Proc::Commit,
            (PORTMAP, 2, 3) => Proc::GetPort,
            _ => return None,
        })
    }
}

impl NfsFs {
    /// Counts a change once it is made and before it is answered, so that
    /// a COMMIT sent after the answer stores it: not only WRITEs but
    /// metadata changes too (a COMMIT after a truncate, a remove or a
    /// mkdir used to store nothing, and a crash undid them).
    pub(super) fn count_change(&self) {
        self.durable.written.fetch_add(1, Ordering::SeqCst);
    }

    /// The reply record to `call`, a `proc` the front answers; `port` is
    /// the one clients reach the front on.
    pub(super) fn answer(&self, proc: Proc, call: &Call, msg: &[u8], port: u16) -> Vec<u8> {
        let args = &msg[call.args..];
        let mut out = rpc::accepted(call.xid, rpc::SUCCESS);
        let done = match proc {
            Proc::SetAttr => self.setattr3(args, &mut out),
            Proc::ReadLink => self.readlink3(args, &mut out),
            Proc::Read => self.read3(args, &mut out),
            Proc::Write => self.write3(args, &mut out),
            Proc::Create => self.create3(args, &mut out),
            Proc::Mknod => self.mknod(args, &mut out),
            Proc::Link => self.link(args, &mut out),
            Proc::ReadDir => self.readdir3(args, false, &mut out),
            Proc::ReadDirPlus => self.readdir3(args, true, &mut out),
            Proc::Commit => self.commit(args, &mut out),
            Proc::GetPort => getport(args, port, &mut out),
        };
        if done.is_err() {
            out = rpc::accepted(call.xid, rpc::GARBAGE_ARGS);
        }
        if proc.changes() {
            // Before the client sees the answer: a COMMIT it sends next
            // stores this change (WRITE counts its own, before it syncs).
            self.count_change();
        }
        rpc::seal(&mut out);
        out
    }

    /// Makes every write answered so far durable, for COMMIT and stable
    /// WRITEs: a group commit. Callers that arrive while the working tree
    /// is being stored wait for it; if that store began after their writes,
    /// they are done, otherwise one of them stores again for all of them.
    fn sync(&self) -> Result<(), nfsstat3> {
        let d = &self.durable;
        let want = d.written.load(Ordering::SeqCst);
        let _one = d.storing.lock().map_err(|_| nfsstat3::NFS3ERR_IO)?;
        if d.stored.load(Ordering::SeqCst) >= want {
            return Ok(());
        }
        let upto = d.written.load(Ordering::SeqCst);
        self.vfs.flush().map_err(|e| {
            tracing::error!("NFS: storing the working tree: {e}");
            if e.is_disk_full() { nfsstat3::NFS3ERR_NOSPC } else { nfsstat3::NFS3ERR_IO }
        })?;
        d.stored.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// READ3 (RFC 1813, 3.3.6).
    fn read3(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let (mut file, mut offset, mut count) = (nfs_fh3::default(), 0u64, 0u32);
        file.deserialize(&mut r)?;
        offset.deserialize(&mut r)?;
        count.deserialize(&mut r)?;
        match self.fh_to_id(&file).and_then(|id| self.read_at(id, offset, count.min(MAX_READ))) {
            Ok((data, eof, attr)) => {
                nfsstat3::NFS3_OK.serialize(out)?;
                post_op_attr::attributes(attr).serialize(out)?;
                (data.len() as u32).serialize(out)?;
                eof.serialize(out)?;
                // opaque<>: its length, the bytes, zeros to a multiple of 4.
                (data.len() as u32).serialize(out)?;
                out.extend_from_slice(&data);
                out.resize(out.len().next_multiple_of(4), 0);
                Ok(())
            }
            Err(stat) => {
                stat.serialize(out)?;
                self.post_of(&file).serialize(out)
            }
        }
    }

    /// WRITE3 (RFC 1813, 3.3.7). An UNSTABLE write is answered as such: its
    /// bytes are in memory until the next flush or COMMIT; a stable one is
    /// stored before the reply.
    fn write3(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let (mut file, mut offset, mut count, mut stable, mut len) = (nfs_fh3::default(), 0u64, 0u32, 0u32, 0u32);
        file.deserialize(&mut r)?;
        offset.deserialize(&mut r)?;
        count.deserialize(&mut r)?;
        stable.deserialize(&mut r)?;
        len.deserialize(&mut r)?;
        // The bytes stay where they are in the request.
        let at = r.position() as usize;
        let data = args.get(at..at + len as usize).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let id = self.fh_to_id(&file);
        let before = self.pre(id.ok());
        let result = id.and_then(|id| {
            if count != len {
                return Err(nfsstat3::NFS3ERR_INVAL);
            }
            self.vfs.write(id, offset, data).map_err(status)?;
            self.count_change();
            if stable == UNSTABLE {
                return Ok(UNSTABLE);
            }
            self.sync().map(|()| FILE_SYNC)
        });
        match result {
            Ok(committed) => {
                nfsstat3::NFS3_OK.serialize(out)?;
                self.wcc(before, id.ok()).serialize(out)?;
                count.serialize(out)?;
                committed.serialize(out)?;
                out.extend_from_slice(&self.write_verf);
                Ok(())
            }
            Err(stat) => {
                stat.serialize(out)?;
                self.wcc(before, id.ok()).serialize(out)
            }
        }
    }

    /// Attributes for a post-operation slot: none if the object is gone.
    pub(super) fn post(&self, ino: fileid3) -> post_op_attr {
        self.vfs.getattr(ino).map_or(post_op_attr::Void, |a| post_op_attr::attributes(super::fattr(&a)))
    }

    /// Size and times of a directory before a change, for weak cache
    /// consistency (the client keeps its cache if nothing else moved).
    fn pre(&self, ino: Option<fileid3>) -> pre_op_attr {
        match ino.map(|i| self.vfs.getattr(i)) {
            Some(Ok(a)) => {
                let f = super::fattr(&a);
                pre_op_attr::attributes(wcc_attr { size: f.size, mtime: f.mtime, ctime: f.ctime })
            }
            _ => pre_op_attr::Void,
        }
    }

    fn wcc(&self, before: pre_op_attr, ino: Option<fileid3>) -> wcc_data {
        wcc_data { before, after: ino.map_or(post_op_attr::Void, |i| self.post(i)) }
    }

    /// LINK3: `file` gets another name `link` (RFC 1813, 3.3.15).
    fn link(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let (mut file, mut link) = (nfs_fh3::default(), diropargs3::default());
        file.deserialize(&mut r)?;
        link.deserialize(&mut r)?;
        let dir = self.fh_to_id(&link.dir);
        let before = self.pre(dir.ok());
        let result = self.fh_to_id(&file).and_then(|ino| {
            let a = self.vfs.link(ino, dir?, &link.name.0).map_err(status)?;
            Ok(self.made(a).0)
        });
        let stat = result.err().unwrap_or(nfsstat3::NFS3_OK);
        stat.serialize(out)?;
        self.post_of(&file).serialize(out)?;
        self.wcc(before, dir.ok()).serialize(out)
    }

    fn post_of(&self, fh: &nfs_fh3) -> post_op_attr {
        self.fh_to_id(fh).map_or(post_op_attr::Void, |i| self.post(i))
    }

    /// SETATTR3 (RFC 1813, 3.3.2). With a guard, the change applies only
    /// if the object's ctime is still the one the client names.
    fn setattr3(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let (mut file, mut attr, mut guarded, mut ctime) =
            (nfs_fh3::default(), sattr3::default(), false, nfstime3::default());
        file.deserialize(&mut r)?;
        attr.deserialize(&mut r)?;
        guarded.deserialize(&mut r)?;
        if guarded {
            ctime.deserialize(&mut r)?;
        }
        let id = self.fh_to_id(&file);
        let before = self.pre(id.ok());
        let result = id.and_then(|id| {
            let set = super::set_attr(&attr);
            if !guarded {
                return self.vfs.setattr(id, set).map(drop).map_err(status);
            }
            match self.vfs.setattr_if(id, set, super::from_time(ctime)).map_err(status)? {
                Some(_) => Ok(()),
                None => Err(nfsstat3::NFS3ERR_NOT_SYNC),
            }
        });
        result.err().unwrap_or(nfsstat3::NFS3_OK).serialize(out)?;
        self.wcc(before, id.ok()).serialize(out)
    }

    /// READLINK3 (RFC 1813, 3.3.5).
    fn readlink3(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut file = nfs_fh3::default();
        file.deserialize(&mut Cursor::new(args))?;
        match self.fh_to_id(&file).and_then(|id| self.vfs.readlink(id).map_err(status)) {
            Ok(target) => {
                nfsstat3::NFS3_OK.serialize(out)?;
                self.post_of(&file).serialize(out)?;
                nfspath3::from(target).serialize(out)
            }
            Err(stat) => {
                stat.serialize(out)?;
                self.post_of(&file).serialize(out)
            }
        }
    }

    /// CREATE3: a regular file (RFC 1813, 3.3.8). UNCHECKED over an
    /// existing regular file applies the size asked (0: truncates), as
    /// Linux's nfsd does; GUARDED refuses it; EXCLUSIVE keeps the client's
    /// verifier in the new file's times, as Linux does, so that a
    /// retransmitted create finds its own file rather than EXIST.
    fn create3(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let (mut place, mut how, mut attr) = (diropargs3::default(), 0u32, sattr3::default());
        place.deserialize(&mut r)?;
        how.deserialize(&mut r)?;
        let mut verf = [0u8; 8];
        match how {
            UNCHECKED | GUARDED => attr.deserialize(&mut r)?,
            EXCLUSIVE => std::io::Read::read_exact(&mut r, &mut verf)?,
            _ => return Err(std::io::ErrorKind::InvalidData.into()),
        }
        let dir = self.fh_to_id(&place.dir);
        let before = self.pre(dir.ok());
        let result = dir.and_then(|dir| {
            if self.vfs.is_read_only() {
                return Err(nfsstat3::NFS3ERR_ROFS);
            }
            let name = &place.name.0;
            let perm = if let set_mode3::mode(m) = attr.mode { m & 0o7777 } else { 0o644 };
            let (uid, gid) = Self::owner(&attr);
            let verf_times = verifier_times(verf);
            let asked = super::set_attr(&attr);
            let made = self.vfs.mknod(dir, name, perm | nix::libc::S_IFREG, 0, uid, gid);
            let (ino, set) = match made {
                Ok(a) if how == EXCLUSIVE => {
                    let (atime, mtime) = verf_times;
                    (self.made(a).0, SetAttr { atime: Some(atime), mtime: Some(mtime), ..SetAttr::default() })
                }
                Ok(a) => (self.made(a).0, SetAttr { mode: None, uid: None, gid: None, ..asked }),
                Err(e) if e.errno() == nix::libc::EEXIST && how != GUARDED => {
                    let found = self.vfs.resolve(dir, name).map_err(status)?;
                    if found.kind != FileKind::File {
                        return Err(nfsstat3::NFS3ERR_EXIST);
                    }
                    if how == EXCLUSIVE {
                        // Ours, from a create whose reply was lost, or not
                        // (knfsd also asks for it to be still empty: times
                        // alone can be set to anything by another client).
                        let ours = (found.atime, found.mtime) == verf_times && found.size == 0;
                        return if ours { Ok(found.ino) } else { Err(nfsstat3::NFS3ERR_EXIST) };
                    }
                    (found.ino, SetAttr { size: asked.size, ..SetAttr::default() })
                }
                Err(e) => return Err(status(e)),
            };
            if set.size.is_some() || set.atime.is_some() || set.mtime.is_some() {
                self.vfs.setattr(ino, set).map_err(status)?;
            }
            Ok(ino)
        });
        self.made_reply(result, before, dir.ok(), out)
    }

    /// The reply of a call that makes a node in directory `dir` (CREATE,
    /// MKNOD): the new node's handle and attributes, and the directory's.
    fn made_reply(
        &self,
        result: Result<fileid3, nfsstat3>,
        before: pre_op_attr,
        dir: Option<fileid3>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        match result {
            Ok(ino) => {
                nfsstat3::NFS3_OK.serialize(out)?;
                post_op_fh3::handle(self.id_to_fh(ino)).serialize(out)?;
                self.post(ino).serialize(out)?;
            }
            Err(stat) => stat.serialize(out)?,
        }
        self.wcc(before, dir).serialize(out)
    }

    /// MKNOD3: a fifo, socket or device node (RFC 1813, 3.3.11).
    fn mknod(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let (mut place, mut kind) = (diropargs3::default(), ftype3::NF3REG);
        place.deserialize(&mut r)?;
        kind.deserialize(&mut r)?;
        let (mut attr, mut spec) = (sattr3::default(), specdata3::default());
        let type_bits = match kind {
            ftype3::NF3CHR | ftype3::NF3BLK => {
                attr.deserialize(&mut r)?;
                spec.deserialize(&mut r)?;
                if matches!(kind, ftype3::NF3CHR) { nix::libc::S_IFCHR } else { nix::libc::S_IFBLK }
            }
            ftype3::NF3SOCK => {
                attr.deserialize(&mut r)?;
                nix::libc::S_IFSOCK
            }
            ftype3::NF3FIFO => {
                attr.deserialize(&mut r)?;
                nix::libc::S_IFIFO
            }
            _ => 0,
        };
        let dir = self.fh_to_id(&place.dir);
        let before = self.pre(dir.ok());
        let result = dir.and_then(|dir| {
            if type_bits == 0 {
                return Err(nfsstat3::NFS3ERR_BADTYPE);
            }
            let perm = if let set_mode3::mode(m) = attr.mode { m & 0o7777 } else { 0o644 };
            let rdev = nix::sys::stat::makedev(u64::from(spec.specdata1), u64::from(spec.specdata2));
            let (uid, gid) = Self::owner(&attr);
            let a = self.vfs.mknod(dir, &place.name.0, perm | type_bits, rdev, uid, gid).map_err(status)?;
            Ok(self.made(a).0)
        });
        self.made_reply(result, before, dir.ok(), out)
    }

    /// COMMIT3: makes what was written durable (RFC 1813, 3.3.21). The
    /// working tree is stored as a whole, as `fsync` on the FUSE mount does.
    fn commit(&self, args: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut r = Cursor::new(args);
        let mut file = nfs_fh3::default();
        file.deserialize(&mut r)?;
        let ino = self.fh_to_id(&file);
        let before = self.pre(ino.ok());
        let result = ino.and_then(|_| self.sync());
        result.err().unwrap_or(nfsstat3::NFS3_OK).serialize(out)?;
        self.wcc(before, ino.ok()).serialize(out)?;
        if result.is_ok() {
            out.extend_from_slice(&self.write_verf);
        }
        Ok(())
    }
}

/// The times an EXCLUSIVE create's verifier is kept in until the client
/// sets its own: atime and mtime seconds, as Linux's nfsd keeps it.
fn verifier_times(verf: [u8; 8]) -> (Timestamp, Timestamp) {
    let [a0, a1, a2, a3, m0, m1, m2, m3] = verf;
    let at = |b| Timestamp { sec: i64::from(u32::from_be_bytes(b)), nsec: 0 };
    (at([a0, a1, a2, a3]), at([m0, m1, m2, m3]))
}

/// PMAPPROC_GETPORT: NFSv3 and MOUNT (versions 1 to 3) over TCP are on
/// the front's port; nothing else is served.
fn getport(args: &[u8], port: u16, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut r = rpc::Reader(args);
    let mut word = || r.u32().ok_or(std::io::ErrorKind::InvalidData);
    let (prog, vers, prot) = (word()?, word()?, word()?);
    const TCP: u32 = 6;
    let served = prot == TCP && ((prog == NFS && vers == 3) || (prog == MOUNT && (1..=3).contains(&vers)));
    out.extend_from_slice(&(if served { u32::from(port) } else { 0 }).to_be_bytes());
    Ok(())
}
