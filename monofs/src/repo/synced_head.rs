//! The working tree after a sync that moved HEAD without the key.
//!
//! A sync with the key moves a clean receiver's `WORKTREE` along with its
//! HEAD. Without the key (an encrypted repository synced without its
//! passphrase) neither side can read a revision's root, so the sync cannot
//! tell whether `WORKTREE` is clean, nor where it should go. It leaves the
//! working tree alone and notes what it was based on (`meta`
//! [`META_WORKTREE_BASE`]); the next open with the key settles it: a tree
//! still equal to its base's root follows HEAD, one with changes is kept
//! and reported. Without this, a commit on such a replica would record the
//! old tree on top of the new HEAD and silently undo what the sync brought.

use crate::error::Result;
use crate::id::ObjectId;
use crate::object::{Dir, Kind};
use crate::store::{Table, Transaction};

use super::{Repository, WORKTREE};

/// Meta key of the note: 64 bytes, the receiver's HEAD before the first
/// such sync (32 zero bytes: none) and its `WORKTREE` then.
pub const META_WORKTREE_BASE: &[u8] = b"sync.worktree-base";

/// Inside the transaction of a sync that moves HEAD from `old_head` and
/// leaves the working tree at `worktree`: notes the working tree's base,
/// unless an earlier sync noted it (the base is still that one's).
pub fn note_worktree_base(
    tx: &mut dyn Transaction,
    old_head: Option<&ObjectId>,
    worktree: &ObjectId,
) -> crate::store::StoreResult<()> {
    if tx.get(Table::Meta, META_WORKTREE_BASE)?.is_some() {
        return Ok(());
    }
    let mut note = [0u8; 64];
    if let Some(head) = old_head {
        note[..32].copy_from_slice(head.as_bytes());
    }
    note[32..].copy_from_slice(worktree.as_bytes());
    tx.put(Table::Meta, META_WORKTREE_BASE, &note)
}

/// What the note holds: the HEAD then (`None`: there was none) and the
/// working tree then.
pub type WorktreeBase = (Option<ObjectId>, ObjectId);

/// Reads the note; `None` if malformed.
pub fn decode_worktree_base(note: &[u8]) -> Option<WorktreeBase> {
    let (head, tree) = note.split_at_checked(32)?;
    let head = ObjectId::from_slice(head)?;
    Some(((head != ObjectId::default()).then_some(head), ObjectId::from_slice(tree)?))
}

/// Whether a working tree now at `worktree` is still clean against the
/// note `base`: unchanged since, and then equal to its HEAD's tree (the
/// empty directory, `empty`, if there was no HEAD). `root_of` reads a
/// revision's root; one it cannot read makes the tree count as changed
/// (never guessed clean). Shared by the next open with the key and by a
/// sync with the key.
pub fn still_at_base(
    base: &WorktreeBase,
    worktree: Option<ObjectId>,
    empty: ObjectId,
    root_of: impl FnOnce(&ObjectId) -> Option<ObjectId>,
) -> bool {
    let (head, tree) = base;
    worktree == Some(*tree)
        && match head {
            Some(h) => root_of(h) == Some(*tree),
            None => *tree == empty,
        }
}

impl Repository {
    /// Settles a working tree that syncs without the key left behind (see
    /// the module doc): it follows HEAD if it is still its base's tree.
    pub(super) fn follow_synced_head(&self) -> Result<()> {
        let Some(note) = self.store.get(Table::Meta, META_WORKTREE_BASE)? else {
            return Ok(());
        };
        let now = self.get_ref(WORKTREE)?;
        let head = self.head()?;
        let head_root = head.map(|h| self.read_revision(&h)).transpose()?.map(|r| r.root);
        let base = decode_worktree_base(&note);
        let empty = self.codec.id(Kind::Dir, &Dir::default().encode());
        // A root changed through a mount (its record) is a change too: the
        // tree id alone does not show it, and moving the tree dropped it.
        let clean =
            base.as_ref().is_some_and(|b| still_at_base(b, now, empty, |h| self.read_revision(h).ok().map(|r| r.root)))
                && self.tree_root_meta(WORKTREE)?.is_none();
        let mut tx = self.store.begin()?;
        match (now, head_root) {
            (Some(now), Some(root)) if now == root => {}
            (Some(_), Some(root)) if clean => {
                self.set_ref(&mut *tx, WORKTREE, &root)?;
                self.drop_tree_root_meta(&mut *tx, WORKTREE)?;
                tracing::info!(
                    "{}: the working tree follows HEAD, which a sync without the key moved",
                    self.path.display()
                );
            }
            _ => tracing::warn!(
                "{}: the working tree holds changes made before a sync without the key moved HEAD{}; they are kept \
                 (`monofs diff` shows them against HEAD; a commit records them on top of it)",
                self.path.display(),
                base.and_then(|(h, _)| h).map(|h| format!(" from {}", h.short(12))).unwrap_or_default(),
            ),
        }
        tx.delete(Table::Meta, META_WORKTREE_BASE)?;
        tx.commit()?;
        Ok(())
    }
}
