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

fn encode(stat: &FileStat, content: &Content) -> Vec<u8> {
    let mut w = Writer::new();
    w.varint(stat.dev);
    w.varint(stat.ino);
    w.varint(stat.size);
    stat.mtime.encode(&mut w);
    stat.ctime.encode(&mut w);
    match content {
        Content::Empty => w.u8(0),
        Content::Inline(data) => {
            w.u8(1);
            w.bytes(data);
        }
        Content::Chunk(id) => {
            w.u8(2);
            w.id(id);
        }
        Content::List(id) => {
            w.u8(3);
            w.id(id);
        }
    }
    w.into_bytes()
}

fn decode(bytes: &[u8]) -> Result<(FileStat, Content), DecodeError> {
    let mut r = Reader::new(bytes);
    let dev = r.varint()?;
    let ino = r.varint()?;
    let size = r.varint()?;
    let mtime = Timestamp::decode(&mut r)?;
    let ctime = Timestamp::decode(&mut r)?;
    let content = match r.u8()? {
        0 => Content::Empty,
        1 => Content::Inline(r.bytes()?.to_vec()),
        2 => Content::Chunk(r.id()?),
        3 => Content::List(r.id()?),
        t => {
            return Err(DecodeError::Invalid {
                what: "stat cache content tag",
                value: u64::from(t),
            });
        }
    };
    r.finish()?;
    Ok((
        FileStat {
            dev,
            ino,
            size,
            mtime,
            ctime,
            nlink: 0,
        },
        content,
    ))
}

/// The cached content of a file whose stat is unchanged. Any damage to a
/// record only costs a re-read, so errors count as misses.
pub(crate) fn lookup(
    store: &dyn Store,
    codec: &Codec,
    key: &[u8; 32],
    stat: &FileStat,
) -> Option<Content> {
    let stored = store.get(Table::StatCache, key).ok()??;
    let plain = codec.open_record(key, &stored).ok()?;
    let (cached, content) = decode(&plain).ok()?;
    let same = cached.dev == stat.dev
        && cached.ino == stat.ino
        && cached.size == stat.size
        && cached.mtime == stat.mtime
        && cached.ctime == stat.ctime;
    let present = match &content {
        // Plain records carry no checksum: never vouch for an absent object.
        Content::Chunk(id) | Content::List(id) => {
            store.has(Table::Objects, id.as_bytes()).unwrap_or(false)
        }
        Content::Empty => stat.size == 0,
        Content::Inline(data) => data.len() as u64 == stat.size,
    };
    (same && present).then_some(content)
}

/// The sealed record for a freshly read file, or `None` when it should not
/// be cached: a file modified so recently that a later change within the
/// same timestamp tick could go unnoticed. Inline content is kept in the
/// (sealed) record, so an unchanged tree is committed without opening a
/// single file.
pub(crate) fn record(
    codec: &Codec,
    key: &[u8; 32],
    stat: &FileStat,
    content: &Content,
    started: Timestamp,
) -> Option<Vec<u8>> {
    let racy = stat.mtime.sec >= started.sec - 1 || stat.ctime.sec >= started.sec - 1;
    if racy {
        return None;
    }
    Some(codec.seal_record(key, &encode(stat, content)))
}

/// Whether a stored record is readable and its content is in `live`; gc
/// drops the others so no record can vouch for a swept object.
pub(crate) fn refers_to_live(
    codec: &Codec,
    key: &[u8],
    stored: &[u8],
    live: &HashSet<ObjectId>,
) -> bool {
    let Ok(plain) = codec.open_record(key, stored) else {
        return false;
    };
    match decode(&plain) {
        Ok((_, Content::Chunk(id) | Content::List(id))) => live.contains(&id),
        Ok((_, Content::Empty | Content::Inline(_))) => true,
        Err(_) => false,
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
        for content in [
            content,
            Content::Empty,
            Content::Inline(b"abc".to_vec()),
            Content::Chunk(ObjectId([1; 32])),
        ] {
            let bytes = encode(&stat, &content);
            assert_eq!(decode(&bytes).expect("decodes"), (stat, content));
        }
    }
}
