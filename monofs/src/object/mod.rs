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
