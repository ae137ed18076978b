//! Tree diff by Merkle walk: subtrees with equal ids are skipped, so the
//! cost follows the size of the change, not of the tree.

use serde::Serialize;

use crate::error::Result;
use crate::id::ObjectId;
use crate::object::{Entry, EntryKind};
use crate::repo::Repository;

/// How a path changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Only in the new tree.
    #[serde(rename = "A")]
    Added,
    /// Only in the old tree.
    #[serde(rename = "D")]
    Deleted,
    /// In both, with different content or metadata.
    #[serde(rename = "M")]
    Modified,
    /// In both, as different types (file became symlink, ...).
    #[serde(rename = "T")]
    TypeChanged,
}

impl Status {
    /// The one-letter code printed by `monofs diff`.
    pub fn letter(self) -> char {
        match self {
            Status::Added => 'A',
            Status::Deleted => 'D',
            Status::Modified => 'M',
            Status::TypeChanged => 'T',
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What happened.
    pub status: Status,
    /// Path relative to the root, `/`-separated (lossy for non-UTF-8).
    pub path: String,
    /// Type in the old tree.
    pub old_type: Option<&'static str>,
    /// Type in the new tree.
    pub new_type: Option<&'static str>,
    /// File size in the old tree.
    pub old_size: Option<u64>,
    /// File size in the new tree.
    pub new_size: Option<u64>,
    /// For `M`: which aspects differ (content, target, mode, owner, mtime,
    /// xattrs, link).
    pub what: Vec<&'static str>,
}

fn size_of(e: &Entry) -> Option<u64> {
    match e.kind {
        EntryKind::File { size, .. } => Some(size),
        _ => None,
    }
}

impl Repository {
    /// Changes from tree `old` to tree `new` (directory object ids), in
    /// path order.
    pub fn diff_trees(&self, old: &ObjectId, new: &ObjectId) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        self.diff_dirs(old, new, "", &mut out)?;
        Ok(out)
    }

    fn diff_dirs(&self, old: &ObjectId, new: &ObjectId, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let (a, b) = (self.read_dir(old)?, self.read_dir(new)?);
        let (mut i, mut j) = (0, 0);
        while i < a.entries.len() || j < b.entries.len() {
            let order = match (a.entries.get(i), b.entries.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.one_side(&a.entries[i], prefix, Status::Deleted, out)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.one_side(&b.entries[j], prefix, Status::Added, out)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    self.both(&a.entries[i], &b.entries[j], prefix, out)?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// An entry present on one side: it and, for a directory, everything
    /// below it.
    fn one_side(&self, e: &Entry, prefix: &str, status: Status, out: &mut Vec<Change>) -> Result<()> {
        let path = join(prefix, &e.name);
        let (old, new) = if status == Status::Added { (None, Some(e)) } else { (Some(e), None) };
        out.push(change(status, path.clone(), old, new, Vec::new()));
        if let EntryKind::Dir { id } = &e.kind {
            let sub = self.read_dir(id)?;
            for child in &sub.entries {
                self.one_side(child, &path, status, out)?;
            }
        }
        Ok(())
    }

    fn both(&self, a: &Entry, b: &Entry, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
        let path = join(prefix, &b.name);
        if std::mem::discriminant(&a.kind) != std::mem::discriminant(&b.kind) {
            out.push(change(Status::TypeChanged, path.clone(), Some(a), Some(b), Vec::new()));
            let (old_dir, new_dir) = (dir_id(a), dir_id(b));
            // One side is a directory: its contents appear or vanish.
            if let Some(id) = old_dir {
                for child in &self.read_dir(&id)?.entries {
                    self.one_side(child, &path, Status::Deleted, out)?;
                }
            }
            if let Some(id) = new_dir {
                for child in &self.read_dir(&id)?.entries {
                    self.one_side(child, &path, Status::Added, out)?;
                }
            }
            return Ok(());
        }
        let mut what = Vec::new();
        match (&a.kind, &b.kind) {
            (EntryKind::File { size: s1, content: c1 }, EntryKind::File { size: s2, content: c2 })
                if s1 != s2 || c1 != c2 =>
            {
                what.push("content");
            }
            (EntryKind::Symlink { target: t1 }, EntryKind::Symlink { target: t2 }) if t1 != t2 => what.push("target"),
            (EntryKind::HardLink { target: t1 }, EntryKind::HardLink { target: t2 }) if t1 != t2 => what.push("link"),
            (EntryKind::CharDev { .. } | EntryKind::BlockDev { .. }, _) if a.kind != b.kind => what.push("device"),
            _ => {}
        }
        let is_dir = matches!(a.kind, EntryKind::Dir { .. });
        if a.meta.mode != b.meta.mode {
            what.push("mode");
        }
        if (a.meta.uid, a.meta.gid) != (b.meta.uid, b.meta.gid) {
            what.push("owner");
        }
        // A directory's mtime moves whenever an entry is added or removed;
        // reporting it would repeat what its children already say.
        if a.meta.mtime != b.meta.mtime && !is_dir {
            what.push("mtime");
        }
        if a.meta.xattrs != b.meta.xattrs {
            what.push("xattrs");
        }
        if !what.is_empty() {
            out.push(change(Status::Modified, path.clone(), Some(a), Some(b), what));
        }
        if let (EntryKind::Dir { id: x }, EntryKind::Dir { id: y }) = (&a.kind, &b.kind) {
            self.diff_dirs(x, y, &path, out)?;
        }
        Ok(())
    }
}

fn dir_id(e: &Entry) -> Option<ObjectId> {
    match e.kind {
        EntryKind::Dir { id } => Some(id),
        _ => None,
    }
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() { name.into_owned() } else { format!("{prefix}/{name}") }
}

fn change(status: Status, path: String, old: Option<&Entry>, new: Option<&Entry>, what: Vec<&'static str>) -> Change {
    Change {
        status,
        path,
        old_type: old.map(|e| e.kind.type_name()),
        new_type: new.map(|e| e.kind.type_name()),
        old_size: old.and_then(size_of),
        new_size: new.and_then(size_of),
        what,
    }
}
