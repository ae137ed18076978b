//! Consistency check: read and verify every reachable object (chunks in
//! parallel) and name each bad one with the paths that use it.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::Kind;
use crate::repo::Repository;
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

/// The result of a check.
#[derive(Clone, Debug, Default)]
pub struct FsckReport {
    /// Objects read and verified.
    pub checked: u64,
    /// What is wrong; empty when the repository is sound.
    pub problems: Vec<Problem>,
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

impl Repository {
    /// Verifies every reachable object.
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut c = Collect::default();
        self.walk_reachable(&mut c)?;
        let chunks: Vec<(&ObjectId, &Vec<String>)> = c.chunks.iter().collect();
        let bad: Vec<Problem> = crate::parallel::io_pool().install(|| {
            chunks
                .par_iter()
                .filter_map(|(id, paths)| match self.read(id, Kind::Chunk) {
                    Ok(_) => None,
                    Err(e) => {
                        Some(Problem { id: **id, kind: Kind::Chunk, error: e.to_string(), paths: (*paths).clone() })
                    }
                })
                .collect()
        });
        let checked = c.checked + chunks.len() as u64;
        let mut problems: Vec<Problem> = c.problems.into_values().chain(bad).collect();
        problems.sort_by_key(|p| p.id);
        Ok(FsckReport { checked, problems })
    }
}
