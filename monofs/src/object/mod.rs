//! Object kinds and their deterministic encodings (docs/FORMAT.md).

mod chunklist;
mod dir;
mod revision;

pub use chunklist::{ChunkList, ChunkRef, MAX_FANOUT};
pub use dir::{Content, Dir, Entry, EntryKind, Meta, Timestamp, valid_name};
pub use revision::Revision;

/// Version byte at the start of every structured object body.
pub const BODY_VERSION: u8 = 1;

/// What an object is; part of its id and of its stored frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Raw file bytes cut by the chunker.
    Chunk = 1,
    /// Ordered list of chunk (or lower list) references of one file.
    ChunkList = 2,
    /// A directory's sorted entries.
    Dir = 3,
    /// A commit: root directory, parents, time, author, message.
    Revision = 4,
}

impl Kind {
    /// Parses the kind byte of a stored frame.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Chunk,
            2 => Kind::ChunkList,
            3 => Kind::Dir,
            4 => Kind::Revision,
            _ => return None,
        })
    }

    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chunk => "chunk",
            Kind::ChunkList => "chunk list",
            Kind::Dir => "directory",
            Kind::Revision => "revision",
        }
    }
}

fn check_version(r: &mut crate::encoding::Reader<'_>) -> Result<(), crate::encoding::DecodeError> {
    match r.u8()? {
        BODY_VERSION => Ok(()),
        v => Err(crate::encoding::DecodeError::Invalid { what: "object body version", value: u64::from(v) }),
    }
}

/// The objects that the object of `kind` with plaintext `plain` refers to,
/// with their kinds: a revision's root directory and parents, a directory's
/// subdirectories, file chunks and chunk lists, a chunk list's entries. A
/// chunk refers to nothing. Lets a walker outside this crate (replication)
/// follow the DAG one object at a time.
pub fn links(kind: Kind, plain: &[u8]) -> Result<Vec<(crate::ObjectId, Kind)>, crate::encoding::DecodeError> {
    Ok(match kind {
        Kind::Chunk => Vec::new(),
        Kind::ChunkList => {
            let list = ChunkList::decode(plain)?;
            let child = if list.level == 0 { Kind::Chunk } else { Kind::ChunkList };
            list.entries.iter().map(|e| (e.id, child)).collect()
        }
        Kind::Dir => {
            let dir = Dir::decode(plain)?;
            let mut out = Vec::new();
            for e in &dir.entries {
                match &e.kind {
                    EntryKind::Dir { id } => out.push((*id, Kind::Dir)),
                    EntryKind::File { content: Content::Chunk(id), .. } => out.push((*id, Kind::Chunk)),
                    EntryKind::File { content: Content::List(id), .. } => out.push((*id, Kind::ChunkList)),
                    _ => {}
                }
            }
            out
        }
        Kind::Revision => {
            let rev = Revision::decode(plain)?;
            let mut out = vec![(rev.root, Kind::Dir)];
            out.extend(rev.parents.iter().map(|p| (*p, Kind::Revision)));
            out
        }
    })
}

#[cfg(test)]
mod links_tests {
    use super::*;
    use crate::ObjectId;

    #[test]
    fn links_follow_every_reference() {
        let list = ChunkList { level: 0, entries: vec![ChunkRef { id: ObjectId([1; 32]), size: 5 }] };
        assert_eq!(links(Kind::ChunkList, &list.encode()).expect("decodes"), [(ObjectId([1; 32]), Kind::Chunk)]);
        assert!(links(Kind::Chunk, b"anything").expect("chunks").is_empty());
        assert!(links(Kind::Dir, b"\xff").is_err());
    }
}
