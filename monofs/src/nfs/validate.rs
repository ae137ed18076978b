//! A check of every variable-length field of NFSv3 and MOUNT arguments
//! before anything decodes them: nfsserve's decoder sizes a buffer from a
//! length field before reading it, so a 40-byte call claiming a 4 GiB file
//! handle would make it allocate and zero 4 GiB.

use super::rpc::{Call, Reader};

const NFS: u32 = 100_003;
const MOUNT: u32 = 100_005;

/// Longest file handle (RFC 1813, NFS3_FHSIZE).
const MAX_HANDLE: u32 = 64;
/// Longest name let through: past the 255 bytes a directory takes, so that
/// such a name is answered NAMETOOLONG by the tree, as knfsd answers it,
/// rather than refused as garbage; still a bound on what is decoded.
const MAX_NAME: u32 = 1024;
/// Longest path: a symlink's target, a MOUNT directory.
const MAX_PATH: u32 = 4096;
/// Most WRITE data, as FSINFO's `wtmax` says.
const MAX_WRITE: u32 = 1 << 20;
/// READDIR counts nfsserve can honour: it subtracts 128 from the count,
/// and the front relays replies of at most 16 MiB.
const READDIR_COUNTS: std::ops::RangeInclusive<u32> = 128..=(15 << 20);

impl Reader<'_> {
    fn handle(&mut self) -> Option<()> {
        self.opaque(MAX_HANDLE)
    }

    fn dirop(&mut self) -> Option<()> {
        self.handle()?;
        self.opaque(MAX_NAME)
    }

    /// An optional value of `len` bytes behind a boolean.
    fn maybe(&mut self, len: usize) -> Option<()> {
        match self.u32()? {
            0 => Some(()),
            1 => self.skip(len),
            _ => None,
        }
    }

    /// A time to set: don't, server time, or a client time.
    fn set_time(&mut self) -> Option<()> {
        match self.u32()? {
            0 | 1 => Some(()),
            2 => self.skip(8),
            _ => None,
        }
    }

    fn sattr(&mut self) -> Option<()> {
        self.maybe(4)?;
        self.maybe(4)?;
        self.maybe(4)?;
        self.maybe(8)?;
        self.set_time()?;
        self.set_time()
    }
}

/// Whether the arguments of `call` (`args`, the bytes after its header)
/// are well-formed as far as their lengths go. Procedures it does not know
/// pass: nfsserve answers them without decoding anything.
pub fn plausible(call: &Call, args: &[u8]) -> bool {
    let mut r = Reader(args);
    if call.prog == NFS && call.vers != 3 {
        // nfsserve answers other versions PROG_MISMATCH without decoding.
        return true;
    }
    let checked = match (call.prog, call.proc) {
        (NFS, 1 | 5 | 18 | 19 | 20) => r.handle(),
        (NFS, 2) => r.handle().and_then(|()| r.sattr()).and_then(|()| r.maybe(8)),
        (NFS, 3 | 12 | 13) => r.dirop(),
        (NFS, 4) => r.handle().and_then(|()| r.skip(4)),
        (NFS, 6) => r.handle().and_then(|()| r.skip(12)),
        (NFS, 7) => r.handle().and_then(|()| r.skip(16)).and_then(|()| r.opaque(MAX_WRITE)),
        (NFS, 8) => r.dirop().and_then(|()| match r.u32()? {
            0 | 1 => r.sattr(),
            2 => r.skip(8),
            _ => None,
        }),
        (NFS, 9) => r.dirop().and_then(|()| r.sattr()),
        (NFS, 10) => r.dirop().and_then(|()| r.sattr()).and_then(|()| r.opaque(MAX_PATH)),
        (NFS, 11) => r.dirop().and_then(|()| match r.u32()? {
            3 | 4 => r.sattr().and_then(|()| r.skip(8)),
            6 | 7 => r.sattr(),
            _ => Some(()),
        }),
        (NFS, 14) => r.dirop().and_then(|()| r.dirop()),
        (NFS, 15) => r.handle().and_then(|()| r.dirop()),
        (NFS, 16) => r.handle().and_then(|()| r.skip(16)).and_then(|()| count(&mut r)),
        (NFS, 17) => r.handle().and_then(|()| r.skip(20)).and_then(|()| count(&mut r)),
        (NFS, 21) => r.handle().and_then(|()| r.skip(12)),
        (MOUNT, 1 | 3) => r.opaque(MAX_PATH),
        _ => Some(()),
    };
    checked.is_some()
}

/// The count that bounds a READDIR(PLUS) reply, within [`READDIR_COUNTS`].
fn count(r: &mut Reader<'_>) -> Option<()> {
    READDIR_COUNTS.contains(&r.u32()?).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(prog: u32, proc: u32) -> Call {
        Call { xid: 1, prog, vers: 3, proc, args: 0 }
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn handles_and_names_within_limits_pass_and_huge_lengths_fail() {
        let fh = [16, 1, 2, 3, 4];
        let lookup = [&fh[..], &[3, u32::from_be_bytes(*b"abc\0")]].concat();
        assert!(plausible(&call(NFS, 3), &words(&lookup)));
        assert!(!plausible(&call(NFS, 3), &words(&[16, 1, 2, 3, 4, u32::MAX])), "a 4 GiB name");
        assert!(!plausible(&call(NFS, 1), &words(&[u32::MAX])), "a 4 GiB handle");
        assert!(!plausible(&call(NFS, 1), &words(&[65])), "a handle over 64 bytes");
        assert!(!plausible(&call(NFS, 1), &words(&[16, 1])), "a handle cut short");
        assert!(plausible(&call(NFS, 0), &[]), "NULL has no arguments");
        assert!(!plausible(&call(MOUNT, 1), &words(&[u32::MAX])), "a 4 GiB MOUNT path");
    }

    #[test]
    fn writes_symlinks_and_renames_check_every_field() {
        let fh = [8, 1, 2];
        let write = [&fh[..], &[0, 0, 4, 0, 4, 7]].concat();
        assert!(plausible(&call(NFS, 7), &words(&write)));
        let huge = [&fh[..], &[0, 0, 4, 0, MAX_WRITE + 1]].concat();
        assert!(!plausible(&call(NFS, 7), &words(&huge)));
        // SYMLINK: dir handle, name, sattr3 with a mode and a client mtime, target.
        let symlink = [&fh[..], &[1, 7], &[1, 0o777, 0, 0, 0, 0, 2, 5, 6], &[4, 9]].concat();
        assert!(plausible(&call(NFS, 10), &words(&symlink)));
        let bad_target = [&fh[..], &[1, 7], &[0, 0, 0, 0, 0, 0], &[u32::MAX]].concat();
        assert!(!plausible(&call(NFS, 10), &words(&bad_target)));
        let rename = [&fh[..], &[1, 7], &fh[..], &[u32::MAX]].concat();
        assert!(!plausible(&call(NFS, 14), &words(&rename)), "the second name");
        // READDIRPLUS: cookie, verifier, dircount, maxcount.
        let plus = |maxcount| words(&[&fh[..], &[0, 0, 0, 0, 512, maxcount]].concat());
        assert!(plausible(&call(NFS, 17), &plus(1 << 20)));
        assert!(!plausible(&call(NFS, 17), &plus(100)), "under nfsserve's 128-byte overhead");
        assert!(!plausible(&call(NFS, 17), &plus(u32::MAX)), "a reply larger than the front relays");
    }
}
