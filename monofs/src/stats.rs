//! Repository statistics: logical versus stored size, dedup and compression.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::Kind;
use crate::repo::Repository;
use crate::store::Table;
use crate::walk::Visitor;

/// Sizes of a repository.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Stats {
    /// Revisions ever made.
    pub revisions: u64,
    /// Objects stored.
    pub objects: u64,
    /// Sum of the logical sizes of all revisions (what restoring each would
    /// write).
    pub logical_bytes: u64,
    /// Distinct file bytes before compression (after dedup): chunks, and
    /// the files small enough to be kept inside their directory.
    pub unique_bytes: u64,
    /// Bytes of all stored objects (compressed, sealed).
    pub stored_bytes: u64,
    /// Size of the store file.
    pub file_bytes: u64,
    /// zstd dictionaries that objects are compressed with.
    pub dictionaries: u64,
}

impl Stats {
    /// logical / unique: how much deduplication saves.
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.unique_bytes)
    }

    /// unique / stored: how much compression saves.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.stored_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

#[derive(Default)]
struct Sizes {
    revisions: Vec<ObjectId>,
    chunks: HashMap<ObjectId, u64>,
    /// Distinct contents of files kept inside directories (256 bytes at
    /// most each).
    inline: std::collections::HashSet<Vec<u8>>,
}

impl Visitor for Sizes {
    fn object(&mut self, id: &ObjectId, kind: Kind, size: u64, _: &str) {
        match kind {
            Kind::Chunk => {
                self.chunks.insert(*id, size);
            }
            Kind::Revision => self.revisions.push(*id),
            _ => {}
        }
    }

    fn broken(&mut self, _: &ObjectId, _: Kind, _: &str, err: Error) -> Result<()> {
        Err(err)
    }

    fn inline(&mut self, bytes: &[u8]) {
        if !self.inline.contains(bytes) {
            self.inline.insert(bytes.to_vec());
        }
    }
}

impl Repository {
    /// Computes [`Stats`] by walking everything reachable.
    pub fn stats(&self) -> Result<Stats> {
        let mut sizes = Sizes::default();
        self.walk_reachable(&mut sizes)?;
        let mut logical = 0;
        for id in &sizes.revisions {
            logical += self.read_revision(id)?.size;
        }
        let (mut objects, mut stored) = (0u64, 0u64);
        self.store().scan_lengths(Table::Objects, b"", &mut |_, len| {
            objects += 1;
            stored += len;
            true
        })?;
        Ok(Stats {
            revisions: sizes.revisions.len() as u64,
            objects,
            logical_bytes: logical,
            unique_bytes: sizes.chunks.values().sum::<u64>() + sizes.inline.iter().map(|b| b.len() as u64).sum::<u64>(),
            stored_bytes: stored,
            file_bytes: self.store().size_on_disk()?,
            dictionaries: self.codec().dictionaries().len() as u64,
        })
    }
}
