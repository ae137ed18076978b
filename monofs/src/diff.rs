//! Tree diff by Merkle walk: subtrees with equal ids are skipped, so the
//! cost follows the size of the change, not of the tree.

use serde::Serialize;

use crate::error::Result;
use crate::id::ObjectId;
use crate::object::{Entry, EntryKind, Meta};
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
    /// Path relative to the root, `/`-separated (lossy for non-UTF-8: see
    /// `path_hex`; [`Change::quoted_path`] for a terminal).
    pub path: String,
    /// The path's bytes in hex, when they are not UTF-8 (`path` then
    /// holds replacement characters and may equal another path's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// The path's bytes.
    #[serde(skip)]
    pub raw_path: Vec<u8>,
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

impl Change {
    /// The path as one line of text: see [`quote_path`].
    pub fn quoted_path(&self) -> String {
        quote_path(&self.raw_path)
    }
}

/// A path as one unambiguous line of text, as git quotes them: a path with
/// control characters, `"`, `\`, bidirectional or zero-width formatting
/// ([`is_hidden_format`]) or bytes that are not UTF-8 is put in
/// double quotes with C escapes (`\n`, `\033`, `\377`), so that no name
/// can pass for two lines, move the terminal's cursor, or print like
/// another name. Other paths are printed as they are.
pub fn quote_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    let mut quoted = false;
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() || is_hidden_format(c) => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        out.push_str(&format!("\\{b:03o}"));
                    }
                }
                c => {
                    out.push(c);
                    continue;
                }
            }
            quoted = true;
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\{b:03o}"));
            quoted = true;
        }
    }
    if quoted { format!("\"{out}\"") } else { out }
}

/// Unicode format characters that change how text around them shows
/// (bidirectional overrides and isolates, zero-width characters): a name
/// holding one could display as another name.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn size_of(e: &Entry) -> Option<u64> {
    match e.kind {
        EntryKind::File { size, .. } => Some(size),
        _ => None,
    }
}

/// What a diff has still to do, kept on a stack of its own rather than the
/// thread's (a tree 20,000 directories deep, which a mount makes as easily
/// as any, is a call per level otherwise). Steps are pushed in reverse, so
/// they come off in path order.
enum Step {
    /// Compare directories `old` and `new` at `prefix`.
    Dirs { old: ObjectId, new: ObjectId, prefix: Vec<u8> },
    /// Everything below directory `id` at `prefix`, on one side only.
    Below { id: ObjectId, prefix: Vec<u8>, status: Status },
    /// A change, in its place.
    Emit(Change),
}

impl Repository {
    /// Changes from tree `old` to tree `new` (directory object ids), in
    /// path order.
    pub fn diff_trees(&self, old: &ObjectId, new: &ObjectId) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        let mut stack = vec![Step::Dirs { old: *old, new: *new, prefix: Vec::new() }];
        while let Some(step) = stack.pop() {
            let mut next = Vec::new();
            match step {
                Step::Emit(change) => out.push(change),
                Step::Dirs { old: a, new: b, prefix } => self.diff_dirs((old, new), &a, &b, &prefix, &mut next)?,
                Step::Below { id, prefix, status } => {
                    for child in &self.read_dir(&id)?.entries {
                        one_side(child, &prefix, status, &mut next);
                    }
                }
            }
            stack.extend(next.into_iter().rev());
        }
        Ok(out)
    }

    /// The steps comparing directories `old` and `new`, in order; `roots`
    /// are the two trees' roots, where hard links are resolved.
    fn diff_dirs(
        &self,
        roots: (&ObjectId, &ObjectId),
        old: &ObjectId,
        new: &ObjectId,
        prefix: &[u8],
        next: &mut Vec<Step>,
    ) -> Result<()> {
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
                    one_side(&a.entries[i], prefix, Status::Deleted, next);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    one_side(&b.entries[j], prefix, Status::Added, next);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    self.both(roots, &a.entries[i], &b.entries[j], prefix, next)?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    fn both(
        &self,
        roots: (&ObjectId, &ObjectId),
        a: &Entry,
        b: &Entry,
        prefix: &[u8],
        next: &mut Vec<Step>,
    ) -> Result<()> {
        let path = join(prefix, &b.name);
        // A name of a hard-link group is compared as the file it names: the
        // group's layout changes (its first name removed, another one
        // holding the content now) when the file does not.
        if matches!(a.kind, EntryKind::HardLink { .. }) != matches!(b.kind, EntryKind::HardLink { .. })
            && let (Some(x), Some(y)) = (self.linked_file(roots.0, a)?, self.linked_file(roots.1, b)?)
        {
            return self.both(roots, &x, &Entry { name: b.name.clone(), ..y }, prefix, next);
        }
        if std::mem::discriminant(&a.kind) != std::mem::discriminant(&b.kind) {
            next.push(Step::Emit(change(Status::TypeChanged, path.clone(), Some(a), Some(b), Vec::new())));
            // One side is a directory: its contents appear or vanish.
            if let Some(id) = dir_id(a) {
                next.push(Step::Below { id, prefix: path.clone(), status: Status::Deleted });
            }
            if let Some(id) = dir_id(b) {
                next.push(Step::Below { id, prefix: path, status: Status::Added });
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
        let entries_changed =
            matches!((&a.kind, &b.kind), (EntryKind::Dir { id: x }, EntryKind::Dir { id: y }) if x != y);
        meta_changes(&a.meta, &b.meta, entries_changed, &mut what);
        if !what.is_empty() {
            next.push(Step::Emit(change(Status::Modified, path.clone(), Some(a), Some(b), what)));
        }
        if let (EntryKind::Dir { id: x }, EntryKind::Dir { id: y }) = (&a.kind, &b.kind) {
            next.push(Step::Dirs { old: *x, new: *y, prefix: path });
        }
        Ok(())
    }

    /// The entry holding the content of `e`'s hard-link group in tree
    /// `root`: `e` itself when it is a file, its group's first name when it
    /// is a link; None for anything else.
    fn linked_file(&self, root: &ObjectId, e: &Entry) -> Result<Option<Entry>> {
        match &e.kind {
            EntryKind::File { .. } => Ok(Some(e.clone())),
            EntryKind::HardLink { target } => self.file_at(root, target),
            _ => Ok(None),
        }
    }
}

/// The change of the root directory's own metadata, as path `.` (mode,
/// owner, xattrs; not the mtime, which the root's record ignores as it
/// moves with every entry added or removed): `old` and `new` are
/// two revisions' `root_meta`, or a working tree's.
pub fn root_change(old: &Meta, new: &Meta) -> Option<Change> {
    let mut what = Vec::new();
    meta_changes(old, new, true, &mut what);
    let dir = || Some("dir");
    (!what.is_empty()).then(|| Change {
        status: Status::Modified,
        path: ".".into(),
        path_hex: None,
        raw_path: b".".to_vec(),
        old_type: dir(),
        new_type: dir(),
        old_size: None,
        new_size: None,
        what,
    })
}

/// What differs between two entries' metadata; `entries_changed`: of a
/// directory whose entries changed too.
fn meta_changes(a: &Meta, b: &Meta, entries_changed: bool, what: &mut Vec<&'static str>) {
    if a.mode != b.mode {
        what.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        what.push("owner");
    }
    // A directory's mtime moves whenever an entry is added or removed;
    // reporting it then would repeat what its entries already say. Alone
    // (a `touch` of the directory) it is a change like any other.
    if a.mtime != b.mtime && !entries_changed {
        what.push("mtime");
    }
    if a.xattrs != b.xattrs {
        what.push("xattrs");
    }
}

/// An entry present on one side: its change, then, for a directory,
/// everything below it.
fn one_side(e: &Entry, prefix: &[u8], status: Status, next: &mut Vec<Step>) {
    let path = join(prefix, &e.name);
    let (old, new) = if status == Status::Added { (None, Some(e)) } else { (Some(e), None) };
    next.push(Step::Emit(change(status, path.clone(), old, new, Vec::new())));
    if let EntryKind::Dir { id } = &e.kind {
        next.push(Step::Below { id: *id, prefix: path, status });
    }
}

fn dir_id(e: &Entry) -> Option<ObjectId> {
    match e.kind {
        EntryKind::Dir { id } => Some(id),
        _ => None,
    }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() { name.to_vec() } else { [prefix, b"/", name].concat() }
}

fn change(status: Status, path: Vec<u8>, old: Option<&Entry>, new: Option<&Entry>, what: Vec<&'static str>) -> Change {
    Change {
        status,
        path: String::from_utf8_lossy(&path).into_owned(),
        path_hex: std::str::from_utf8(&path).is_err().then(|| hex::encode(&path)),
        raw_path: path,
        old_type: old.map(|e| e.kind.type_name()),
        new_type: new.map(|e| e.kind.type_name()),
        old_size: old.and_then(size_of),
        new_size: new.and_then(size_of),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::quote_path;

    #[test]
    fn paths_print_as_one_unambiguous_line() {
        assert_eq!(quote_path(b"a/b c.txt"), "a/b c.txt");
        assert_eq!(quote_path("caf\u{e9}/\u{1f600}".as_bytes()), "caf\u{e9}/\u{1f600}");
        assert_eq!(quote_path(b"new\nline2"), r#""new\nline2""#);
        assert_eq!(quote_path(b"\x1b[31mred"), r#""\033[31mred""#);
        assert_eq!(quote_path(b"x\xff\xfeq"), r#""x\377\376q""#);
        assert_eq!(quote_path(b"q\"uote\\"), r#""q\"uote\\""#);
        // A C1 control character is escaped byte by byte, like invalid bytes.
        assert_eq!(quote_path("a\u{9b}b".as_bytes()), r#""a\302\233b""#);
        assert_ne!(quote_path(b"x\xff"), quote_path("x\u{fffd}".as_bytes()));
        // A right-to-left override cannot make a name show as another.
        assert_eq!(quote_path("a\u{202e}txt.exe".as_bytes()), r#""a\342\200\256txt.exe""#);
    }
}
