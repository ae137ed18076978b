//! Making revisions: from the working tree, and the bookkeeping shared with
//! `commit --from DIR` (see [`crate::snapshot`]).

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Kind, Meta, Revision, Timestamp};
use crate::repo::{HEAD, Repository, WORKTREE};
use crate::store::Transaction;

/// What to record in a new revision.
#[derive(Clone, Debug)]
pub struct CommitOptions {
    /// The message.
    pub message: String,
    /// `user@host` or similar.
    pub author: String,
    /// Commit time; now when `None`.
    pub time: Option<Timestamp>,
    /// For [`commit_dir`](Repository::commit_dir): replace uncommitted
    /// changes of the working tree (made through a mount, say) rather than
    /// refuse. They stay in the store until `gc`.
    pub discard_changes: bool,
}

/// What a commit produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitSummary {
    /// The new revision.
    pub revision: ObjectId,
    /// Its root directory.
    pub root: ObjectId,
    /// Logical bytes of the tree.
    pub size: u64,
    /// Regular files read or reused (hard links counted once); zero for a
    /// working-tree commit, which reads no files.
    pub files: u64,
    /// Files taken from the stat cache without reading them.
    pub reused_files: u64,
    /// Objects the store did not have before.
    pub new_objects: u64,
    /// Stored bytes of those objects.
    pub new_bytes: u64,
}

impl Repository {
    /// Writes a revision object and records it in the revision index inside
    /// `tx`, moving no ref; returns its id.
    pub fn write_revision(&self, tx: &mut dyn Transaction, rev: &Revision) -> Result<ObjectId> {
        let id = self.put_object(tx, Kind::Revision, &rev.encode())?;
        self.index_revision(tx, &id)?;
        Ok(id)
    }

    /// Writes a revision of `root` with parent HEAD, moves HEAD and the
    /// working tree to it, inside `tx`.
    pub(crate) fn record_commit(
        &self,
        tx: &mut dyn Transaction,
        root: ObjectId,
        size: u64,
        root_meta: Meta,
        opts: &CommitOptions,
    ) -> Result<ObjectId> {
        let rev = Revision {
            root,
            parents: self.head()?.into_iter().collect(),
            time: opts.time.unwrap_or_else(Timestamp::now),
            author: opts.author.clone(),
            message: opts.message.clone(),
            size,
            root_meta,
        };
        let id = self.write_revision(tx, &rev)?;
        self.set_ref(tx, HEAD, &id)?;
        self.set_ref(tx, WORKTREE, &root)?;
        // The revision now holds the root's metadata.
        self.drop_tree_root_meta(tx, WORKTREE)?;
        Ok(id)
    }

    /// Commits the working tree; refuses when it equals HEAD's tree.
    pub fn commit_worktree(&self, opts: &CommitOptions) -> Result<CommitSummary> {
        let root = self.worktree()?;
        if !self.worktree_dirty()? {
            return Err(Error::NothingToCommit);
        }
        let size = self.read_dir(&root)?.size;
        let root_meta = self.worktree_root_meta()?.unwrap_or_else(|| Meta { mode: 0o755, ..Meta::default() });
        let mut tx = self.begin()?;
        let revision = self.record_commit(tx.as_mut(), root, size, root_meta, opts)?;
        tx.commit()?;
        Ok(CommitSummary { revision, root, size, files: 0, reused_files: 0, new_objects: 1, new_bytes: 0 })
    }

    /// Moves HEAD and the working tree to revision `rev`. Uncommitted
    /// changes make it fail unless `force`, which discards them (they stay
    /// in the store until `gc`).
    pub fn checkout(&self, rev: &ObjectId, force: bool) -> Result<()> {
        if !force && self.worktree_dirty()? {
            return Err(Error::DirtyWorkingTree);
        }
        let target = self.read_revision(rev)?;
        let mut tx = self.begin()?;
        self.set_ref(tx.as_mut(), HEAD, rev)?;
        self.set_ref(tx.as_mut(), WORKTREE, &target.root)?;
        self.drop_tree_root_meta(tx.as_mut(), WORKTREE)?;
        Ok(tx.commit()?)
    }
}
