//! A revision (commit): a root directory and where it came from.

use super::{BODY_VERSION, Meta, Timestamp, check_version};
use crate::encoding::{DecodeError, Reader, Writer};
use crate::id::ObjectId;

/// A snapshot of a tree with its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// Root directory object.
    pub root: ObjectId,
    /// Parent revisions; empty for the first one.
    pub parents: Vec<ObjectId>,
    /// When it was made.
    pub time: Timestamp,
    /// Who made it (`user@host`).
    pub author: String,
    /// The commit message.
    pub message: String,
    /// Logical bytes of file content in the tree.
    pub size: u64,
    /// Metadata of the root directory itself (its entries carry their own).
    pub root_meta: Meta,
}

impl Revision {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(BODY_VERSION);
        w.id(&self.root);
        w.varint(self.parents.len() as u64);
        for p in &self.parents {
            w.id(p);
        }
        w.signed(self.time.sec);
        w.varint(u64::from(self.time.nsec));
        w.bytes(self.author.as_bytes());
        w.bytes(self.message.as_bytes());
        w.varint(self.size);
        self.root_meta.encode(&mut w);
        w.into_bytes()
    }

    /// Parses an encoding produced by [`Revision::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Revision, DecodeError> {
        let mut r = Reader::new(bytes);
        check_version(&mut r)?;
        let root = r.id()?;
        let n = r.count()?;
        let mut parents = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            parents.push(r.id()?);
        }
        let time = Timestamp::decode(&mut r)?;
        let author = String::from_utf8_lossy(r.bytes()?).into_owned();
        let message = String::from_utf8_lossy(r.bytes()?).into_owned();
        let size = r.varint()?;
        let root_meta = Meta::decode(&mut r)?;
        r.finish()?;
        Ok(Revision { root, parents, time, author, message, size, root_meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let rev = Revision {
            root: ObjectId([7; 32]),
            parents: vec![ObjectId([1; 32]), ObjectId([2; 32])],
            time: Timestamp { sec: -5, nsec: 999_999_999 },
            author: "root@host".into(),
            message: "first\nbody".into(),
            size: 42,
            root_meta: Meta { mode: 0o750, uid: 1, gid: 2, mtime: Timestamp { sec: 3, nsec: 4 }, xattrs: vec![] },
        };
        assert_eq!(Revision::decode(&rev.encode()).expect("decodes"), rev);
    }
}
