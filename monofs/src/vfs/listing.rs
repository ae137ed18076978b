//! Directory listings in pages, for the adapters (FUSE, NFS, virtio-fs).
//!
//! A client lists a large directory in several calls, each resuming after
//! the last entry it got, named by a cookie (FUSE's and virtio-fs's
//! offset, NFS's cookie). Positions in the listing make poor cookies:
//! entries removed or added between calls (as `rm -r` removes what it was
//! given) shift the rest, which is then skipped or listed twice. Here the
//! cookie is a hash of the entry's name and a page is the entries whose
//! cookies follow the one given, in cookie order: whatever else changes,
//! every entry present throughout is listed exactly once.

use std::hash::{Hash, Hasher};

use super::{FileKind, Ino};

/// An entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Where a listing resumes to give the entries after this one.
    pub cookie: u64,
    /// The entry's inode.
    pub ino: Ino,
    /// What the inode is.
    pub kind: FileKind,
    /// The entry's name.
    pub name: Vec<u8>,
}

/// The cookie of `name`: `.` and `..` come first, every other name's is a
/// hash above them (the same in every run of a build, so a client's cookie
/// outlives a restart of the server).
pub fn cookie_of(name: &[u8]) -> u64 {
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

/// Entries a call of [`Vfs::list`] gives at most (more only to finish a
/// run of equal cookies): more than one reply holds, few enough that a
/// page of a huge directory costs little.
pub const PAGE: usize = 1024;

/// A directory's names in cookie order, kept until the directory changes:
/// each page is then a binary search, not a sort of the whole directory
/// (listing 40,000 entries took 1.2 s when every page sorted them all).
pub(crate) type Order = std::sync::Arc<[(u64, Vec<u8>)]>;

/// The [`Order`] of `names`.
pub(crate) fn order<'a>(names: impl Iterator<Item = &'a Vec<u8>>) -> Order {
    let mut all: Vec<(u64, Vec<u8>)> = names.map(|n| (cookie_of(n), n.clone())).collect();
    all.sort_unstable();
    all.into()
}

/// A page of a directory listing after `cookie`: `.` and `..` (inodes
/// `dir` and `parent`), then the names of `order`, each resolved by
/// `entry` (skipped if it resolves to nothing). At most `max` entries,
/// plus the rest of a run of equal cookies, which a page must not split;
/// `true` with the last page.
pub(crate) fn page_of(
    dir: Ino,
    parent: Ino,
    order: &[(u64, Vec<u8>)],
    cookie: u64,
    max: usize,
    entry: impl Fn(&[u8]) -> Option<(Ino, FileKind)>,
) -> (Vec<Listed>, bool) {
    let mut out = Vec::new();
    for (c, ino, name) in [(1, dir, &b"."[..]), (2, parent, b"..")] {
        if cookie < c {
            out.push(Listed { cookie: c, ino, kind: FileKind::Dir, name: name.to_vec() });
        }
    }
    let start = order.partition_point(|(c, _)| *c <= cookie);
    let mut end = (start + max.saturating_sub(out.len())).min(order.len());
    while end > start && end < order.len() && order[end].0 == order[end - 1].0 {
        end += 1;
    }
    for (c, name) in &order[start..end] {
        if let Some((ino, kind)) = entry(name) {
            out.push(Listed { cookie: *c, ino, kind, name: name.clone() });
        }
    }
    (out, end == order.len())
}
