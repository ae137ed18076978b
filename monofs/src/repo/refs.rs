//! Named pointers: HEAD, the working tree root, tags; and the index of
//! every revision ever made.

use super::Repository;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::{Table, Transaction};

/// The current revision.
pub const HEAD: &str = "HEAD";
/// Root directory of the mutable working tree.
pub const WORKTREE: &str = "WORKTREE";
const TAG_PREFIX: &str = "tags/";

/// The ref key of tag `name`.
pub fn tag_ref(name: &str) -> String {
    format!("{TAG_PREFIX}{name}")
}

/// Tag names are what git accepts, roughly: printable, no spaces, no `..`,
/// not starting with `-` or `/`, not a reserved word, and not something
/// that reads as a short revision id.
pub fn validate_tag_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 200
        || name == HEAD
        || name == "@"
        || (name.len() >= 4 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        || name.starts_with('-')
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("..")
        || name.contains('~')
        || name.chars().any(|c| c.is_whitespace() || c.is_control() || "^:?*[\\".contains(c));
    if bad { Err(Error::InvalidTagName(name.to_owned())) } else { Ok(()) }
}

impl Repository {
    /// The id a ref points at.
    pub fn get_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        Ok(self.store().get(Table::Refs, name.as_bytes())?.and_then(|v| ObjectId::from_slice(&v)))
    }

    /// Points `name` at `id` inside a transaction.
    pub fn set_ref(&self, tx: &mut dyn Transaction, name: &str, id: &ObjectId) -> Result<()> {
        Ok(tx.put(Table::Refs, name.as_bytes(), id.as_bytes())?)
    }

    /// The current revision, if any.
    pub fn head(&self) -> Result<Option<ObjectId>> {
        self.get_ref(HEAD)
    }

    /// Root directory of the working tree.
    pub fn worktree(&self) -> Result<ObjectId> {
        self.get_ref(WORKTREE)?.ok_or(Error::MissingObject(ObjectId::default()))
    }

    /// Whether the working tree differs from HEAD's tree.
    pub fn worktree_dirty(&self) -> Result<bool> {
        let root = self.worktree()?;
        match self.head()? {
            Some(head) => Ok(self.read_revision(&head)?.root != root),
            None => Ok(!self.read_dir(&root)?.entries.is_empty()),
        }
    }

    /// Every tag with its revision, sorted by name.
    pub fn tags(&self) -> Result<Vec<(String, ObjectId)>> {
        self.refs_with_prefix(TAG_PREFIX)
    }

    /// Refs whose names start with `prefix` (the prefix stripped), sorted.
    /// Other layers keep their own namespaces this way (`images/...`);
    /// every ref except `WORKTREE` must name a revision, which keeps it from
    /// gc.
    pub fn refs_with_prefix(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let mut out = Vec::new();
        self.store().scan(Table::Refs, prefix.as_bytes(), &mut |k, v| {
            if let (Ok(name), Some(id)) = (std::str::from_utf8(&k[prefix.len()..]), ObjectId::from_slice(v)) {
                out.push((name.to_owned(), id));
            }
            true
        })?;
        Ok(out)
    }

    /// Removes a ref inside a transaction.
    pub fn delete_ref(&self, tx: &mut dyn Transaction, name: &str) -> Result<()> {
        Ok(tx.delete(Table::Refs, name.as_bytes())?)
    }

    /// Creates (or with `force`, moves) a tag.
    pub fn set_tag(&self, name: &str, rev: &ObjectId, force: bool) -> Result<()> {
        validate_tag_name(name)?;
        if !force && self.get_ref(&tag_ref(name))?.is_some() {
            return Err(Error::TagExists(name.to_owned()));
        }
        let mut tx = self.begin()?;
        self.set_ref(tx.as_mut(), &tag_ref(name), rev)?;
        Ok(tx.commit()?)
    }

    /// Removes a tag; the revision stays.
    pub fn delete_tag(&self, name: &str) -> Result<()> {
        if self.get_ref(&tag_ref(name))?.is_none() {
            return Err(Error::NoSuchTag(name.to_owned()));
        }
        let mut tx = self.begin()?;
        tx.delete(Table::Refs, tag_ref(name).as_bytes())?;
        Ok(tx.commit()?)
    }

    /// Every revision ever committed, in id order.
    pub fn all_revisions(&self) -> Result<Vec<ObjectId>> {
        self.revisions_with_prefix(&[])
    }

    pub(crate) fn revisions_with_prefix(&self, prefix: &[u8]) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        self.store().scan(Table::Revisions, prefix, &mut |k, _| {
            out.extend(ObjectId::from_slice(k));
            true
        })?;
        Ok(out)
    }

    /// Records a new revision in the index inside a transaction.
    pub fn index_revision(&self, tx: &mut dyn Transaction, id: &ObjectId) -> Result<()> {
        Ok(tx.put(Table::Revisions, id.as_bytes(), &[])?)
    }
}
