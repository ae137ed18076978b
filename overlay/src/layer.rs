//! Applying one layer tar onto a tree with OCI semantics.
//!
//! Whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) hide entries
//! of the *lower* layers only: an entry of the same layer survives them in
//! whichever order the tar lists them. Entries are validated before they
//! touch the tree: absolute paths, `..` components, hard links that point
//! outside the root and paths that pass through a symlink leading out of
//! the root (absolute, or climbing above it) are rejected with an error
//! naming the layer and the entry; relative parent symlinks inside the root
//! are followed, as umoci does. Ownership, modes, mtimes (with
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
    // The parser would read an extension header of any claimed size whole.
    let mut archive = tar::Archive::new(crate::tar_guard::GuardedTar::new(tar));
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

    /// A tar path as root-relative components joined by `/`. `/` alone
    /// names the root, as `umoci insert ... /` writes it; any other
    /// absolute path is refused.
    fn normalize(&self, raw: &[u8]) -> Result<Vec<u8>> {
        if raw.first() == Some(&b'/') && raw.split(|&b| b == b'/').any(|p| !p.is_empty() && p != b".") {
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

    /// Resolves symlinks among the ancestors of `path` inside the tree, as
    /// `umoci` and Docker do for `bin -> usr/bin` style links (the last
    /// component is never followed: an entry replaces a symlink). A parent
    /// symlink with an absolute target, or one whose target climbs above
    /// the root, is refused: a naive extractor would write outside.
    fn resolve_parents(&mut self, raw: &[u8], path: &[u8]) -> Result<Vec<u8>> {
        let mut parts: Vec<Vec<u8>> = path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut hops = 0;
        let mut i = 0;
        while i + 1 < parts.len() {
            let prefix = parts[..=i].join(&b'/');
            if self.known_dirs.contains(&prefix) {
                i += 1;
                continue;
            }
            match self.ed.get(&prefix).map_err(|e| self.tree(raw, e))? {
                Some(monofs::object::Entry { kind: EntryKind::Symlink { target }, .. }) => {
                    hops += 1;
                    if hops > 40 {
                        return Err(self.bad(raw, "too many levels of symbolic links"));
                    }
                    if target.first() == Some(&b'/') {
                        return Err(self.escape(raw, "a parent directory is a symlink to an absolute path"));
                    }
                    let mut base: Vec<Vec<u8>> = parts[..i].to_vec();
                    for c in target.split(|&b| b == b'/') {
                        match c {
                            b"" | b"." => {}
                            b".." => {
                                if base.pop().is_none() {
                                    return Err(
                                        self.escape(raw, "a parent directory is a symlink leading out of the root")
                                    );
                                }
                            }
                            c => base.push(c.to_vec()),
                        }
                    }
                    base.extend(parts.drain(i + 1..));
                    parts = base;
                    i = 0;
                }
                _ => {
                    self.known_dirs.insert(prefix);
                    i += 1;
                }
            }
        }
        Ok(parts.join(&b'/'))
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
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Defaults for the whole archive, which Docker ignores too.
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            // One the parser did not take for what it says (no ustar magic):
            // reading its metadata would read it whole.
            return Err(self.bad(&raw, "an extension header the tar parser does not recognise"));
        }
        let mut path = self.normalize(&raw)?;
        if !path.is_empty() {
            path = self.resolve_parents(&raw, &path)?;
        }
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
            None => (Vec::new(), path.clone()),
        };
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
                    Ok(t) if !t.is_empty() => self.resolve_parents(&raw, &t)?,
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
        // Empty (all-NUL) numeric fields read as 0, as GNU tar and Go read them.
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let mut uid = u32::try_from(h.uid().unwrap_or(0)).map_err(|_| bad("uid"))?;
        let mut gid = u32::try_from(h.gid().unwrap_or(0)).map_err(|_| bad("gid"))?;
        let mut mtime = Timestamp { sec: i64::try_from(h.mtime().unwrap_or(0)).map_err(|_| bad("mtime"))?, nsec: 0 };
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
    use monofs::InitOptions;

    fn tar(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                }
            }
            h.set_mode(0o755);
            h.set_path(path).expect("path");
            h.set_cksum();
            b.append(&h, data.unwrap_or_default()).expect("append");
        }
        b.into_inner().expect("tar")
    }

    fn apply(repo: &Repository, base: Option<&ObjectId>, bytes: &[u8]) -> Result<ObjectId> {
        let (r, tx, _) = repo.write_objects(|sink| Ok(apply_layer(repo, sink, base, "test", &mut &bytes[..])))?;
        let (root, _) = r?;
        tx.commit().map_err(monofs::Error::from)?;
        Ok(root)
    }

    /// Every path below `root`, sorted.
    fn paths(repo: &Repository, root: &ObjectId) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), *root)];
        while let Some((prefix, id)) = stack.pop() {
            for e in repo.read_dir(&id).expect("dir").entries {
                let p = format!("{prefix}{}", String::from_utf8_lossy(&e.name));
                if let EntryKind::Dir { id } = e.kind {
                    stack.push((format!("{p}/"), id));
                }
                out.push(p);
            }
        }
        out.sort();
        out
    }

    #[test]
    fn opaque_keeps_same_layer_entries_in_merged_subdirectories() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo");
        let lower = apply(&repo, None, &tar(&[("d/sub/old", Some(b"1")), ("d/keep-not", Some(b"2"))])).expect("lower");
        // The marker comes last: entries before it in this layer survive.
        let upper = tar(&[("d/sub/new", Some(b"3")), ("d/top", Some(b"4")), ("d/.wh..wh..opq", Some(b""))]);
        let root = apply(&repo, Some(&lower), &upper).expect("upper");
        assert_eq!(paths(&repo, &root), vec!["d", "d/sub", "d/sub/new", "d/top"]);
    }

    #[test]
    fn whiteouts_hide_lower_entries_only() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo");
        let lower =
            apply(&repo, None, &tar(&[("a/x", Some(b"1")), ("b", Some(b"2")), ("c/y", Some(b"3"))])).expect("lower");
        let upper = tar(&[("b", Some(b"new")), (".wh.b", Some(b"")), (".wh.c", Some(b"")), ("a/.wh.x", Some(b""))]);
        let root = apply(&repo, Some(&lower), &upper).expect("upper");
        assert_eq!(paths(&repo, &root), vec!["a", "b"]);
    }

    #[test]
    fn relative_parent_symlinks_inside_the_root_are_followed() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_path("bin").expect("path");
        h.set_link_name("usr/bin").expect("link");
        h.set_cksum();
        b.append(&h, &[][..]).expect("append");
        let lower = apply(&repo, None, &b.into_inner().expect("tar")).expect("lower");
        let root = apply(&repo, Some(&lower), &tar(&[("bin/tool", Some(b"x"))])).expect("upper");
        assert_eq!(paths(&repo, &root), vec!["bin", "usr", "usr/bin", "usr/bin/tool"]);
    }

    #[test]
    fn entries_through_a_lower_symlink_are_refused() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_path("etc").expect("path");
        h.set_link_name("/host-etc").expect("link");
        h.set_cksum();
        b.append(&h, &[][..]).expect("append");
        let lower = apply(&repo, None, &b.into_inner().expect("tar")).expect("lower");
        let err = apply(&repo, Some(&lower), &tar(&[("etc/passwd", Some(b"x"))])).expect_err("refused");
        assert!(matches!(err, Error::Escape { ref entry, .. } if entry == "etc/passwd"), "{err}");
    }

    #[test]
    fn pax_times_parse() {
        assert_eq!(parse_pax_time("12.5"), Some(Timestamp { sec: 12, nsec: 500_000_000 }));
        assert_eq!(parse_pax_time("7"), Some(Timestamp { sec: 7, nsec: 0 }));
        assert_eq!(parse_pax_time("-1.25"), Some(Timestamp { sec: -2, nsec: 750_000_000 }));
        assert_eq!(parse_pax_time("x"), None);
    }
}
