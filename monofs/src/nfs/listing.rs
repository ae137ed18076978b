//! READDIR and READDIRPLUS, answered by the front.
//!
//! A listing is paged by cookies, and nfsserve's cookies were file ids
//! (READDIRPLUS) or nothing at all (READDIR ignored them): two names of one
//! inode (a hard link) at a page boundary made a listing repeat or loop,
//! and a directory larger than one READDIR reply never ended. Here a
//! cookie is a hash of the entry's name and a page is the entries whose
//! cookies follow the one asked for, in cookie order. Such a cookie stays
//! meaningful whatever else changes in the directory: entries removed
//! while a client lists it (as `rm -r` does) neither shift nor hide the
//! rest, so the verifier is always zero (RFC 1813, 3.3.16: "servers in
//! which directory cookies are always valid").

use std::hash::{Hash, Hasher};
use std::io::Cursor;

use nfsserve::nfs::{cookie3, cookieverf3, fileid3, nfs_fh3, nfsstat3, post_op_attr, post_op_fh3};
use nfsserve::vfs::NFSFileSystem as _;
use nfsserve::xdr::XDR;

use super::NfsFs;
use crate::vfs::Ino;

/// Bytes of a reply before its entries: the RPC header the caller wrote
/// aside, status, directory attributes (at most 88 bytes), verifier, and
/// after them the list's end marker and `eof`.
const OVERHEAD: usize = 4 + 88 + 8 + 4 + 4;

/// An entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub cookie: cookie3,
    pub ino: Ino,
    pub name: Vec<u8>,
}

/// The cookie of `name`: `.` and `..` come first, every other name's is a
/// hash above them (the same in every run of a build of the server, so a
/// client's cookie outlives a restart).
pub(super) fn cookie_of(name: &[u8]) -> cookie3 {
    match name {
        b"." => 1,
        b".." => 2,
        _ => {
            let mut h = std::hash::DefaultHasher::new();
            name.hash(&mut h);
            h.finish().max(3)
        }
    }
}

/// A directory's (inode, name) pairs as entries with their cookies.
pub(super) fn entries(all: Vec<(Ino, Vec<u8>)>) -> Vec<Entry> {
    all.into_iter().map(|(ino, name)| Entry { cookie: cookie_of(&name), ino, name }).collect()
}

/// The entries after `cookie`, in cookie order, as many as `fits` accepts
/// (it is told each candidate in turn); the second value says whether
/// they reach the end. Names sharing a cookie are never split across
/// pages, since a client resuming after that cookie would miss the rest.
pub(super) fn page(all: Vec<Entry>, cookie: cookie3, mut fits: impl FnMut(&Entry) -> bool) -> (Vec<Entry>, bool) {
    let mut rest: Vec<Entry> = all.into_iter().filter(|e| e.cookie > cookie).collect();
    rest.sort_unstable_by(|a, b| (a.cookie, &a.name).cmp(&(b.cookie, &b.name)));
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
        let listed = dir.and_then(|d| self.vfs.readdir(d).map_err(super::status));
        let dir_attr = dir.map_or(post_op_attr::Void, |d| self.post(d));
        let all = match listed {
            Ok(all) => all,
            Err(stat) => {
                stat.serialize(out)?;
                return dir_attr.serialize(out);
            }
        };
        let all = entries(all.into_iter().map(|(ino, _, name)| (ino, name)).collect());
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        let (mut size, mut names) = (OVERHEAD, 0usize);
        let (entries, eof) = page(all, a.cookie, |e| {
            let mut one = Vec::new();
            let ok = self.entry(e, plus, &mut one).is_ok();
            names += 8 + xdr_len(&e.name) + 8;
            size += one.len();
            encoded.push(one);
            ok && size <= a.maxcount && a.dircount.is_none_or(|max| names <= max)
        });
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
    fn entry(&self, e: &Entry, plus: bool, out: &mut Vec<u8>) -> std::io::Result<()> {
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

    /// Names of a directory whose files have three inodes between them
    /// (hard links), so that inode numbers cannot stand for positions.
    fn names(n: usize) -> Vec<Entry> {
        let mut all = vec![(1, b".".to_vec()), (1, b"..".to_vec())];
        all.extend((0..n).map(|i| (10 + i as Ino % 3, format!("f{i}").into_bytes())));
        entries(all)
    }

    /// Pages of at most `per` entries from the start to the end.
    fn walk(all: &[Entry], per: usize) -> Vec<Vec<u8>> {
        let (mut seen, mut cookie) = (Vec::new(), 0);
        loop {
            let mut n = 0;
            let (entries, eof) = page(all.to_vec(), cookie, |_| {
                n += 1;
                n <= per
            });
            assert!(!entries.is_empty() || eof, "an empty page before the end");
            seen.extend(entries.iter().map(|e| e.name.clone()));
            if eof {
                return seen;
            }
            cookie = entries.last().expect("entries").cookie;
        }
    }

    #[test]
    fn every_name_once_whatever_the_page_size() {
        let all = names(500);
        for per in [1, 2, 7, 100, 1000] {
            let mut seen = walk(&all, per);
            assert_eq!(&seen[..2], &[b".".to_vec(), b"..".to_vec()], "dot entries first");
            seen.sort();
            let mut want: Vec<_> = all.iter().map(|e| e.name.clone()).collect();
            want.sort();
            assert_eq!(seen, want, "page size {per}");
        }
    }

    #[test]
    fn removing_listed_entries_hides_none_of_the_rest() {
        let mut all = names(300);
        let mut cookie = 0;
        let mut seen = Vec::new();
        loop {
            let mut n = 0;
            let (entries, eof) = page(all.clone(), cookie, |_| {
                n += 1;
                n <= 10
            });
            seen.extend(entries.iter().map(|e| e.name.clone()));
            // What `rm -r` does: unlink what it was just given.
            all.retain(|a| !entries.iter().any(|e| e.name == a.name));
            if eof {
                break;
            }
            cookie = entries.last().expect("entries").cookie;
        }
        assert_eq!(seen.len(), 302);
        assert!(all.is_empty(), "left unlisted: {:?}", all);
    }

    #[test]
    fn names_sharing_a_cookie_stay_on_one_page() {
        let e = |cookie, name: &str| Entry { cookie, ino: cookie, name: name.as_bytes().to_vec() };
        let all = vec![e(5, "a"), e(9, "b"), e(9, "c"), e(12, "d")];
        let upto = |n: usize| {
            let mut seen = 0;
            page(all.clone(), 0, move |_| {
                seen += 1;
                seen <= n
            })
        };
        let (first, eof) = upto(2);
        assert_eq!((first, eof), (vec![e(5, "a")], false), "a page ending between b and c ends before b");
        let (first, _) = upto(3);
        assert_eq!(first.len(), 3, "b and c together");
        let (rest, eof) = page(all.clone(), 5, |_| true);
        assert_eq!((rest.len(), eof), (3, true));
        let (none, eof) = page(all.clone(), 5, |e| e.name != b"c");
        assert!(none.is_empty() && !eof, "a group that does not fit alone gives nothing");
    }
}
