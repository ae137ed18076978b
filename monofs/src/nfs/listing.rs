//! READDIR and READDIRPLUS, answered by the front.
//!
//! nfsserve's cookies were file ids (READDIRPLUS) or nothing at all
//! (READDIR ignored them): two names of one inode (a hard link) at a page
//! boundary made a listing repeat or loop, and a directory larger than one
//! READDIR reply never ended. The front pages listings by the name-hash
//! cookies of [`crate::vfs::listing`], which stay meaningful whatever else
//! changes in the directory, so the verifier is always zero (RFC 1813,
//! 3.3.16: "servers in which directory cookies are always valid").

use std::io::Cursor;

use nfsserve::nfs::{cookie3, cookieverf3, fileid3, nfs_fh3, nfsstat3, post_op_attr, post_op_fh3};
use nfsserve::vfs::NFSFileSystem as _;
use nfsserve::xdr::XDR;

use super::NfsFs;
use crate::vfs::listing::Listed;

/// Bytes of a reply before its entries: the RPC header the caller wrote
/// aside, status, directory attributes (at most 88 bytes), verifier, and
/// after them the list's end marker and `eof`.
const OVERHEAD: usize = 4 + 88 + 8 + 4 + 4;

/// The first of `rest` (entries in cookie order), as many as `fits`
/// accepts (it is told each candidate in turn); the second value says
/// whether they reach the end. Names sharing a cookie are never split
/// across pages, since a client resuming after that cookie would miss the
/// rest.
pub(super) fn page(mut rest: Vec<Listed>, mut fits: impl FnMut(&Listed) -> bool) -> (Vec<Listed>, bool) {
    let mut taken = 0;
    while taken < rest.len() && fits(&rest[taken]) {
        taken += 1;
    }
    if taken < rest.len() {
        let cut = rest[taken].cookie;
        // Nothing left (a group filling a page alone) makes the caller
        // answer TOOSMALL: a 64-bit collision on a tiny page.
        taken = rest[..taken].iter().rposition(|e| e.cookie != cut).map_or(0, |i| i + 1);
    }
    let eof = taken == rest.len();
    rest.truncate(taken);
    (rest, eof)
}

/// Bytes of `name` as XDR opaque data.
fn xdr_len(name: &[u8]) -> usize {
    4 + name.len().div_ceil(4) * 4
}

/// What READDIR and READDIRPLUS have in common.
struct Args {
    dir: nfs_fh3,
    cookie: cookie3,
    /// Bound on the whole reply (READDIR's `count`, READDIRPLUS's `maxcount`).
    maxcount: usize,
    /// Bound on the names, ids and cookies alone (READDIRPLUS's `dircount`).
    dircount: Option<usize>,
}

impl Args {
    fn parse(args: &[u8], plus: bool) -> std::io::Result<Args> {
        let mut r = Cursor::new(args);
        let (mut dir, mut cookie, mut verf, mut count) = (nfs_fh3::default(), 0u64, cookieverf3::default(), 0u32);
        dir.deserialize(&mut r)?;
        cookie.deserialize(&mut r)?;
        verf.deserialize(&mut r)?;
        count.deserialize(&mut r)?;
        if !plus {
            return Ok(Args { dir, cookie, maxcount: count as usize, dircount: None });
        }
        let mut maxcount = 0u32;
        maxcount.deserialize(&mut r)?;
        Ok(Args { dir, cookie, maxcount: maxcount as usize, dircount: Some(count as usize) })
    }
}

impl NfsFs {
    /// READDIR3 (RFC 1813, 3.3.16) and READDIRPLUS3 (3.3.17).
    pub(super) fn readdir3(&self, args: &[u8], plus: bool, out: &mut Vec<u8>) -> std::io::Result<()> {
        let a = Args::parse(args, plus)?;
        let dir = self.fh_to_id(&a.dir);
        let listed = dir.and_then(|d| self.vfs.list(d, a.cookie).map_err(super::status));
        let dir_attr = dir.map_or(post_op_attr::Void, |d| self.post(d));
        let (all, complete) = match listed {
            Ok(listed) => listed,
            Err(stat) => {
                stat.serialize(out)?;
                return dir_attr.serialize(out);
            }
        };
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        let (mut size, mut names) = (OVERHEAD, 0usize);
        let (entries, eof) = page(all, |e| {
            let mut one = Vec::new();
            let ok = self.entry(e, plus, &mut one).is_ok();
            names += 8 + xdr_len(&e.name) + 8;
            size += one.len();
            encoded.push(one);
            ok && size <= a.maxcount && a.dircount.is_none_or(|max| names <= max)
        });
        // The end of what the VFS gave is the end only if it gave the rest.
        let eof = eof && complete;
        if entries.is_empty() && !eof {
            nfsstat3::NFS3ERR_TOOSMALL.serialize(out)?;
            return dir_attr.serialize(out);
        }
        nfsstat3::NFS3_OK.serialize(out)?;
        dir_attr.serialize(out)?;
        cookieverf3::default().serialize(out)?;
        for one in encoded.iter().take(entries.len()) {
            out.extend_from_slice(one);
        }
        false.serialize(out)?;
        eof.serialize(out)
    }

    /// One list item: the "another entry follows" flag, then the entry.
    fn entry(&self, e: &Listed, plus: bool, out: &mut Vec<u8>) -> std::io::Result<()> {
        true.serialize(out)?;
        (e.ino as fileid3).serialize(out)?;
        nfsserve::nfs::filename3::from(e.name.clone()).serialize(out)?;
        e.cookie.serialize(out)?;
        if plus {
            self.post(e.ino).serialize(out)?;
            post_op_fh3::handle(self.id_to_fh(e.ino)).serialize(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::FileKind;
    use crate::vfs::listing::{PAGE, order, page_of};

    /// The files of a directory (inode 1), with three inodes between them
    /// (hard links), so that inode numbers cannot stand for positions.
    fn names(n: usize) -> Vec<(u64, FileKind, Vec<u8>)> {
        (0..n).map(|i| (10 + i as u64 % 3, FileKind::File, format!("f{i}").into_bytes())).collect()
    }

    /// One page of at most `per` entries after `cookie`, as READDIR cuts
    /// what [`crate::vfs::Vfs::list`] gives.
    fn one(all: &[(u64, FileKind, Vec<u8>)], cookie: u64, per: usize) -> (Vec<Listed>, bool) {
        let order = order(all.iter().map(|e| &e.2));
        let (listed, complete) =
            page_of(1, 1, &order, cookie, PAGE, |name| all.iter().find(|e| e.2 == name).map(|e| (e.0, e.1)));
        let mut n = 0;
        let (entries, eof) = page(listed, |_| {
            n += 1;
            n <= per
        });
        (entries, eof && complete)
    }

    #[test]
    fn every_name_once_whatever_the_page_size() {
        for (n, per) in [(500, 1), (500, 2), (500, 7), (500, 100), (500, 1000), (3 * PAGE, usize::MAX)] {
            let all = names(n);
            let (mut seen, mut cookie) = (Vec::new(), 0);
            loop {
                let (entries, eof) = one(&all, cookie, per);
                assert!(!entries.is_empty() || eof, "an empty page before the end");
                seen.extend(entries.iter().map(|e| e.name.clone()));
                if eof {
                    break;
                }
                cookie = entries.last().expect("entries").cookie;
            }
            assert_eq!(&seen[..2], &[b".".to_vec(), b"..".to_vec()], "dot entries first");
            seen.sort();
            let mut want: Vec<_> = all.iter().map(|e| e.2.clone()).collect();
            want.extend([b".".to_vec(), b"..".to_vec()]);
            want.sort();
            assert_eq!(seen, want, "{n} names, page size {per}");
        }
    }

    #[test]
    fn removing_listed_entries_hides_none_of_the_rest() {
        let mut all = names(300);
        let (mut seen, mut cookie) = (0, 0);
        loop {
            let (entries, eof) = one(&all, cookie, 10);
            seen += entries.len();
            // What `rm -r` does: unlink what it was just given.
            all.retain(|a| !entries.iter().any(|e| e.name == a.2));
            if eof {
                break;
            }
            cookie = entries.last().expect("entries").cookie;
        }
        assert_eq!(seen, 302);
        assert!(all.is_empty(), "left unlisted: {all:?}");
    }

    #[test]
    fn names_sharing_a_cookie_stay_on_one_page() {
        let e =
            |cookie, name: &str| Listed { cookie, ino: cookie, kind: FileKind::File, name: name.as_bytes().to_vec() };
        let all = vec![e(5, "a"), e(9, "b"), e(9, "c"), e(12, "d")];
        let upto = |n: usize| {
            let mut seen = 0;
            page(all.clone(), move |_| {
                seen += 1;
                seen <= n
            })
        };
        assert_eq!(upto(2), (vec![e(5, "a")], false), "a page ending between b and c ends before b");
        assert_eq!(upto(3).0.len(), 3, "b and c together");
        assert!(page(all[1..].to_vec(), |_| true).1, "the rest fits: the end");
        let (none, eof) = page(all[1..].to_vec(), |e| e.name != b"c");
        assert!(none.is_empty() && !eof, "a group that does not fit alone gives nothing");
    }
}
