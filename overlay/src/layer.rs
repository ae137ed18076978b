//! Applying one layer tar onto a tree with OCI semantics.
//!
//! Whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) hide entries
//! of the *lower* layers only: an entry of the same layer survives them in
//! whichever order the tar lists them. Entries are validated before they
//! touch the tree: absolute paths, `..` components, hard links that point
//! outside the root and paths that pass through a symlink are rejected with
//! an error naming the layer and the entry. Ownership, modes, mtimes (with
//! PAX sub-second precision) and `SCHILY.xattr.*` records are kept as
//! metadata, so no privileges are needed.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use monofs::ObjectId;
use monofs::Repository;
use monofs::content::Chunker;
use monofs::edit::TreeEditor;
use monofs::object::{EntryKind, Meta, Timestamp};
use monofs::repo::ObjectSink;

use crate::error::{Error, Result};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Applies the tar stream `tar` (already decompressed) on top of tree
/// `base` (or an empty tree) and writes the result through `sink`; returns
/// the new root and its logical size. `layer` names errors.
pub fn apply_layer(
    repo: &Repository,
    sink: &ObjectSink<'_>,
    base: Option<&ObjectId>,
    layer: &str,
    tar: &mut dyn Read,
) -> Result<(ObjectId, u64)> {
    let mut ap = Applier {
        repo,
        base: base.copied(),
        layer,
        ed: TreeEditor::new(repo, base)?,
        known_dirs: HashSet::new(),
        layer_dirs: HashSet::new(),
        layer_files: HashSet::new(),
        chunker: Chunker::for_repo(repo),
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|source| Error::Layer { layer: layer.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Layer { layer: layer.to_owned(), source })?;
        ap.entry(sink, entry)?;
    }
    ap.ed.finish(sink).map_err(|source| Error::LayerTree { layer: layer.to_owned(), source })
}

struct Applier<'r, 'l> {
    repo: &'r Repository,
    base: Option<ObjectId>,
    layer: &'l str,
    ed: TreeEditor<'r>,
    /// Paths checked to be directories (not symlinks) in this layer.
    known_dirs: HashSet<Vec<u8>>,
    /// Directories this layer creates or enters (explicitly or as parents).
    layer_dirs: HashSet<Vec<u8>>,
    /// Non-directories this layer puts.
    layer_files: HashSet<Vec<u8>>,
    chunker: Chunker,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = a.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

impl Applier<'_, '_> {
    fn escape(&self, entry: &[u8], reason: &'static str) -> Error {
        Error::Escape { layer: self.layer.to_owned(), entry: lossy(entry), reason }
    }

    fn bad(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::BadEntry { layer: self.layer.to_owned(), entry: lossy(entry), reason: reason.into() }
    }

    fn tree(&self, entry: &[u8], e: monofs::Error) -> Error {
        self.bad(entry, e.to_string())
    }

    /// A tar path as root-relative components joined by `/`.
    fn normalize(&self, raw: &[u8]) -> Result<Vec<u8>> {
        if raw.first() == Some(&b'/') {
            return Err(self.escape(raw, "absolute path"));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for p in raw.split(|&b| b == b'/') {
            match p {
                b"" | b"." => {}
                b".." => return Err(self.escape(raw, "'..' component")),
                p if p.contains(&0) => return Err(self.bad(raw, "NUL in name")),
                p => parts.push(p),
            }
        }
        Ok(parts.join(&b'/'))
    }

    /// Every ancestor of `path` must be a directory or absent: a symlink on
    /// the way would redirect the entry (possibly out of the root).
    fn check_parents(&mut self, raw: &[u8], path: &[u8]) -> Result<()> {
        let mut end = 0;
        let ancestors: Vec<usize> = path.iter().enumerate().filter(|(_, b)| **b == b'/').map(|(i, _)| i).collect();
        for i in ancestors {
            let prefix = &path[..i];
            end = i;
            if self.known_dirs.contains(prefix) {
                continue;
            }
            match self.ed.get(prefix).map_err(|e| self.tree(raw, e))? {
                Some(e) if matches!(e.kind, EntryKind::Symlink { .. }) => {
                    return Err(self.escape(raw, "a parent directory is a symlink"));
                }
                _ => {
                    self.known_dirs.insert(prefix.to_vec());
                }
            }
        }
        let _ = end;
        Ok(())
    }

    fn note_added(&mut self, path: &[u8], dir: bool) {
        for (i, b) in path.iter().enumerate() {
            if *b == b'/' && !self.layer_dirs.contains(&path[..i]) {
                self.layer_dirs.insert(path[..i].to_vec());
            }
        }
        if dir {
            self.layer_dirs.insert(path.to_vec());
            self.known_dirs.insert(path.to_vec());
        } else {
            self.layer_files.insert(path.to_vec());
            if self.known_dirs.contains(path) {
                self.forget_below(path);
            }
        }
    }

    fn forget_below(&mut self, path: &[u8]) {
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        self.known_dirs.retain(|k| k != path && !k.starts_with(&prefix));
    }

    fn entry<R: Read>(&mut self, sink: &ObjectSink<'_>, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let path = self.normalize(&raw)?;
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
            None => (Vec::new(), path.clone()),
        };
        if !path.is_empty() {
            self.check_parents(&raw, &path)?;
        }
        if name == OPAQUE {
            return self.opaque(&raw, &parent);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.escape(&raw, "whiteout of an invalid name"));
            }
            let target = join(&parent, hidden);
            if !self.layer_files.contains(&target) && !self.layer_dirs.contains(&target) {
                self.ed.remove(&target).map_err(|e| self.tree(&raw, e))?;
                if self.known_dirs.contains(&target) {
                    self.forget_below(&target);
                }
            }
            return Ok(());
        }
        let meta = self.meta(&raw, &mut entry)?;
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        let entry_kind = match kind {
            T::Directory => {
                self.ed.mkdir(&path, meta).map_err(|e| self.tree(&raw, e))?;
                self.note_added(&path, true);
                return Ok(());
            }
            T::Regular | T::Continuous => {
                let (content, size) = self
                    .chunker
                    .store(sink, &mut entry, Path::new(&*String::from_utf8_lossy(&raw)), |_| {})
                    .map_err(|e| self.tree(&raw, e))?;
                EntryKind::File { size, content }
            }
            T::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| self.bad(&raw, "symlink without a target"))?;
                EntryKind::Symlink { target: target.into_owned() }
            }
            T::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| self.bad(&raw, "hard link without a target"))?;
                let target = match self.normalize(&target) {
                    Ok(t) => t,
                    Err(_) => return Err(self.escape(&raw, "hard link target outside the root")),
                };
                if target.is_empty() || target == path {
                    return Err(self.bad(&raw, "hard link to itself or to the root"));
                }
                match self.ed.get(&target).map_err(|e| self.tree(&raw, e))? {
                    Some(e) if !matches!(e.kind, EntryKind::Dir { .. }) => {}
                    _ => return Err(self.bad(&raw, format!("hard link to '{}', which is not a file", lossy(&target)))),
                }
                EntryKind::HardLink { target }
            }
            T::Fifo => EntryKind::Fifo,
            T::Char | T::Block => {
                let h = entry.header();
                let major = u64::from(h.device_major().ok().flatten().unwrap_or(0));
                let minor = u64::from(h.device_minor().ok().flatten().unwrap_or(0));
                if kind == T::Char { EntryKind::CharDev { major, minor } } else { EntryKind::BlockDev { major, minor } }
            }
            other => return Err(self.bad(&raw, format!("unsupported tar entry type {:?}", other))),
        };
        if path.is_empty() {
            return Err(self.bad(&raw, "a non-directory at the image root"));
        }
        self.ed.put(&path, entry_kind, meta).map_err(|e| self.tree(&raw, e))?;
        self.note_added(&path, false);
        Ok(())
    }

    /// Metadata from the header and its PAX records.
    fn meta<R: Read>(&self, raw: &[u8], entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = entry.header();
        let bad = |what: &str| self.bad(raw, format!("invalid {what} in tar header"));
        let mode = h.mode().map_err(|_| bad("mode"))? & 0o7777;
        let mut uid = u32::try_from(h.uid().map_err(|_| bad("uid"))?).map_err(|_| bad("uid"))?;
        let mut gid = u32::try_from(h.gid().map_err(|_| bad("gid"))?).map_err(|_| bad("gid"))?;
        let mut mtime = Timestamp { sec: i64::try_from(h.mtime().map_err(|_| bad("mtime"))?).unwrap_or(0), nsec: 0 };
        let mut xattrs = Vec::new();
        if let Some(pax) =
            entry.pax_extensions().map_err(|source| Error::Layer { layer: self.layer.to_owned(), source })?
        {
            for ext in pax {
                let ext = ext.map_err(|source| Error::Layer { layer: self.layer.to_owned(), source })?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    continue;
                }
                let value = std::str::from_utf8(ext.value_bytes()).unwrap_or("");
                match key {
                    b"mtime" => mtime = parse_pax_time(value).ok_or_else(|| bad("PAX mtime"))?,
                    b"uid" => uid = value.parse().map_err(|_| bad("PAX uid"))?,
                    b"gid" => gid = value.parse().map_err(|_| bad("PAX gid"))?,
                    _ => {}
                }
            }
        }
        xattrs.sort();
        xattrs.dedup_by(|a, b| a.0 == b.0);
        Ok(Meta { mode, uid, gid, mtime, xattrs })
    }

    /// Hides everything the lower layers have below `dir`, keeping what
    /// this layer put there.
    fn opaque(&mut self, raw: &[u8], dir: &[u8]) -> Result<()> {
        let Some(base) = self.base else { return Ok(()) };
        self.clear_lower(raw, &base, dir)
    }

    fn clear_lower(&mut self, raw: &[u8], base: &ObjectId, dir: &[u8]) -> Result<()> {
        let Some(id) = self.lower_dir(base, dir)? else { return Ok(()) };
        let listing = self.repo.read_dir(&id)?;
        for e in listing.entries {
            let child = join(dir, &e.name);
            if self.layer_dirs.contains(&child) {
                if matches!(e.kind, EntryKind::Dir { .. }) {
                    self.clear_lower(raw, base, &child)?;
                }
            } else if !self.layer_files.contains(&child) {
                self.ed.remove(&child).map_err(|err| self.tree(raw, err))?;
                if self.known_dirs.contains(&child) {
                    self.forget_below(&child);
                }
            }
        }
        Ok(())
    }

    /// The directory object at `path` in the lower tree, if it is one.
    fn lower_dir(&self, base: &ObjectId, path: &[u8]) -> Result<Option<ObjectId>> {
        let mut id = *base;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            let dir = self.repo.read_dir(&id)?;
            match dir.entries.iter().find(|e| e.name == part) {
                Some(monofs::object::Entry { kind: EntryKind::Dir { id: sub }, .. }) => id = *sub,
                _ => return Ok(None),
            }
        }
        Ok(Some(id))
    }
}

/// Parses a PAX time `SECONDS[.FRACTION]` (possibly negative).
fn parse_pax_time(s: &str) -> Option<Timestamp> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    Some(if !neg {
        Timestamp { sec, nsec }
    } else if nsec == 0 {
        Timestamp { sec: -sec, nsec: 0 }
    } else {
        Timestamp { sec: -sec - 1, nsec: 1_000_000_000 - nsec }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse() {
        assert_eq!(parse_pax_time("12.5"), Some(Timestamp { sec: 12, nsec: 500_000_000 }));
        assert_eq!(parse_pax_time("7"), Some(Timestamp { sec: 7, nsec: 0 }));
        assert_eq!(parse_pax_time("-1.25"), Some(Timestamp { sec: -2, nsec: 750_000_000 }));
        assert_eq!(parse_pax_time("x"), None);
    }
}
