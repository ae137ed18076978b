//! Reading history: revisions newest first.

use std::collections::{BinaryHeap, HashMap, HashSet};

use crate::error::Result;
use crate::id::ObjectId;
use crate::object::{Revision, Timestamp};
use crate::repo::Repository;

impl Repository {
    /// Revisions reachable from HEAD (or, with `all`, every revision ever
    /// made), newest first.
    pub fn log(&self, all: bool) -> Result<Vec<(ObjectId, Revision)>> {
        if all {
            let mut out = self
                .all_revisions()?
                .into_iter()
                .map(|id| Ok((id, self.read_revision(&id)?)))
                .collect::<Result<Vec<_>>>()?;
            out.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
            return Ok(out);
        }
        let mut out = Vec::new();
        let mut pending: HashMap<ObjectId, Revision> = HashMap::new();
        let mut seen = HashSet::new();
        let mut queue: BinaryHeap<(Timestamp, ObjectId)> = BinaryHeap::new();
        let mut next = self.head()?.into_iter().collect::<Vec<_>>();
        loop {
            for id in next.drain(..) {
                if seen.insert(id) {
                    let rev = self.read_revision(&id)?;
                    queue.push((rev.time, id));
                    pending.insert(id, rev);
                }
            }
            let Some((_, id)) = queue.pop() else { break };
            let rev = pending.remove(&id).ok_or(crate::error::Error::Aborted)?;
            next.extend(rev.parents.iter().copied());
            out.push((id, rev));
        }
        Ok(out)
    }
}
