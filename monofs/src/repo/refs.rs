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
/// Named working trees: `worktrees/NAME` -> root directory.
pub const WORKTREES_PREFIX: &str = "worktrees/";

/// The ref of named working tree `name`.
pub fn worktree_ref(name: &str) -> String {
    format!("{WORKTREES_PREFIX}{name}")
}

/// The ref key of tag `name`.
pub fn tag_ref(name: &str) -> String {
    format!("{TAG_PREFIX}{name}")
}

/// Tag names are what git accepts, roughly: printable, no spaces, no `..`,
/// not starting with `-` or `/`, not a reserved word, and not something
/// that reads as a short revision id.
pub fn validate_tag_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.len() > 200 {
        "it is longer than 200 bytes"
    } else if name == HEAD || name == "@" {
        "it is reserved"
    } else if name.len() >= 4 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        "it reads as a revision id (only hex digits)"
    } else if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        "it starts with '-' or '/', or ends with '/'"
    } else if name.contains("..") || name.contains('~') {
        "it holds '..' or '~', which revision expressions use"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it holds white space or a control character"
    } else if name.chars().any(|c| "^:?*[\\".contains(c)) {
        "it holds one of ^ : ? * [ \\"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTagName { name: name.to_owned(), why })
}

/// Ref names a repository may hold: `HEAD`, `WORKTREE`, and slash-separated
/// names of printable components (no `.`, `..`, spaces or `^?*[\~`), a
/// tag's (`tags/NAME`) valid as a tag name. A replica's refs are checked
/// with this before they are stored.
pub fn validate_ref_name(name: &str) -> Result<()> {
    if name == HEAD || name == WORKTREE {
        return Ok(());
    }
    if let Some(tag) = name.strip_prefix(TAG_PREFIX) {
        return validate_tag_name(tag).map_err(|_| Error::InvalidRefName(name.to_owned()));
    }
    let bad_part = |p: &str| {
        p.is_empty()
            || p == "."
            || p == ".."
            || p.starts_with('-')
            || p.chars().any(|c| c.is_whitespace() || c.is_control() || "^?*[\\~".contains(c))
    };
    if name.len() > 1024 || !name.contains('/') || name.split('/').any(bad_part) {
        return Err(Error::InvalidRefName(name.to_owned()));
    }
    Ok(())
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

    /// Whether the working tree differs from HEAD's tree, its root's
    /// metadata included.
    pub fn worktree_dirty(&self) -> Result<bool> {
        let root = self.worktree()?;
        match self.head()? {
            Some(head) => {
                let rev = self.read_revision(&head)?;
                Ok(rev.root != root
                    || self
                        .tree_root_meta(WORKTREE)?
                        .is_some_and(|meta| super::root_meta::root_differs(&meta, &rev.root_meta)))
            }
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

    /// Creates named working tree `name` on top of directory `base` (an
    /// image's tree, a revision's root): a copy-on-write branch that costs
    /// one ref, whatever the size of `base`. Serve it with
    /// `Vfs::serve(repo, Tree::Named(name))`; its objects are kept from gc.
    pub fn create_worktree(&self, name: &str, base: &ObjectId) -> Result<()> {
        if name.is_empty() || name.contains('\0') || name.contains('/') {
            return Err(Error::InvalidTagName { name: name.to_owned(), why: "it is empty or holds '/' or NUL" });
        }
        if self.get_ref(&worktree_ref(name))?.is_some() {
            return Err(Error::TagExists(name.to_owned()));
        }
        self.read_dir(base)?;
        let mut tx = self.begin()?;
        self.set_ref(tx.as_mut(), &worktree_ref(name), base)?;
        self.drop_tree_root_meta(tx.as_mut(), &worktree_ref(name))?;
        Ok(tx.commit()?)
    }

    /// Root directory of named working tree `name`.
    pub fn named_worktree(&self, name: &str) -> Result<ObjectId> {
        self.get_ref(&worktree_ref(name))?.ok_or_else(|| Error::NoSuchWorktree(name.to_owned()))
    }

    /// Removes named working tree `name` and its inode numbers; what only
    /// it used goes at the next gc.
    pub fn delete_worktree(&self, name: &str) -> Result<()> {
        self.named_worktree(name)?;
        let ns = crate::vfs::named_namespace(name);
        let mut keys = Vec::new();
        self.store().scan(Table::Inodes, &ns, &mut |k, _| {
            keys.push(k.to_vec());
            true
        })?;
        let mut tx = self.begin()?;
        tx.delete(Table::Refs, worktree_ref(name).as_bytes())?;
        self.drop_tree_root_meta(tx.as_mut(), &worktree_ref(name))?;
        for k in keys {
            tx.delete(Table::Inodes, &k)?;
        }
        Ok(tx.commit()?)
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

    /// Takes revision `id` out of the revision index, in `tx`: gc, whose
    /// roots are every indexed revision and every ref, may then free it
    /// once no ref reaches it.
    pub fn unindex_revision(&self, tx: &mut dyn Transaction, id: &ObjectId) -> Result<()> {
        Ok(tx.delete(Table::Revisions, id.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::{validate_ref_name, validate_tag_name};

    #[test]
    fn tag_names_are_refused_with_a_reason_on_one_line() {
        let why = |name: &str| validate_tag_name(name).expect_err(name).to_string();
        assert_eq!(why("abcd"), "invalid tag name abcd: it reads as a revision id (only hex digits)");
        assert_eq!(why("a\nb"), r#"invalid tag name "a\nb": it holds white space or a control character"#);
        assert!(why("x~1").ends_with("which revision expressions use"));
        assert!(validate_tag_name("v1.0-rc1").is_ok());
    }

    #[test]
    fn ref_names() {
        for good in
            ["HEAD", "WORKTREE", "tags/v1.0", "worktrees/sb1", "images/docker.io/library/alpine:3", "chains/sha256:ab"]
        {
            assert!(validate_ref_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../../x", "tags/a\nb", "tags/with space", "x", "a//b", "a/./b", "/a", "a/", "tags/", "a/-b"] {
            assert!(validate_ref_name(bad).is_err(), "{bad:?}");
        }
    }
}
