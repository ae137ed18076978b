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

use super::{FileKind, Ino, VResult, Vfs};

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

/// The entries of `all` whose cookies come after `cookie`, in cookie order.
pub fn after(all: Vec<(Ino, FileKind, Vec<u8>)>, cookie: u64) -> Vec<Listed> {
    let mut rest: Vec<Listed> = all
        .into_iter()
        .map(|(ino, kind, name)| Listed { cookie: cookie_of(&name), ino, kind, name })
        .filter(|e| e.cookie > cookie)
        .collect();
    rest.sort_unstable_by(|a, b| (a.cookie, &a.name).cmp(&(b.cookie, &b.name)));
    rest
}

impl Vfs {
    /// The entries of directory `ino` (with `.` and `..`) after `cookie`
    /// (0: from the start), in the order of their cookies.
    pub fn list(&self, ino: Ino, cookie: u64) -> VResult<Vec<Listed>> {
        Ok(after(self.readdir(ino)?, cookie))
    }
}
