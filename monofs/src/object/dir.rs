//! Directory objects: sorted entries with their metadata.

use super::{BODY_VERSION, check_version};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::ObjectId;

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds (negative before 1970).
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp { sec: d.as_secs() as i64, nsec: d.subsec_nanos() }
    }

    /// Nanoseconds since the epoch, saturating.
    pub fn as_nanos(&self) -> i128 {
        i128::from(self.sec) * 1_000_000_000 + i128::from(self.nsec)
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.signed(self.sec);
        w.varint(u64::from(self.nsec));
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Timestamp, DecodeError> {
        let sec = r.signed()?;
        let nsec = r.varint_u32("nanoseconds")?;
        if nsec >= 1_000_000_000 {
            return Err(DecodeError::Invalid { what: "nanoseconds", value: u64::from(nsec) });
        }
        Ok(Timestamp { sec, nsec })
    }
}

/// Inode metadata kept for every entry except hard links (which share their
/// primary's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// Mode, uid, gid, mtime, then the sorted xattrs.
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.varint(u64::from(self.mode));
        w.varint(u64::from(self.uid));
        w.varint(u64::from(self.gid));
        self.mtime.encode(w);
        w.varint(self.xattrs.len() as u64);
        for (k, v) in &self.xattrs {
            w.bytes(k);
            w.bytes(v);
        }
    }

    /// Parses [`Meta::encode`] output, checking the mode range and that
    /// xattrs are strictly sorted.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Meta, DecodeError> {
        let mode = r.varint_u32("mode")?;
        if mode > 0o7777 {
            return Err(DecodeError::Invalid { what: "mode", value: u64::from(mode) });
        }
        let uid = r.varint_u32("uid")?;
        let gid = r.varint_u32("gid")?;
        let mtime = Timestamp::decode(r)?;
        let nx = r.count()?;
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(nx);
        for _ in 0..nx {
            let (k, v) = (r.bytes()?.to_vec(), r.bytes()?.to_vec());
            if xattrs.last().is_some_and(|(prev, _)| *prev >= k) {
                return Err(DecodeError::Unsorted);
            }
            xattrs.push((k, v));
        }
        Ok(Meta { mode, uid, gid, mtime, xattrs })
    }
}

/// Where a regular file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Zero bytes.
    Empty,
    /// Small files live in the directory entry itself.
    Inline(Vec<u8>),
    /// The whole file is one chunk.
    Chunk(ObjectId),
    /// A [`super::ChunkList`] tree.
    List(ObjectId),
}

/// The type-specific part of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Length in bytes.
        size: u64,
        /// Where its bytes are.
        content: Content,
    },
    /// A subdirectory.
    Dir {
        /// Its [`Dir`] object.
        id: ObjectId,
    },
    /// A symbolic link.
    Symlink {
        /// Link target, as stored by the OS.
        target: Vec<u8>,
    },
    /// A further name of a file that appears earlier in the tree: its
    /// root-relative path (see docs/FORMAT.md, "Hard links").
    HardLink {
        /// Root-relative path of the primary entry.
        target: Vec<u8>,
    },
    /// A named pipe.
    Fifo,
    /// A Unix domain socket node.
    Socket,
    /// A character device.
    CharDev {
        /// Device major number.
        major: u64,
        /// Device minor number.
        minor: u64,
    },
    /// A block device.
    BlockDev {
        /// Device major number.
        major: u64,
        /// Device minor number.
        minor: u64,
    },
}

impl EntryKind {
    fn code(&self) -> u8 {
        match self {
            EntryKind::File { .. } => 1,
            EntryKind::Dir { .. } => 2,
            EntryKind::Symlink { .. } => 3,
            EntryKind::HardLink { .. } => 4,
            EntryKind::Fifo => 5,
            EntryKind::CharDev { .. } => 6,
            EntryKind::BlockDev { .. } => 7,
            EntryKind::Socket => 8,
        }
    }

    /// Short type name for diffs and listings.
    pub fn type_name(&self) -> &'static str {
        match self {
            EntryKind::File { .. } => "file",
            EntryKind::Dir { .. } => "dir",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::HardLink { .. } => "hardlink",
            EntryKind::Fifo => "fifo",
            EntryKind::CharDev { .. } => "chardev",
            EntryKind::BlockDev { .. } => "blockdev",
            EntryKind::Socket => "socket",
        }
    }
}

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// File name bytes (no `/`, not `.` or `..`).
    pub name: Vec<u8>,
    /// Type and type-specific data.
    pub kind: EntryKind,
    /// Metadata; all-default and not encoded for hard links.
    pub meta: Meta,
}

/// A directory: entries strictly sorted by name bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dir {
    /// Sorted entries.
    pub entries: Vec<Entry>,
    /// Logical bytes of all regular files below (hard links counted once).
    pub size: u64,
}

/// Whether `name` may be a directory entry name.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

impl Dir {
    /// Looks an entry up by name.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.name.as_slice().cmp(name)).ok().map(|i| &self.entries[i])
    }

    /// The canonical encoding; entries must already be sorted.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(BODY_VERSION);
        w.varint(self.entries.len() as u64);
        for e in &self.entries {
            w.bytes(&e.name);
            w.u8(e.kind.code());
            if let EntryKind::HardLink { target } = &e.kind {
                w.bytes(target);
                continue;
            }
            e.meta.encode(&mut w);
            match &e.kind {
                EntryKind::File { size, content } => {
                    w.varint(*size);
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
                }
                EntryKind::Dir { id } => w.id(id),
                EntryKind::Symlink { target } => w.bytes(target),
                EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor } => {
                    w.varint(*major);
                    w.varint(*minor);
                }
                EntryKind::Fifo | EntryKind::Socket | EntryKind::HardLink { .. } => {}
            }
        }
        w.varint(self.size);
        w.into_bytes()
    }

    /// Parses and validates an encoding produced by [`Dir::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Dir, DecodeError> {
        let mut r = Reader::new(bytes);
        check_version(&mut r)?;
        let n = r.count()?;
        let mut entries: Vec<Entry> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.bytes()?.to_vec();
            if !valid_name(&name) {
                return Err(DecodeError::BadName(String::from_utf8_lossy(&name).into_owned()));
            }
            if entries.last().is_some_and(|prev| prev.name >= name) {
                return Err(DecodeError::Unsorted);
            }
            let code = r.u8()?;
            if code == 4 {
                let target = r.bytes()?.to_vec();
                entries.push(Entry { name, kind: EntryKind::HardLink { target }, meta: Meta::default() });
                continue;
            }
            let meta = Meta::decode(&mut r)?;
            let kind = match code {
                1 => {
                    let size = r.varint()?;
                    let content = match r.u8()? {
                        0 => Content::Empty,
                        1 => Content::Inline(r.bytes()?.to_vec()),
                        2 => Content::Chunk(r.id()?),
                        3 => Content::List(r.id()?),
                        t => {
                            return Err(DecodeError::Invalid { what: "content tag", value: u64::from(t) });
                        }
                    };
                    let consistent = match &content {
                        Content::Empty => size == 0,
                        Content::Inline(data) => data.len() as u64 == size,
                        Content::Chunk(_) | Content::List(_) => size > 0,
                    };
                    if !consistent {
                        return Err(DecodeError::Invalid { what: "file size", value: size });
                    }
                    EntryKind::File { size, content }
                }
                2 => EntryKind::Dir { id: r.id()? },
                3 => EntryKind::Symlink { target: r.bytes()?.to_vec() },
                5 => EntryKind::Fifo,
                6 => EntryKind::CharDev { major: r.varint()?, minor: r.varint()? },
                7 => EntryKind::BlockDev { major: r.varint()?, minor: r.varint()? },
                8 => EntryKind::Socket,
                t => {
                    return Err(DecodeError::Invalid { what: "entry type", value: u64::from(t) });
                }
            };
            entries.push(Entry { name, kind, meta });
        }
        let size = r.varint()?;
        r.finish()?;
        Ok(Dir { entries, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            mtime: Timestamp { sec: 1_000_000_000, nsec: 123_456_789 },
            xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
        }
    }

    fn sample() -> Dir {
        let e = |name: &str, kind| Entry { name: name.as_bytes().to_vec(), kind, meta: meta() };
        Dir {
            entries: vec![
                e("a", EntryKind::File { size: 3, content: Content::Inline(b"abc".to_vec()) }),
                e("b", EntryKind::File { size: 0, content: Content::Empty }),
                e("c", EntryKind::File { size: 1 << 33, content: Content::List(ObjectId([3; 32])) }),
                e("d", EntryKind::Dir { id: ObjectId([4; 32]) }),
                e("dev", EntryKind::CharDev { major: 1, minor: 3 }),
                e("fifo", EntryKind::Fifo),
                Entry {
                    name: b"hl".to_vec(),
                    kind: EntryKind::HardLink { target: b"a".to_vec() },
                    meta: Meta::default(),
                },
                e("l", EntryKind::Symlink { target: b"../x".to_vec() }),
            ],
            size: 3 + (1 << 33),
        }
    }

    #[test]
    fn round_trip() {
        let d = sample();
        assert_eq!(Dir::decode(&d.encode()).expect("decodes"), d);
        assert!(d.get(b"fifo").is_some());
        assert!(d.get(b"zzz").is_none());
    }

    #[test]
    fn rejects_unsorted_and_bad_names() {
        let mut d = sample();
        d.entries.swap(0, 1);
        assert_eq!(Dir::decode(&d.encode()), Err(DecodeError::Unsorted));
        let mut d = sample();
        d.entries[0].name = b"..".to_vec();
        assert!(matches!(Dir::decode(&d.encode()), Err(DecodeError::BadName(_))));
        let mut d = sample();
        d.entries[0].name = b"a/b".to_vec();
        assert!(matches!(Dir::decode(&d.encode()), Err(DecodeError::BadName(_))));
    }

    #[test]
    fn every_truncation_fails() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(Dir::decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }
}
