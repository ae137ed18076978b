//! The metadata of a working tree's root directory.
//!
//! A directory's mode, owner, mtime and xattrs live in its parent's entry.
//! The root has no parent, so a revision keeps them (`root_meta`). A working
//! tree is only a ref to a root directory, so what a mount changes on its
//! root (chmod, chown, xattrs, the mtime a new file gives it) is kept in a
//! sealed record of its own: `meta` key `root-meta/` + the tree's ref name,
//! holding the root directory it was written with and the metadata. A
//! mount keeps it only while it differs from HEAD's revision's (for the
//! working tree), so that it is an uncommitted change, which stops a sync
//! as any other would. Whatever moves the ref otherwise (a commit, a
//! checkout, a sync) removes it; and it counts only while the ref still
//! names its root, so none can be left applying to another tree.

use super::{HEAD, Repository, WORKTREE};
use crate::crypto::Codec;
use crate::encoding::{Reader, Writer};
use crate::error::Result;
use crate::id::ObjectId;
use crate::object::Meta;
use crate::store::{Table, Transaction};

/// What the `meta` keys of the records start with (the ref name follows).
pub const ROOT_META_PREFIX: &[u8] = b"root-meta/";

/// The `meta` key of the record of the tree of ref `tree_ref`.
pub fn root_meta_key(tree_ref: &str) -> Vec<u8> {
    [ROOT_META_PREFIX, tree_ref.as_bytes()].concat()
}

fn decode(plain: &[u8]) -> Option<(ObjectId, Meta)> {
    let mut r = Reader::new(plain);
    let root = r.id().ok()?;
    let meta = Meta::decode(&mut r).ok()?;
    r.finish().ok()?;
    Some((root, meta))
}

/// The root that a stored record of the tree of `tree_ref` names and the
/// metadata it gives that root, if the record opens with `codec` (a
/// replica checks what it is sent, and what a sync would move).
pub fn open_root_record(codec: &Codec, tree_ref: &str, stored: &[u8]) -> Option<(ObjectId, Meta)> {
    codec.open_record(&root_meta_key(tree_ref), stored).ok().and_then(|p| decode(&p))
}

/// Whether a root's metadata `a` differs from `b` as `diff` tells
/// directories apart: mode, owner, xattrs. Not the mtime, which moves with
/// every entry added or removed (an editor's swap file in the root would
/// leave a change no command shows, which stops a sync).
pub fn root_differs(a: &Meta, b: &Meta) -> bool {
    (a.mode, a.uid, a.gid, &a.xattrs) != (b.mode, b.uid, b.gid, &b.xattrs)
}

impl Repository {
    /// The root metadata recorded for the tree of ref `tree_ref`, if its
    /// record is there and still names the ref's root. A damaged record is
    /// reported and counts as none: it costs the root's metadata, not the
    /// tree.
    pub fn tree_root_meta(&self, tree_ref: &str) -> Result<Option<Meta>> {
        let key = root_meta_key(tree_ref);
        let Some(stored) = self.store().get(Table::Meta, &key)? else {
            return Ok(None);
        };
        let Some((root, meta)) = self.codec().open_record(&key, &stored).ok().and_then(|p| decode(&p)) else {
            tracing::warn!("the root metadata recorded for {tree_ref} is damaged; the root takes its revision's");
            return Ok(None);
        };
        Ok((self.get_ref(tree_ref)? == Some(root)).then_some(meta))
    }

    /// Inside `tx`, records `meta` as the metadata of root `root` of the
    /// tree of ref `tree_ref`.
    pub fn put_tree_root_meta(
        &self,
        tx: &mut dyn Transaction,
        tree_ref: &str,
        root: &ObjectId,
        meta: &Meta,
    ) -> Result<()> {
        let key = root_meta_key(tree_ref);
        let mut w = Writer::new();
        w.id(root);
        meta.encode(&mut w);
        Ok(tx.put(Table::Meta, &key, &self.codec().seal_record(&key, &w.into_bytes()))?)
    }

    /// Inside `tx`, removes the root metadata recorded for `tree_ref`.
    pub fn drop_tree_root_meta(&self, tx: &mut dyn Transaction, tree_ref: &str) -> Result<()> {
        Ok(tx.delete(Table::Meta, &root_meta_key(tree_ref))?)
    }

    /// The metadata of the working tree's root: its own record, else that
    /// of HEAD's root; `None` in a repository with neither (nothing was
    /// committed, nothing changed on the root).
    pub fn worktree_root_meta(&self) -> Result<Option<Meta>> {
        if let Some(meta) = self.tree_root_meta(WORKTREE)? {
            return Ok(Some(meta));
        }
        self.get_ref(HEAD)?.map(|head| Ok(self.read_revision(&head)?.root_meta)).transpose()
    }
}
