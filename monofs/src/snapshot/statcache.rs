//! The stat cache: for each source path last committed, the file's
//! (dev, inode, size, mtime, ctime) and its content reference, so an
//! unchanged file is not read again (as git's index and restic's parent
//! snapshot do). Keys are keyed digests of the path and records are sealed,
//! so an encrypted repository reveals no names (docs/FORMAT.md, "Stat cache").

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::scan::FileStat;
use crate::crypto::Codec;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::ObjectId;
use crate::object::{Content, Timestamp};
use crate::store::{Store, Table};

const DOMAIN: &[u8] = b"monofs statcache v1\0";

/// Table key of a source path.
pub(crate) fn key(codec: &Codec, path: &Path) -> [u8; 32] {
    codec.digest(DOMAIN, path.as_os_str().as_bytes())
}

fn encode(stat: &FileStat, content: &Content) -> Option<Vec<u8>> {
    let (tag, id) = match content {
        Content::Chunk(id) => (2, id),
        Content::List(id) => (3, id),
        Content::Empty | Content::Inline(_) => return None,
    };
    let mut w = Writer::new();
    w.varint(stat.dev);
    w.varint(stat.ino);
    w.varint(stat.size);
    stat.mtime.encode(&mut w);
    stat.ctime.encode(&mut w);
    w.u8(tag);
    w.id(id);
    Some(w.into_bytes())
}

fn decode(bytes: &[u8]) -> Result<(FileStat, Content), DecodeError> {
    let mut r = Reader::new(bytes);
    let dev = r.varint()?;
    let ino = r.varint()?;
    let size = r.varint()?;
    let mtime = Timestamp::decode(&mut r)?;
    let ctime = Timestamp::decode(&mut r)?;
    let content = match r.u8()? {
        2 => Content::Chunk(r.id()?),
        3 => Content::List(r.id()?),
        t => return Err(DecodeError::Invalid { what: "stat cache content tag", value: u64::from(t) }),
    };
    r.finish()?;
    Ok((FileStat { dev, ino, size, mtime, ctime, nlink: 0 }, content))
}

/// The cached content of a file whose stat is unchanged. Any damage to a
/// record only costs a re-read, so errors count as misses.
pub(crate) fn lookup(store: &dyn Store, codec: &Codec, key: &[u8; 32], stat: &FileStat) -> Option<Content> {
    let stored = store.get(Table::StatCache, key).ok()??;
    let plain = codec.open_record(key, &stored).ok()?;
    let (cached, content) = decode(&plain).ok()?;
    let same = cached.dev == stat.dev
        && cached.ino == stat.ino
        && cached.size == stat.size
        && cached.mtime == stat.mtime
        && cached.ctime == stat.ctime;
    let id = match &content {
        Content::Chunk(id) | Content::List(id) => *id,
        Content::Empty | Content::Inline(_) => return None,
    };
    // Plain records carry no checksum: never vouch for an absent object.
    (same && store.has(Table::Objects, id.as_bytes()).unwrap_or(false)).then_some(content)
}

/// The sealed record for a freshly read file, or `None` when it should not
/// be cached: inline content, or a file modified so recently that a later
/// change within the same timestamp tick could go unnoticed.
pub(crate) fn record(codec: &Codec, key: &[u8; 32], stat: &FileStat, content: &Content, started: Timestamp) -> Option<Vec<u8>> {
    let racy = stat.mtime.sec >= started.sec - 1 || stat.ctime.sec >= started.sec - 1;
    if racy {
        return None;
    }
    encode(stat, content).map(|plain| codec.seal_record(key, &plain))
}

/// Whether a stored record is readable and its content is in `live`; gc
/// drops the others so no record can vouch for a swept object.
pub(crate) fn refers_to_live(codec: &Codec, key: &[u8], stored: &[u8], live: &HashSet<ObjectId>) -> bool {
    let Ok(plain) = codec.open_record(key, stored) else { return false };
    match decode(&plain) {
        Ok((_, Content::Chunk(id) | Content::List(id))) => live.contains(&id),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stat = FileStat {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: Timestamp { sec: 4, nsec: 5 },
            ctime: Timestamp { sec: 6, nsec: 7 },
            nlink: 0,
        };
        let content = Content::List(ObjectId([9; 32]));
        let bytes = encode(&stat, &content).expect("cacheable");
        assert_eq!(decode(&bytes).expect("decodes"), (stat, content));
        assert!(encode(&stat, &Content::Inline(vec![1])).is_none());
    }
}
