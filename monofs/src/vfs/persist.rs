//! Storing a mounted tree: dirty files are chunked, changed directories
//! re-encoded bottom-up (unchanged ones keep their ids), hard links written
//! in canonical form.

use std::collections::HashMap;

use super::ROOT;
use super::data::{Merged, ensure_layout};
use super::node::{BLOCK, Body, FileData, Ino, Node};
use crate::content::{ChunkCache, Chunker, Edit, INLINE_MAX};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Content, Dir, Entry, EntryKind, Kind, Meta};
use crate::repo::{ObjectSink, Repository};

/// Writes the changed part of a tree into a transaction. The nodes are
/// left as they were (bar cached chunk lists): what was written is
/// gathered in [`Written`], to be installed only once the transaction has
/// committed, so that a failed commit (a full disk) leaves every change
/// still pending instead of marked stored under ids the store never got.
pub(crate) struct Writer<'a> {
    pub repo: &'a Repository,
    pub cache: &'a ChunkCache,
    pub sink: &'a ObjectSink<'a>,
    pub nodes: &'a mut HashMap<Ino, Node>,
    pub written: Written,
    /// Whether changed files are written as their last stored version,
    /// which stores no file content: a tree of the names as they are now,
    /// small enough to store on a full disk (see `Vfs::gc`). Nothing it
    /// writes may be installed.
    pub stored_only: bool,
}

/// What a [`Writer`] stored: directories (id, logical size) and files (new
/// stored version), by inode.
#[derive(Default)]
pub(crate) struct Written {
    dirs: HashMap<Ino, (ObjectId, u64)>,
    files: HashMap<Ino, FileData>,
}

impl Written {
    /// Marks the nodes stored as written; call once the transaction that
    /// holds them has committed.
    pub fn install(self, nodes: &mut HashMap<Ino, Node>) {
        for (ino, (id, size)) in self.dirs {
            if let Some(d) = nodes.get_mut(&ino).and_then(Node::dir_mut) {
                d.clean = Some(id);
                d.size = size;
            }
        }
        for (ino, stored) in self.files {
            if let Some(Body::File(f)) = nodes.get_mut(&ino).map(|n| &mut n.body) {
                *f = stored;
            }
        }
    }
}

/// Path components of a directory inode, from the root.
pub(crate) fn dir_path(nodes: &HashMap<Ino, Node>, mut ino: Ino) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((parent, name)) = nodes.get(&ino).and_then(|n| n.parents.first()) {
        out.push(name.clone());
        ino = *parent;
    }
    out.reverse();
    out
}

/// A directory being written: its entries so far, the children still to
/// go, and the name of the subdirectory being written below it.
struct Writing {
    ino: Ino,
    children: std::collections::btree_map::IntoIter<Vec<u8>, Ino>,
    entries: Vec<Entry>,
    size: u64,
    below: Option<Vec<u8>>,
}

impl Writer<'_> {
    /// Writes directory `ino` (and what changed below it); returns its id
    /// and logical size. Depth first with a stack of its own: a tree
    /// thousands of levels deep (made with mkdir and chdir) overflowed the
    /// thread's stack, taking the mount down with its unstored changes.
    pub fn dir(&mut self, ino: Ino) -> Result<(ObjectId, u64)> {
        if let Some(done) = self.clean_dir(ino)? {
            return Ok(done);
        }
        let mut stack = vec![self.writing(ino)?];
        loop {
            let top = stack.last_mut().ok_or(Error::Aborted)?;
            let parent = top.ino;
            if let Some((name, child)) = top.children.next() {
                let is_dir = matches!(self.nodes.get(&child).map(|n| &n.body), Some(Body::Dir(_)));
                if !is_dir {
                    let (entry, logical) = self.entry(parent, &name, child)?;
                    top.entries.push(entry);
                    top.size += logical;
                } else if let Some((id, size)) = self.clean_dir(child)? {
                    top.entries.push(self.dir_entry(name, child, id));
                    top.size += size;
                } else {
                    top.below = Some(name);
                    let below = self.writing(child)?;
                    stack.push(below);
                }
                continue;
            }
            let done = stack.pop().ok_or(Error::Aborted)?;
            let id = self.sink.put(Kind::Dir, &Dir { entries: done.entries, size: done.size }.encode())?;
            self.written.dirs.insert(done.ino, (id, done.size));
            let Some(up) = stack.last_mut() else { return Ok((id, done.size)) };
            let name = up.below.take().ok_or(Error::Aborted)?;
            up.entries.push(self.dir_entry(name, done.ino, id));
            up.size += done.size;
        }
    }

    /// The stored id and size of directory `ino` when nothing below it
    /// changed.
    fn clean_dir(&self, ino: Ino) -> Result<Option<(ObjectId, u64)>> {
        match self.nodes.get(&ino).map(|n| &n.body) {
            Some(Body::Dir(d)) => Ok(d.clean.map(|id| (id, d.size))),
            _ => Err(Error::Aborted),
        }
    }

    fn writing(&self, ino: Ino) -> Result<Writing> {
        match self.nodes.get(&ino).map(|n| &n.body) {
            Some(Body::Dir(d)) => Ok(Writing {
                ino,
                children: d.children.clone().into_iter(),
                entries: Vec::with_capacity(d.children.len()),
                size: 0,
                below: None,
            }),
            _ => Err(Error::Aborted),
        }
    }

    fn dir_entry(&self, name: Vec<u8>, ino: Ino, id: ObjectId) -> Entry {
        let meta = self.nodes.get(&ino).map(|n| n.meta.clone()).unwrap_or_default();
        Entry { name, kind: EntryKind::Dir { id }, meta }
    }

    /// The entry for non-directory `ino` under `name` in `parent`, and the
    /// logical size it adds to the directory (a file's size).
    fn entry(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Result<(Entry, u64)> {
        // Hard links: the first name in pre-order holds the content.
        if let Some(first) = self.first_link(ino)
            && first != (parent, name.to_vec())
        {
            let mut target = dir_path(self.nodes, first.0);
            target.push(first.1);
            let kind = EntryKind::HardLink { target: target.join(&b'/') };
            return Ok((Entry { name: name.to_vec(), kind, meta: Meta::default() }, 0));
        }
        let (repo, cache, sink) = (self.repo, self.cache, self.sink);
        let node = self.nodes.get_mut(&ino).ok_or(Error::Aborted)?;
        let kind = match &mut node.body {
            Body::File(f) if f.dirty && !self.stored_only => {
                let stored = store_file(repo, cache, sink, f)?;
                let kind = EntryKind::File { size: stored.size, content: stored.base.clone() };
                self.written.files.insert(ino, stored);
                kind
            }
            Body::File(f) if f.dirty => EntryKind::File { size: f.base_len, content: f.base.clone() },
            Body::File(f) => EntryKind::File { size: f.size, content: f.base.clone() },
            Body::Symlink(target) => EntryKind::Symlink { target: target.clone() },
            Body::Special(kind) => kind.clone(),
            Body::Dir(_) => return Err(Error::Aborted),
        };
        let logical = if let EntryKind::File { size, .. } = &kind { *size } else { 0 };
        Ok((Entry { name: name.to_vec(), kind, meta: node.meta.clone() }, logical))
    }

    /// For a node with several names, the first in pre-order.
    fn first_link(&self, ino: Ino) -> Option<(Ino, Vec<u8>)> {
        let node = self.nodes.get(&ino)?;
        if node.parents.len() < 2 {
            return None;
        }
        node.parents
            .iter()
            .map(|(p, n)| {
                let mut path = dir_path(self.nodes, *p);
                path.push(n.clone());
                (path, (*p, n.clone()))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, link)| link)
    }
}

/// The root directory's id after writing everything that changed, and
/// what was written, to [`Written::install`] once committed.
pub(crate) fn write_root(w: &mut Writer<'_>) -> Result<(ObjectId, Written)> {
    let (root, _) = w.dir(ROOT)?;
    Ok((root, std::mem::take(&mut w.written)))
}

/// Chunks and stores the content of `f` (stored bytes overlaid with its
/// dirty blocks); returns the new stored version of the file, layout
/// included. Only what changed is read and cut again: an edit of a large
/// file costs about the edit, not the file (see [`Chunker::store_edit`]).
pub(crate) fn store_file(
    repo: &Repository,
    cache: &ChunkCache,
    sink: &ObjectSink<'_>,
    f: &mut FileData,
) -> Result<FileData> {
    let size = f.size;
    let chunker = Chunker::for_repo(repo);
    if size <= INLINE_MAX as u64 {
        let mut reader = Merged { repo, cache, file: f, pos: 0, zero_chunk: None };
        let (content, stored) = chunker.store(sink, &mut reader, std::path::Path::new("<mount>"), |_| {})?;
        return if stored == size { Ok(FileData::stored(content, size)) } else { Err(Error::Aborted) };
    }
    let chunked = matches!(f.base, Content::Chunk(_) | Content::List(_));
    let layout = if chunked { ensure_layout(repo, f)? } else { Default::default() };
    let changes = Changes::of(f);
    // The old chunks that end before the first change, the byte after each
    // included (FastCDC tests a cut at that byte), and that were cut by
    // content, with a full window before the old end and the new one.
    let window_end = f.base_len.min(f.size);
    let kept = layout
        .iter()
        .take_while(|(off, _, len)| off + len < changes.first && off + chunker.max_chunk() <= window_end)
        .last()
        .map_or(0, |(off, _, len)| off + len);
    let edit = Edit { old: &layout, start: kept, resync_after: changes.last.filter(|_| chunked) };
    let zero_chunk = repo.zero_chunk().1;
    let mut reader = Merged { repo, cache, file: f, pos: kept, zero_chunk: Some(zero_chunk) };
    let (content, stored, layout) = chunker.store_edit(sink, &mut reader, edit, std::path::Path::new("<mount>"))?;
    if stored != size {
        return Err(Error::Aborted);
    }
    let mut new = FileData::stored(content, size);
    new.set_layout(std::sync::Arc::new(layout), zero_chunk);
    Ok(new)
}

/// Where a file's bytes differ from its stored version.
struct Changes {
    /// The first offset that may differ.
    first: u64,
    /// The end of the last change, when the length and every byte from
    /// there to the end are unchanged (`None`: the tail changed).
    last: Option<u64>,
}

impl Changes {
    fn of(f: &FileData) -> Changes {
        let blocks = f.blocks.keys();
        let first_block = blocks.clone().next().map_or(u64::MAX, |i| i * BLOCK);
        let last_block = blocks.last().map_or(0, |i| ((i + 1) * BLOCK).min(f.size));
        // Bytes past `base_size` read as zeros, and a new length moves the end.
        let tail_kept = f.base_size == f.base_len && f.size == f.base_len;
        if tail_kept {
            Changes { first: first_block, last: Some(last_block) }
        } else {
            Changes { first: first_block.min(f.base_size), last: None }
        }
    }
}
