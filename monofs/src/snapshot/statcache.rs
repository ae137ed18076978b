//! The stat cache: for each source directory last committed, the id of the
//! Dir object it produced and, per regular file, (dev, inode, ctime). A file
//! whose size and mtime still equal that Dir entry's and whose dev, inode and
//! ctime still equal the record's is not read again: its content reference is
//! taken from the old entry (as git's index and restic's parent snapshot do).
//! One record per directory keeps the cache small; keys are keyed digests of
//! the path and records are sealed, so an encrypted repository reveals no
//! names (docs/FORMAT.md, "Stat cache").

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::scan::{FileStat, ScanDir, ScanNode};
use crate::crypto::Codec;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::ObjectId;
use crate::object::{Content, EntryKind, Timestamp};
use crate::repo::Repository;
use crate::store::{Store, Table};

const DOMAIN: &[u8] = b"monofs statcache v2\0";

/// What the cache remembers of one regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub ctime: Timestamp,
}

impl Identity {
    fn of(stat: &FileStat) -> Identity {
        Identity { dev: stat.dev, ino: stat.ino, ctime: stat.ctime }
    }
}

/// The record of one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DirRecord {
    /// The Dir object the last commit built from this directory.
    pub dir: ObjectId,
    /// Cacheable regular files, sorted by name.
    pub files: Vec<(Vec<u8>, Identity)>,
}

/// Table key of a source directory.
pub(crate) fn key(codec: &Codec, dir: &Path) -> [u8; 32] {
    codec.digest(DOMAIN, dir.as_os_str().as_bytes())
}

fn encode(rec: &DirRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.id(&rec.dir);
    w.varint(rec.files.len() as u64);
    for (name, id) in &rec.files {
        w.bytes(name);
        w.varint(id.dev);
        w.varint(id.ino);
        id.ctime.encode(&mut w);
    }
    w.into_bytes()
}

fn decode(bytes: &[u8]) -> Result<DirRecord, DecodeError> {
    let mut r = Reader::new(bytes);
    let dir = r.id()?;
    let n = r.count()?;
    let mut files = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.bytes()?.to_vec();
        let id = Identity { dev: r.varint()?, ino: r.varint()?, ctime: Timestamp::decode(&mut r)? };
        files.push((name, id));
    }
    r.finish()?;
    Ok(DirRecord { dir, files })
}

/// The stored record of a directory; damage only costs a re-read, so any
/// error counts as no record.
pub(crate) fn load(store: &dyn Store, codec: &Codec, key: &[u8; 32]) -> Option<DirRecord> {
    let stored = store.get(Table::StatCache, key).ok()??;
    decode(&codec.open_record(key, &stored).ok()?).ok()
}

/// The sealed form of a record.
pub(crate) fn seal(codec: &Codec, key: &[u8; 32], rec: &DirRecord) -> Vec<u8> {
    codec.seal_record(key, &encode(rec))
}

/// Contents of the files in `scan` that the record vouches for, by name.
/// The old Dir object is read (and verified) to get their content; if it is
/// gone, nothing is reused.
pub(crate) fn reusable(repo: &Repository, rec: &DirRecord, scan: &ScanDir) -> HashMap<Vec<u8>, Content> {
    let Ok(old) = repo.read_dir(&rec.dir) else { return HashMap::new() };
    let known: HashMap<&[u8], &Identity> = rec.files.iter().map(|(n, id)| (n.as_slice(), id)).collect();
    let mut out = HashMap::new();
    for (name, node) in &scan.entries {
        let ScanNode::File { meta, stat, .. } = node else { continue };
        if known.get(name.as_slice()) != Some(&&Identity::of(stat)) {
            continue;
        }
        if let Some(entry) = old.get(name)
            && let EntryKind::File { size, content } = &entry.kind
            && *size == stat.size
            && entry.meta.mtime == meta.mtime
        {
            out.insert(name.clone(), content.clone());
        }
    }
    out
}

/// Whether a file may be cached: one modified so recently that a later
/// change within the same timestamp tick could go unnoticed is not.
pub(crate) fn cacheable(stat: &FileStat, started: Timestamp) -> Option<Identity> {
    let racy = stat.mtime.sec >= started.sec - 1 || stat.ctime.sec >= started.sec - 1;
    (!racy).then(|| Identity::of(stat))
}

/// Whether a stored record is readable and names a live Dir; gc drops the
/// others so no record can vouch for a swept object.
pub(crate) fn refers_to_live(codec: &Codec, key: &[u8], stored: &[u8], live: &HashSet<ObjectId>) -> bool {
    let Ok(plain) = codec.open_record(key, stored) else { return false };
    decode(&plain).is_ok_and(|rec| live.contains(&rec.dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let rec = DirRecord {
            dir: ObjectId([9; 32]),
            files: vec![
                (b"a".to_vec(), Identity { dev: 1, ino: 2, ctime: Timestamp { sec: 3, nsec: 4 } }),
                (b"b".to_vec(), Identity { dev: 1, ino: u64::MAX, ctime: Timestamp { sec: -3, nsec: 0 } }),
            ],
        };
        assert_eq!(decode(&encode(&rec)).expect("decodes"), rec);
        assert!(decode(&encode(&rec)[..40]).is_err());
    }
}
