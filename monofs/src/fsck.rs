//! Consistency check: read and verify every reachable object (chunks in
//! parallel) and name each bad one with the paths that use it.

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::Kind;
use crate::repo::Repository;
use crate::store::Integrity;
use crate::walk::Visitor;

/// One damaged or missing object.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The object.
    pub id: ObjectId,
    /// What it should be.
    pub kind: Kind,
    /// What is wrong.
    pub error: String,
    /// Paths in trees that use it (`/` for a root directory, empty for a
    /// revision).
    pub paths: Vec<String>,
}

/// A stored record that is not what it should be.
#[derive(Clone, Debug)]
pub struct RecordProblem {
    /// Its key in the `meta` table.
    pub key: String,
    /// What is wrong.
    pub error: String,
}

/// The result of a check.
#[derive(Clone, Debug)]
pub struct FsckReport {
    /// What the check of the store file's own structures found, before
    /// any object was read.
    pub store: Integrity,
    /// Objects read and verified.
    pub checked: u64,
    /// What is wrong with objects; empty when they are sound.
    pub problems: Vec<Problem>,
    /// Dictionary records no object can use (`gc` removes them).
    pub records: Vec<RecordProblem>,
}

impl FsckReport {
    /// The report on a store file too damaged to read anything from.
    pub fn damaged(why: String) -> FsckReport {
        FsckReport { store: Integrity::Damaged(why), checked: 0, problems: Vec::new(), records: Vec::new() }
    }

    /// Whether nothing is wrong: the store's structures, every object and
    /// every record.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
            && self.records.is_empty()
            && matches!(self.store, Integrity::Sound | Integrity::Unchecked(_))
    }
}

#[derive(Default)]
struct Collect {
    checked: u64,
    chunks: HashMap<ObjectId, Vec<String>>,
    problems: BTreeMap<ObjectId, Problem>,
}

impl Visitor for Collect {
    fn object(&mut self, id: &ObjectId, kind: Kind, _: u64, path: &str) {
        if kind == Kind::Chunk {
            let paths = self.chunks.entry(*id).or_default();
            if paths.last().map(String::as_str) != Some(path) {
                paths.push(path.to_owned());
            }
        } else {
            self.checked += 1;
        }
    }

    fn checks_links(&self) -> bool {
        true
    }

    fn broken(&mut self, id: &ObjectId, kind: Kind, path: &str, err: Error) -> Result<()> {
        let p = self.problems.entry(*id).or_insert_with(|| Problem {
            id: *id,
            kind,
            error: err.to_string(),
            paths: Vec::new(),
        });
        p.paths.push(path.to_owned());
        Ok(())
    }
}

/// Chunks read and verified at once (about 32 MiB at the default sizes).
const FSCK_BATCH: usize = 512;

impl Repository {
    /// Verifies chunks `ids`, read together; what is wrong with them.
    fn check_chunks(&self, ids: &[ObjectId], problem: &(dyn Fn(&ObjectId, Error) -> Problem + Sync)) -> Vec<Problem> {
        let keys: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
        let mut frames = Vec::with_capacity(ids.len());
        let read = self.store().get_objects(&keys, &mut |k, v, _| {
            if let Some(id) = ObjectId::from_slice(k) {
                frames.push((id, v.to_vec()));
            }
            true
        });
        if read.is_err() {
            // A damaged pack: chunk by chunk, so each one is named.
            return ids.par_iter().filter_map(|id| self.read(id, Kind::Chunk).err().map(|e| problem(id, e))).collect();
        }
        let found: HashSet<ObjectId> = frames.iter().map(|(id, _)| *id).collect();
        let mut bad: Vec<Problem> =
            ids.iter().filter(|id| !found.contains(id)).map(|id| problem(id, Error::MissingObject(*id))).collect();
        bad.par_extend(
            frames.par_iter().filter_map(|(id, f)| self.open_frame(id, Kind::Chunk, f).err().map(|e| problem(id, e))),
        );
        bad
    }

    /// Checks the store's own structures, then verifies every reachable
    /// object. A store damaged beyond repair is reported without reading
    /// objects: its pages cannot be trusted to lead to them.
    pub fn fsck(&self) -> Result<FsckReport> {
        let store = self.store().check_integrity()?;
        if let Integrity::Damaged(why) = store {
            return Ok(FsckReport::damaged(why));
        }
        let mut c = Collect::default();
        self.walk_reachable(&mut c)?;
        // Chunks in storage order, a batch at a time: each pack is read once
        // rather than once per chunk in it.
        let position: HashMap<ObjectId, usize> = self
            .store()
            .list_objects()?
            .iter()
            .enumerate()
            .filter_map(|(i, e)| ObjectId::from_slice(&e.key).map(|id| (id, i)))
            .collect();
        let mut ids: Vec<ObjectId> = c.chunks.keys().copied().collect();
        ids.sort_by_key(|id| position.get(id).copied().unwrap_or(usize::MAX));
        let problem = |id: &ObjectId, e: Error| Problem {
            id: *id,
            kind: Kind::Chunk,
            error: e.to_string(),
            paths: c.chunks.get(id).cloned().unwrap_or_default(),
        };
        let mut bad = Vec::new();
        for batch in ids.chunks(FSCK_BATCH) {
            bad.extend(crate::parallel::io_pool().install(|| self.check_chunks(batch, &problem)));
        }
        let checked = c.checked + ids.len() as u64;
        let mut problems: Vec<Problem> = c.problems.into_values().chain(bad).collect();
        problems.sort_by_key(|p| p.id);
        let records = crate::repo::unusable_dictionaries(self.codec(), self.store())?
            .into_iter()
            .map(|(key, why)| RecordProblem { key: String::from_utf8_lossy(&key).into_owned(), error: why })
            .collect();
        Ok(FsckReport { store, checked, problems, records })
    }
}
