//! Garbage collection: mark everything reachable from the roots, sweep the
//! rest in one transaction, then compact the store file.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::Kind;
use crate::repo::Repository;
use crate::store::{Store, StoreResult, Table};
use crate::walk::{Held, Visitor};

/// What a collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcSummary {
    /// Objects kept.
    pub kept: u64,
    /// Objects removed.
    pub removed: u64,
    /// Stored bytes of the removed objects.
    pub removed_bytes: u64,
    /// Store file size before.
    pub size_before: u64,
    /// Store file size after compaction.
    pub size_after: u64,
    /// Dictionary records removed because no object can use them (they do
    /// not open; `fsck` reports them).
    pub dictionaries_removed: u64,
}

/// Meta key of the count of collections that removed objects (u64 little
/// endian; absent: 0). A sync reads it before it asks what the receiver
/// has and sends it back with its ref update, which is refused if a
/// collection ran in between: that collection may have removed objects
/// the sync sent, or found there, as referenced by nothing yet.
pub const META_GC_EPOCH: &[u8] = b"gc-epoch";

/// The collection count of `store` (see [`META_GC_EPOCH`]).
pub fn gc_epoch(store: &dyn Store) -> StoreResult<u64> {
    Ok(decode_epoch(store.get(Table::Meta, META_GC_EPOCH)?))
}

fn decode_epoch(value: Option<Vec<u8>>) -> u64 {
    value.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_le_bytes)
}

struct Mark(HashSet<ObjectId>);

impl Visitor for Mark {
    fn object(&mut self, id: &ObjectId, _: Kind, _: u64, _: &str) {
        self.0.insert(*id);
    }

    fn broken(&mut self, _: &ObjectId, _: Kind, _: &str, err: Error) -> Result<()> {
        // Whatever an unreadable object refers to is unknown, so sweeping
        // now could delete live data.
        Err(err)
    }
}

impl Repository {
    /// Removes every object no revision, ref or working tree reaches.
    pub fn gc(&self) -> Result<GcSummary> {
        self.gc_keeping(|| Ok(Held::default()))
    }

    /// [`Repository::gc`] that keeps what `held` names too: what a mounted
    /// tree holds in memory. `held` is called, and the mark made, inside
    /// the sweep's transaction, which no other writer can commit beside:
    /// nothing can come to refer to an object between the mark and the
    /// sweep (a write finding a doomed object already stored), nor be
    /// stored unmarked.
    pub fn gc_keeping(&self, held: impl FnOnce() -> Result<Held>) -> Result<GcSummary> {
        let size_before = self.store().size_on_disk()?;
        let mut tx = self.begin()?;
        let mut mark = Mark(HashSet::new());
        self.walk_reachable_and(&mut mark, &held()?)?;
        let live = mark.0;
        let mut dead: Vec<(ObjectId, u64)> = Vec::new();
        let mut kept = 0u64;
        self.store().scan_lengths(Table::Objects, b"", &mut |k, len| {
            match ObjectId::from_slice(k) {
                Some(id) if !live.contains(&id) => dead.push((id, len)),
                _ => kept += 1,
            }
            true
        })?;
        let mut stale_cache = Vec::new();
        self.store().scan(Table::StatCache, b"", &mut |k, v| {
            if !crate::snapshot::record_refers_to(self.codec(), k, v, &live) {
                stale_cache.push(k.to_vec());
            }
            true
        })?;
        for (id, _) in &dead {
            tx.delete(Table::Objects, id.as_bytes())?;
        }
        for key in &stale_cache {
            tx.delete(Table::StatCache, key)?;
        }
        let unusable = crate::repo::unusable_dictionaries(self.codec(), self.store())?;
        for (key, why) in &unusable {
            tracing::info!(key = %String::from_utf8_lossy(key), "removing a dictionary record: {why}");
            tx.delete(Table::Meta, key)?;
        }
        if !dead.is_empty() {
            let epoch = decode_epoch(tx.get(Table::Meta, META_GC_EPOCH)?) + 1;
            tx.put(Table::Meta, META_GC_EPOCH, &epoch.to_le_bytes())?;
        }
        tx.commit()?;
        self.compact()?;
        Ok(GcSummary {
            kept,
            removed: dead.len() as u64,
            removed_bytes: dead.iter().map(|d| d.1).sum(),
            size_before,
            size_after: self.store().size_on_disk()?,
            dictionaries_removed: unusable.len() as u64,
        })
    }
}
