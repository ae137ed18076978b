//! Building the in-memory node graph of a stored tree, keeping the inode
//! numbers recorded for each (parent, name).

use std::collections::{HashMap, HashSet};

use super::node::{Body, DirData, FileData, Ino, Node};
use super::{ROOT, table_key};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Content, EntryKind, Meta};
use crate::repo::Repository;

/// (parent inode, name) keys to inode numbers.
pub(crate) type InodeTable = HashMap<Vec<u8>, Ino>;

/// What an open file holds: its stored content and size, or `None` with
/// changes not stored yet.
pub(crate) type Held = Option<(Content, u64)>;

/// A directory being loaded: the entries still to load.
struct Loading {
    ino: Ino,
    id: ObjectId,
    size: u64,
    entries: std::vec::IntoIter<crate::object::Entry>,
}

pub(crate) struct Loader<'a> {
    pub repo: &'a Repository,
    /// (parent, name) -> inode, as persisted.
    pub old: &'a HashMap<Vec<u8>, Ino>,
    pub next_ino: &'a mut u64,
    pub nodes: HashMap<Ino, Node>,
    /// The new table.
    pub table: HashMap<Vec<u8>, Ino>,
    used: HashSet<Ino>,
    /// Files open now, with the content and size they hold: a path keeps
    /// such a file's number only if it holds that same content (see
    /// [`Loader::new`]).
    open: &'a HashMap<Ino, Held>,
}

impl<'a> Loader<'a> {
    /// A loader that keeps the numbers of `old`, except those of `open`
    /// files whose path now holds something else: their numbers stay with
    /// the open files (the caller keeps them, unnamed), as a file replaced
    /// on a local file system stays with the descriptors open on it.
    pub fn new(
        repo: &'a Repository,
        old: &'a HashMap<Vec<u8>, Ino>,
        next_ino: &'a mut u64,
        open: &'a HashMap<Ino, Held>,
    ) -> Loader<'a> {
        let mut used = HashSet::from([ROOT]);
        used.extend(open.keys());
        Loader { repo, old, next_ino, nodes: HashMap::new(), table: HashMap::new(), used, open }
    }

    /// Loads the tree of directory `root` under inode [`ROOT`].
    pub fn load(mut self, root: &ObjectId, root_meta: Meta) -> Result<(HashMap<Ino, Node>, InodeTable)> {
        self.nodes.insert(ROOT, Node::new(None, root_meta, Body::Dir(DirData::new(None))));
        self.load_dir(ROOT, root)?;
        Ok((self.nodes, self.table))
    }

    /// The number for the entry at `key` holding `kind`.
    fn ino_for(&mut self, key: &[u8], kind: &EntryKind) -> Ino {
        let same_file = |held: &Held| matches!((held, kind), (Some((c, s)), EntryKind::File { size, content }) if c == content && s == size);
        match self.old.get(key) {
            // An open file's number, reserved in `used`: taken only by
            // its own path, holding the same content.
            Some(&ino) if self.open.get(&ino).is_some_and(same_file) && !self.nodes.contains_key(&ino) => ino,
            Some(&ino) if self.used.insert(ino) => ino,
            _ => {
                let ino = *self.next_ino;
                *self.next_ino += 1;
                self.used.insert(ino);
                ino
            }
        }
    }

    /// Loads directory `id` under inode `ino`, depth first in name order
    /// (pre-order, where hard-link holders come before their links), with
    /// a stack of its own: a tree thousands of levels deep does not
    /// overflow the thread's.
    fn load_dir(&mut self, ino: Ino, id: &ObjectId) -> Result<()> {
        let mut stack = vec![self.open_dir(ino, id)?];
        while let Some(top) = stack.last_mut() {
            let parent = top.ino;
            let Some(e) = top.entries.next() else {
                let done = stack.pop().ok_or(Error::Aborted)?;
                if let Some(d) = self.nodes.get_mut(&done.ino).and_then(Node::dir_mut) {
                    d.clean = Some(done.id);
                    d.size = done.size;
                }
                continue;
            };
            let key = table_key(parent, &e.name);
            let link = (parent, e.name.clone());
            let (child, sub) = match e.kind {
                EntryKind::HardLink { target } => {
                    let primary = self.resolve(&target)?;
                    let node = self.nodes.get_mut(&primary).ok_or(Error::Aborted)?;
                    node.parents.push(link);
                    (primary, None)
                }
                kind => {
                    let child = self.ino_for(&key, &kind);
                    let body = match kind {
                        EntryKind::File { size, content } => Body::File(FileData::stored(content, size)),
                        EntryKind::Dir { id } => Body::Dir(DirData::new(Some(id))),
                        EntryKind::Symlink { target } => Body::Symlink(target),
                        other => Body::Special(other),
                    };
                    let sub = match &body {
                        Body::Dir(d) => d.clean,
                        _ => None,
                    };
                    self.nodes.insert(child, Node::new(Some(link), e.meta, body));
                    (child, sub)
                }
            };
            self.table.insert(key, child);
            // Named in its parent before anything below it loads: a hard
            // link further on (in this directory or below this entry) may
            // name it, and is resolved from the root.
            let is_dir = self.nodes.get(&child).is_some_and(|n| n.dir().is_some());
            if let Some(d) = self.nodes.get_mut(&parent).and_then(Node::dir_mut) {
                d.children.insert(e.name, child);
                d.subdirs += u32::from(is_dir);
            }
            if let Some(sub) = sub {
                let opened = self.open_dir(child, &sub)?;
                stack.push(opened);
            }
        }
        Ok(())
    }

    fn open_dir(&self, ino: Ino, id: &ObjectId) -> Result<Loading> {
        let dir = self.repo.read_dir(id)?;
        Ok(Loading { ino, id: *id, size: dir.size, entries: dir.entries.into_iter() })
    }

    /// The inode at a root-relative path already loaded (hard-link
    /// holders come first in pre-order, so they are).
    fn resolve(&self, path: &[u8]) -> Result<Ino> {
        let mut ino = ROOT;
        for part in path.split(|&b| b == b'/') {
            ino = *self
                .nodes
                .get(&ino)
                .and_then(Node::dir)
                .and_then(|d| d.children.get(part))
                .ok_or_else(|| Error::InvalidTreePath(String::from_utf8_lossy(path).into_owned()))?;
        }
        Ok(ino)
    }
}
