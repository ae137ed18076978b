//! A file's content as an ordered list of chunks, as a tree when long.

use super::{BODY_VERSION, check_version};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::ObjectId;

/// Most references one list node holds; longer files get more levels, so no
/// node grows past about 80 KiB whatever the file size.
pub const MAX_FANOUT: usize = 2048;

/// One reference in a list: a chunk (level 0) or a lower list node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// The chunk or list node.
    pub id: ObjectId,
    /// File bytes covered by it.
    pub size: u64,
}

/// A node of a file's chunk tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkList {
    /// 0: entries are chunks; n > 0: entries are lists of level n - 1.
    pub level: u8,
    /// References in file order.
    pub entries: Vec<ChunkRef>,
}

impl ChunkList {
    /// Bytes of file content this node covers.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(BODY_VERSION);
        w.u8(self.level);
        w.varint(self.entries.len() as u64);
        for e in &self.entries {
            w.id(&e.id);
            w.varint(e.size);
        }
        w.into_bytes()
    }

    /// Parses an encoding produced by [`ChunkList::encode`].
    pub fn decode(bytes: &[u8]) -> Result<ChunkList, DecodeError> {
        let mut r = Reader::new(bytes);
        check_version(&mut r)?;
        let level = r.u8()?;
        let n = r.count()?;
        if n > MAX_FANOUT {
            return Err(DecodeError::Invalid { what: "chunk list length", value: n as u64 });
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(ChunkRef { id: r.id()?, size: r.varint()? });
        }
        r.finish()?;
        Ok(ChunkList { level, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let list = ChunkList {
            level: 1,
            entries: vec![
                ChunkRef { id: ObjectId([1; 32]), size: 10 },
                ChunkRef { id: ObjectId([2; 32]), size: 1 << 40 },
            ],
        };
        assert_eq!(ChunkList::decode(&list.encode()).expect("decodes"), list);
        assert_eq!(list.size(), 10 + (1 << 40));
    }
}
