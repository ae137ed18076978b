//! Packs: objects appended into values that fill whole redb pages, and the
//! index entries that locate them.

use std::collections::HashMap;

use redb::{ReadableTable, WriteTransaction};

use super::space::DiskSpace;
use super::{PACKS, corrupt, def, err};
use crate::store::{PackEntry, StoreResult, Table};

/// Largest pack value: a leaf holding one 8-byte key and this value fits a
/// 1 MiB page (redb needs 12 bytes of header and lengths; the rest is slack).
pub(super) const PACK_CAPACITY: usize = (1 << 20) - 64;

/// Packs with less than this share of live bytes are rewritten by compaction.
const REPACK_BELOW: f64 = 0.9;

/// Where an object's bytes are: 16 bytes, pack id, offset and length, all
/// little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Location {
    pub pack: u64,
    pub offset: u32,
    pub len: u32,
}

impl Location {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.pack.to_le_bytes());
        out[8..12].copy_from_slice(&self.offset.to_le_bytes());
        out[12..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Location> {
        let b: &[u8; 16] = b.try_into().ok()?;
        Some(Location {
            pack: u64::from_le_bytes(b[..8].try_into().ok()?),
            offset: u32::from_le_bytes(b[8..12].try_into().ok()?),
            len: u32::from_le_bytes(b[12..].try_into().ok()?),
        })
    }

    /// Pack keys are big-endian so packs sort in creation order.
    pub fn pack_key(&self) -> [u8; 8] {
        self.pack.to_be_bytes()
    }

    pub fn slice<'a>(&self, pack: &'a [u8]) -> Option<&'a [u8]> {
        let start = self.offset as usize;
        pack.get(start..start.checked_add(self.len as usize)?)
    }
}

/// `meta` key of the pack id to use next (u64 little-endian): ids are never
/// reused, so a pack once read can be kept by its id (readers in other
/// processes keep packs across their transactions), whatever compaction
/// drops meanwhile.
const NEXT_PACK: &[u8] = b"next_pack";

/// Set in the id of every pack that holds metadata.
pub(super) const METADATA_BIT: u64 = 1 << 63;

/// Which open pack an object goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stream {
    /// File content.
    Data = 0,
    /// Directories, chunk lists, revisions.
    Metadata = 1,
}

/// The packs being filled inside one write transaction, one per stream.
pub(super) struct PackWriter {
    next: Option<u64>,
    open: [Option<(u64, Vec<u8>)>; 2],
    /// Room on the disk for what is added.
    pub space: DiskSpace,
}

impl PackWriter {
    pub fn new(space: DiskSpace) -> PackWriter {
        PackWriter { next: None, open: [None, None], space }
    }

    /// A fresh pack id for `stream`: a counter shared by both streams, with
    /// [`METADATA_BIT`] set on metadata packs. Never one used before, even
    /// by a pack compaction has dropped since (see [`NEXT_PACK`]).
    fn next_id(&mut self, tx: &WriteTransaction, stream: Stream) -> StoreResult<u64> {
        let n = match self.next {
            Some(n) => n,
            None => {
                let stored = tx.open_table(def(Table::Meta)).map_err(err)?.get(NEXT_PACK).map_err(err)?.map(|v| {
                    <[u8; 8]>::try_from(v.value()).map(u64::from_le_bytes).map_err(|_| corrupt("bad next pack id"))
                });
                let packs = tx.open_table(PACKS).map_err(err)?;
                let low = |k: &[u8]| -> StoreResult<u64> {
                    Ok(u64::from_be_bytes(k.try_into().map_err(|_| corrupt("bad pack key"))?) & !METADATA_BIT)
                };
                let mut next = 0;
                let data_end = METADATA_BIT.to_be_bytes();
                if let Some((k, _)) =
                    packs.range(..data_end.as_slice()).map_err(err)?.next_back().transpose().map_err(err)?
                {
                    next = next.max(low(k.value())? + 1);
                }
                if let Some((k, _)) = packs.last().map_err(err)? {
                    next = next.max(low(k.value())? + 1);
                }
                next.max(stored.transpose()?.unwrap_or(0))
            }
        };
        self.next = Some(n + 1);
        Ok(match stream {
            Stream::Data => n,
            Stream::Metadata => n | METADATA_BIT,
        })
    }

    /// Stores `value` under object id `key` in the pack of `stream`.
    pub fn append(&mut self, tx: &WriteTransaction, key: &[u8], value: &[u8], stream: Stream) -> StoreResult<()> {
        self.space.add(value.len())?;
        let len = u32::try_from(value.len()).map_err(|_| corrupt("object too large"))?;
        let slot = stream as usize;
        let loc = if value.len() > PACK_CAPACITY {
            // Too big to share: a pack of its own.
            let pack = self.next_id(tx, stream)?;
            tx.open_table(PACKS).map_err(err)?.insert(pack.to_be_bytes().as_slice(), value).map_err(err)?;
            Location { pack, offset: 0, len }
        } else {
            if self.open[slot].as_ref().is_some_and(|(_, buf)| buf.len() + value.len() > PACK_CAPACITY) {
                self.flush_slot(tx, slot)?;
            }
            if self.open[slot].is_none() {
                let id = self.next_id(tx, stream)?;
                self.open[slot] = Some((id, Vec::with_capacity(PACK_CAPACITY)));
            }
            let (pack, buf) = self.open[slot].as_mut().ok_or_else(|| corrupt("no open pack"))?;
            let offset = buf.len() as u32;
            buf.extend_from_slice(value);
            Location { pack: *pack, offset, len }
        };
        tx.open_table(def(Table::Objects)).map_err(err)?.insert(key, loc.encode().as_slice()).map_err(err)?;
        Ok(())
    }

    /// Stores a whole pack copied from another store under a fresh id of
    /// `stream`, with an index entry for each of `objects` (which must lie
    /// inside it). The open packs are not touched.
    pub fn import(
        &mut self,
        tx: &WriteTransaction,
        pack: &[u8],
        stream: Stream,
        objects: &[PackEntry],
    ) -> StoreResult<()> {
        self.space.add(pack.len())?;
        let id = self.next_id(tx, stream)?;
        let mut entries: Vec<(&[u8], [u8; 16])> = Vec::with_capacity(objects.len());
        for e in objects {
            let loc = Location { pack: id, offset: e.offset, len: e.len };
            loc.slice(pack).ok_or_else(|| corrupt("object outside its pack"))?;
            entries.push((&e.key, loc.encode()));
        }
        // Sorted keys touch the index b-tree in order.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        tx.open_table(PACKS).map_err(err)?.insert(id.to_be_bytes().as_slice(), pack).map_err(err)?;
        let mut index = tx.open_table(def(Table::Objects)).map_err(err)?;
        for (key, loc) in entries {
            index.insert(key, loc.as_slice()).map_err(err)?;
        }
        Ok(())
    }

    fn flush_slot(&mut self, tx: &WriteTransaction, slot: usize) -> StoreResult<()> {
        if let Some((id, buf)) = self.open[slot].take() {
            tx.open_table(PACKS).map_err(err)?.insert(id.to_be_bytes().as_slice(), buf.as_slice()).map_err(err)?;
        }
        Ok(())
    }

    /// Writes the open packs into the transaction, and the pack id to use
    /// next if this transaction used any.
    pub fn flush(&mut self, tx: &WriteTransaction) -> StoreResult<()> {
        self.flush_slot(tx, Stream::Data as usize)?;
        self.flush_slot(tx, Stream::Metadata as usize)?;
        if let Some(next) = self.next {
            tx.open_table(def(Table::Meta))
                .map_err(err)?
                .insert(NEXT_PACK, next.to_le_bytes().as_slice())
                .map_err(err)?;
        }
        Ok(())
    }

    /// Reads an object as the transaction sees it, including the open pack.
    pub fn read(&self, tx: &WriteTransaction, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let index = tx.open_table(def(Table::Objects)).map_err(err)?;
        let Some(raw) = index.get(key).map_err(err)? else {
            return Ok(None);
        };
        let loc = Location::decode(raw.value()).ok_or_else(|| corrupt("bad object location"))?;
        if let Some((_, buf)) = self.open.iter().flatten().find(|(id, _)| *id == loc.pack) {
            return loc.slice(buf).map(|s| Some(s.to_vec())).ok_or_else(|| corrupt("object outside its pack"));
        }
        let packs = tx.open_table(PACKS).map_err(err)?;
        let pack = packs.get(loc.pack_key().as_slice()).map_err(err)?.ok_or_else(|| corrupt("missing pack"))?;
        loc.slice(pack.value()).map(|s| Some(s.to_vec())).ok_or_else(|| corrupt("object outside its pack"))
    }
}

/// Drops packs nothing points into and, with `rewrite_sparse`, rewrites
/// those that are mostly garbage, moving their live objects into fresh
/// packs.
pub(super) fn repack(tx: &WriteTransaction, writer: &mut PackWriter, rewrite_sparse: bool) -> StoreResult<()> {
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut entries: Vec<(Vec<u8>, Location)> = Vec::new();
    {
        let index = tx.open_table(def(Table::Objects)).map_err(err)?;
        for item in index.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let loc = Location::decode(v.value()).ok_or_else(|| corrupt("bad object location"))?;
            *live.entry(loc.pack).or_default() += u64::from(loc.len);
            entries.push((k.value().to_vec(), loc));
        }
    }
    let mut rewrite: Vec<u64> = Vec::new();
    let mut drop: Vec<u64> = Vec::new();
    {
        let packs = tx.open_table(PACKS).map_err(err)?;
        for item in packs.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let id = u64::from_be_bytes(k.value().try_into().map_err(|_| corrupt("bad pack key"))?);
            match live.get(&id) {
                None => drop.push(id),
                Some(&bytes) if rewrite_sparse && (bytes as f64) < v.value().len() as f64 * REPACK_BELOW => {
                    rewrite.push(id)
                }
                Some(_) => {}
            }
        }
    }
    for id in &rewrite {
        let pack = tx
            .open_table(PACKS)
            .map_err(err)?
            .get(id.to_be_bytes().as_slice())
            .map_err(err)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| corrupt("missing pack"))?;
        for (key, loc) in entries.iter().filter(|(_, loc)| loc.pack == *id) {
            let bytes = loc.slice(&pack).ok_or_else(|| corrupt("object outside its pack"))?;
            let stream = if id & METADATA_BIT != 0 { Stream::Metadata } else { Stream::Data };
            writer.append(tx, key, bytes, stream)?;
        }
        drop.push(*id);
    }
    writer.flush(tx)?;
    let mut packs = tx.open_table(PACKS).map_err(err)?;
    for id in drop {
        packs.remove(id.to_be_bytes().as_slice()).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn location_round_trip() {
        let loc = Location { pack: 1 << 40, offset: 7, len: 1 << 20 };
        assert_eq!(Location::decode(&loc.encode()), Some(loc));
        assert_eq!(Location::decode(&[0; 15]), None);
        assert_eq!(loc.slice(&[0; 10]), None);
    }
}
