//! Batch edits of a stored tree: load only the directories an edit touches,
//! change entries, and write back just the directories that changed (the
//! rest keep their ids). This is how OCI layers are applied and how other
//! importers build trees without a directory on disk.
//!
//! Hard links are kept in their canonical form (docs/FORMAT.md, "Hard
//! links"): the first member in pre-order holds the content and the others
//! name it. Edits may break that order or delete the holder; [`TreeEditor::finish`]
//! restores the form, moving the content to the new first member. A link
//! names the file that was at its target when it was made, as with `tar`:
//! replacing the target's path later (a new file, a whiteout then a file, a
//! symlink) leaves the link's content alone.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Dir, Entry, EntryKind, Kind, Meta, valid_name};
use crate::repo::{ObjectSink, Repository};

enum Node {
    /// An entry as stored; a directory stays an id until an edit enters it.
    Stored(Entry),
    /// A directory loaded for editing.
    Dir(MemDir),
}

struct MemDir {
    meta: Meta,
    entries: BTreeMap<Vec<u8>, Node>,
}

/// Splits a `/`-separated relative path into validated components.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").collect();
    if parts.iter().any(|p| !valid_name(p)) {
        return Err(Error::InvalidTreePath(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(parts)
}

/// A path as its components; comparing two compares them in pre-order.
type TreePath = Vec<Vec<u8>>;

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

/// [`TreeEditor::note_removed`] on its fields, for where others are borrowed.
fn note_removed(removed: &mut HashMap<Vec<u8>, Vec<(u64, Entry)>>, steps: &mut u64, path: Vec<u8>, e: Entry) {
    *steps += 1;
    removed.entry(path).or_default().push((*steps, e));
}

fn join_tree(path: &TreePath) -> Vec<u8> {
    path.join(&b'/')
}

/// Edits a tree in memory; see the module documentation.
pub struct TreeEditor<'r> {
    repo: &'r Repository,
    root: MemDir,
    /// Non-directory entries removed or replaced by edits, by path, each
    /// with the step that removed it, in order: a hard link made before that
    /// step still names the removed entry.
    removed: HashMap<Vec<u8>, Vec<(u64, Entry)>>,
    /// The step as of which each hard link put here names its target's file
    /// (links of the base tree name it as of step 0, before any edit).
    link_made: HashMap<Vec<u8>, u64>,
    /// Removals so far: the clock of `removed` and `link_made`.
    steps: u64,
    /// Default metadata for directories created implicitly as parents.
    parent_meta: Meta,
}

impl<'r> TreeEditor<'r> {
    /// Starts from directory object `base`, or from an empty tree.
    pub fn new(repo: &'r Repository, base: Option<&ObjectId>) -> Result<TreeEditor<'r>> {
        let root = match base {
            Some(id) => load(repo, id)?,
            None => MemDir { meta: Meta { mode: 0o755, ..Meta::default() }, entries: BTreeMap::new() },
        };
        Ok(TreeEditor {
            repo,
            root,
            removed: HashMap::new(),
            link_made: HashMap::new(),
            steps: 0,
            parent_meta: Meta { mode: 0o755, ..Meta::default() },
        })
    }

    /// Metadata given to parent directories that edits create implicitly.
    pub fn set_parent_meta(&mut self, meta: Meta) {
        self.parent_meta = meta;
    }

    /// The directory at `parts`, loading and (with `create`) creating it.
    fn dir_mut(&mut self, parts: &[&[u8]], create: bool) -> Result<Option<&mut MemDir>> {
        let repo = self.repo;
        let parent_meta = &self.parent_meta;
        let (removed, steps) = (&mut self.removed, &mut self.steps);
        let mut dir = &mut self.root;
        for (i, part) in parts.iter().enumerate() {
            let replace = match dir.entries.get(*part) {
                Some(Node::Dir(_)) => None,
                Some(Node::Stored(Entry { kind: EntryKind::Dir { id }, meta, .. })) => {
                    let mut loaded = load(repo, id)?;
                    loaded.meta = meta.clone();
                    Some(loaded)
                }
                _ if !create => return Ok(None),
                // A non-directory in the way is replaced, as tar does; hard
                // links to it keep its content.
                found => {
                    if let Some(Node::Stored(e)) = found
                        && !matches!(e.kind, EntryKind::HardLink { .. })
                    {
                        note_removed(removed, steps, join(&parts[..=i]), e.clone());
                    }
                    Some(MemDir { meta: parent_meta.clone(), entries: BTreeMap::new() })
                }
            };
            if let Some(d) = replace {
                dir.entries.insert(part.to_vec(), Node::Dir(d));
            }
            dir = match dir.entries.get_mut(*part) {
                Some(Node::Dir(d)) => d,
                _ => return Err(Error::Aborted),
            };
        }
        Ok(Some(dir))
    }

    /// The entry at `path`, if any (a loaded directory is reported with a
    /// zero id and its current metadata).
    pub fn get(&mut self, path: &[u8]) -> Result<Option<Entry>> {
        let parts = components(path)?;
        let Some((name, parents)) = parts.split_last() else { return Ok(None) };
        let Some(dir) = self.dir_mut(parents, false)? else { return Ok(None) };
        Ok(dir.entries.get(*name).map(|n| match n {
            Node::Stored(e) => e.clone(),
            Node::Dir(d) => {
                Entry { name: name.to_vec(), kind: EntryKind::Dir { id: ObjectId::default() }, meta: d.meta.clone() }
            }
        }))
    }

    /// Creates (or updates the metadata of) the directory at `path`,
    /// creating missing parents; a non-directory there is replaced.
    pub fn mkdir(&mut self, path: &[u8], meta: Meta) -> Result<()> {
        let parts = components(path)?;
        if parts.is_empty() {
            self.root.meta = meta;
            return Ok(());
        }
        if let Some(Node::Stored(e)) =
            self.dir_mut(&parts[..parts.len() - 1], true)?.and_then(|d| d.entries.get(parts[parts.len() - 1]))
            && !matches!(e.kind, EntryKind::Dir { .. })
        {
            self.remember_removed(&parts)?;
        }
        let dir = self.dir_mut(&parts, true)?.ok_or(Error::Aborted)?;
        dir.meta = meta;
        Ok(())
    }

    /// Puts a non-directory entry at `path` (its name is taken from the
    /// path), replacing whatever is there, creating missing parents.
    pub fn put(&mut self, path: &[u8], kind: EntryKind, meta: Meta) -> Result<()> {
        if matches!(kind, EntryKind::Dir { .. }) {
            return Err(Error::InvalidTreePath(format!(
                "{}: use mkdir for directories",
                String::from_utf8_lossy(path)
            )));
        }
        let parts = components(path)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(Error::InvalidTreePath("an entry needs a name".into()));
        };
        let kind = match kind {
            EntryKind::HardLink { target } => {
                let (target, made) = self.link_target(&target, &parts)?;
                self.remove(path)?;
                self.link_made.insert(join(&parts), made);
                EntryKind::HardLink { target }
            }
            kind => {
                self.remove(path)?;
                kind
            }
        };
        let dir = self.dir_mut(parents, true)?.ok_or(Error::Aborted)?;
        dir.entries.insert(name.to_vec(), Node::Stored(Entry { name: name.to_vec(), kind, meta }));
        Ok(())
    }

    /// The file a hard link to `target` (from `from`) names: the target's
    /// path and the step as of which it is the file there. A link to a
    /// link names that link's file, as `tar` does.
    fn link_target(&mut self, target: &[u8], from: &[&[u8]]) -> Result<(Vec<u8>, u64)> {
        let parts = components(target)?;
        let path = join(&parts);
        let name = || String::from_utf8_lossy(&path).into_owned();
        if parts == from {
            return Err(Error::InvalidTreePath(format!("{}: hard link to itself", name())));
        }
        match self.get(&path)? {
            None => Err(Error::InvalidTreePath(format!("hard link to {} which does not exist", name()))),
            Some(Entry { kind: EntryKind::Dir { .. }, .. }) => {
                Err(Error::InvalidTreePath(format!("hard link to {} which is a directory", name())))
            }
            Some(Entry { kind: EntryKind::HardLink { target }, .. }) => {
                let made = self.link_made.get(&path).copied().unwrap_or(0);
                Ok((join(&components(&target)?), made))
            }
            Some(_) => Ok((path, self.steps)),
        }
    }

    /// Notes that the non-directory entry `e` at `path` goes away now.
    fn note_removed(&mut self, path: Vec<u8>, e: Entry) {
        note_removed(&mut self.removed, &mut self.steps, path, e);
    }

    fn remember_removed(&mut self, parts: &[&[u8]]) -> Result<()> {
        let Some((name, parents)) = parts.split_last() else { return Ok(()) };
        let Some(dir) = self.dir_mut(parents, false)? else { return Ok(()) };
        if let Some(Node::Stored(e)) = dir.entries.get(*name)
            && !matches!(e.kind, EntryKind::Dir { .. } | EntryKind::HardLink { .. })
        {
            let e = e.clone();
            self.note_removed(join(parts), e);
        }
        Ok(())
    }

    /// Removes `path` (a directory with everything below it); returns
    /// whether something was there.
    pub fn remove(&mut self, path: &[u8]) -> Result<bool> {
        let parts = components(path)?;
        let Some((name, parents)) = parts.split_last() else {
            self.root.entries.clear();
            return Ok(true);
        };
        self.remember_removed(&parts)?;
        let Some(dir) = self.dir_mut(parents, false)? else { return Ok(false) };
        let gone = dir.entries.remove(*name);
        // Files below a removed directory may be hard-link holders too.
        if let Some(node) = &gone {
            let mut stack = vec![(join(&parts), node)];
            let mut loaded = Vec::new();
            while let Some((prefix, node)) = stack.pop() {
                match node {
                    Node::Dir(d) => {
                        for (n, child) in &d.entries {
                            stack.push((child_path(&prefix, n), child));
                        }
                    }
                    Node::Stored(Entry { kind: EntryKind::Dir { id }, .. }) => loaded.push((prefix, *id)),
                    Node::Stored(e) if !matches!(e.kind, EntryKind::HardLink { .. }) => {
                        self.note_removed(prefix, e.clone());
                    }
                    Node::Stored(_) => {}
                }
            }
            while let Some((prefix, id)) = loaded.pop() {
                for e in self.repo.read_dir(&id)?.entries {
                    let p = child_path(&prefix, &e.name);
                    match e.kind {
                        EntryKind::Dir { id } => loaded.push((p, id)),
                        EntryKind::HardLink { .. } => {}
                        _ => self.note_removed(p, e),
                    }
                }
            }
        }
        Ok(gone.is_some())
    }

    /// Removes everything inside directory `path` but keeps it (an OCI
    /// opaque whiteout).
    pub fn clear(&mut self, path: &[u8]) -> Result<()> {
        let parts = components(path)?;
        let names: Vec<Vec<u8>> = match self.dir_mut(&parts, false)? {
            Some(dir) => dir.entries.keys().cloned().collect(),
            None => return Ok(()),
        };
        for name in names {
            let mut child = join(&parts);
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            self.remove(&child)?;
        }
        Ok(())
    }

    /// Canonicalises hard links and writes every changed directory through
    /// `sink`; returns the root id and logical size.
    pub fn finish(mut self, sink: &ObjectSink<'_>) -> Result<(ObjectId, u64)> {
        self.canonicalise_links()?;
        write_dir(self.repo, sink, &self.root)
    }

    /// Every hard-link group gets its first member (pre-order) as holder.
    /// A group is the links that name one file: the one at their target's
    /// path as of when they were made, which may since have been removed or
    /// replaced there.
    fn canonicalise_links(&mut self) -> Result<()> {
        // Collect links and holders over the whole tree (loading it: only
        // trees that contain hard links pay for this).
        let mut links: Vec<(TreePath, TreePath)> = Vec::new();
        if !self.has_links()? {
            return Ok(());
        }
        self.collect_links(&mut Vec::new(), &mut links)?;
        // By target path, then by the step that removed the file they name
        // there (None: the file is still there).
        let mut groups: BTreeMap<(TreePath, Option<u64>), Vec<TreePath>> = BTreeMap::new();
        for (path, target) in links {
            let made = self.link_made.get(&join_tree(&path)).copied().unwrap_or(0);
            let gone = self.removed.get(&join_tree(&target)).and_then(|r| r.iter().find(|(step, _)| *step > made));
            groups.entry((target, gone.map(|(step, _)| *step))).or_default().push(path);
        }
        for ((target, gone), mut members) in groups {
            let target_path = join_tree(&target);
            let holder = match gone {
                Some(step) => self.removed[&target_path].iter().find(|(s, _)| *s == step).map(|(_, e)| e.clone()),
                None => match self.get(&target_path)? {
                    Some(e) if !matches!(e.kind, EntryKind::Dir { .. } | EntryKind::HardLink { .. }) => {
                        members.push(target.clone());
                        Some(e)
                    }
                    _ => None,
                },
            };
            let holder = holder.ok_or_else(|| {
                Error::InvalidTreePath(format!(
                    "hard link to {} which is not a file",
                    String::from_utf8_lossy(&target_path)
                ))
            })?;
            // Component-wise order is pre-order over byte-sorted names.
            members.sort();
            let first_path = join_tree(&members[0]);
            for (i, m) in members.iter().enumerate() {
                let (kind, meta) = if i == 0 {
                    (holder.kind.clone(), holder.meta.clone())
                } else {
                    (EntryKind::HardLink { target: first_path.clone() }, Meta::default())
                };
                self.set_entry(&join_tree(m), kind, meta)?;
            }
        }
        Ok(())
    }

    fn set_entry(&mut self, path: &[u8], kind: EntryKind, meta: Meta) -> Result<()> {
        let parts = components(path)?;
        let Some((name, parents)) = parts.split_last() else { return Err(Error::Aborted) };
        let dir = self.dir_mut(parents, true)?.ok_or(Error::Aborted)?;
        dir.entries.insert(name.to_vec(), Node::Stored(Entry { name: name.to_vec(), kind, meta }));
        Ok(())
    }

    fn has_links(&self) -> Result<bool> {
        fn walk(repo: &Repository, dir: &MemDir) -> Result<bool> {
            for node in dir.entries.values() {
                match node {
                    Node::Dir(d) => {
                        if walk(repo, d)? {
                            return Ok(true);
                        }
                    }
                    Node::Stored(Entry { kind: EntryKind::HardLink { .. }, .. }) => return Ok(true),
                    Node::Stored(Entry { kind: EntryKind::Dir { id }, .. }) => {
                        if stored_has_links(repo, id)? {
                            return Ok(true);
                        }
                    }
                    Node::Stored(_) => {}
                }
            }
            Ok(false)
        }
        walk(self.repo, &self.root)
    }

    fn collect_links(&mut self, prefix: &mut TreePath, out: &mut Vec<(TreePath, TreePath)>) -> Result<()> {
        let refs: Vec<&[u8]> = prefix.iter().map(Vec::as_slice).collect();
        let names: Vec<Vec<u8>> =
            self.dir_mut(&refs, false)?.map(|d| d.entries.keys().cloned().collect()).unwrap_or_default();
        for name in names {
            let refs: Vec<&[u8]> = prefix.iter().map(Vec::as_slice).collect();
            let kind = match self.dir_mut(&refs, false)?.and_then(|d| d.entries.get(&name)) {
                Some(Node::Dir(_)) => None,
                Some(Node::Stored(e)) => Some(e.kind.clone()),
                None => continue,
            };
            prefix.push(name);
            match kind {
                None | Some(EntryKind::Dir { .. }) => self.collect_links(prefix, out)?,
                Some(EntryKind::HardLink { target }) => {
                    let t = components(&target)?.into_iter().map(<[u8]>::to_vec).collect();
                    out.push((prefix.clone(), t));
                }
                Some(_) => {}
            }
            prefix.pop();
        }
        Ok(())
    }
}

fn child_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn stored_has_links(repo: &Repository, id: &ObjectId) -> Result<bool> {
    for e in repo.read_dir(id)?.entries {
        match e.kind {
            EntryKind::HardLink { .. } => return Ok(true),
            EntryKind::Dir { id } if stored_has_links(repo, &id)? => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

fn load(repo: &Repository, id: &ObjectId) -> Result<MemDir> {
    let dir = repo.read_dir(id)?;
    Ok(MemDir {
        meta: Meta::default(),
        entries: dir.entries.into_iter().map(|e| (e.name.clone(), Node::Stored(e))).collect(),
    })
}

fn write_dir(repo: &Repository, sink: &ObjectSink<'_>, dir: &MemDir) -> Result<(ObjectId, u64)> {
    let mut entries = Vec::with_capacity(dir.entries.len());
    let mut size = 0;
    for (name, node) in &dir.entries {
        match node {
            Node::Stored(e) => {
                size += match &e.kind {
                    EntryKind::File { size, .. } => *size,
                    EntryKind::Dir { id } => repo.read_dir(id)?.size,
                    _ => 0,
                };
                entries.push(e.clone());
            }
            Node::Dir(d) => {
                let (id, sub) = write_dir(repo, sink, d)?;
                size += sub;
                entries.push(Entry { name: name.clone(), kind: EntryKind::Dir { id }, meta: d.meta.clone() });
            }
        }
    }
    let d = Dir { entries, size };
    Ok((sink.put(Kind::Dir, &d.encode())?, size))
}
