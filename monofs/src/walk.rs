//! Visits every object reachable from the repository's roots: every
//! revision ever made, every ref and the working trees. Shared by gc, fsck
//! and stats.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Content, Entry, EntryKind, Kind};
use crate::repo::{Repository, WORKTREE, WORKTREES_PREFIX};
use crate::store::Table;

/// Receives what a walk finds.
pub(crate) trait Visitor {
    /// A revision, directory or list node that was read, or a chunk that was
    /// referenced (chunks are not read; `size` is the bytes it covers).
    fn object(&mut self, id: &ObjectId, kind: Kind, size: u64, path: &str);
    /// An object that could not be read or decoded; returning an error
    /// stops the walk.
    fn broken(&mut self, id: &ObjectId, kind: Kind, path: &str, err: Error) -> Result<()>;
    /// The bytes of a file kept inside its directory (once per directory
    /// object).
    fn inline(&mut self, _bytes: &[u8]) {}
    /// Whether hard links should be followed to the file they name, a
    /// target that is not there being reported as [`Visitor::broken`] on
    /// the directory holding the link (fsck).
    fn checks_links(&self) -> bool {
        false
    }
}

struct Walk<'a> {
    repo: &'a Repository,
    seen: HashSet<ObjectId>,
    visitor: &'a mut dyn Visitor,
}

/// What a mounted tree holds in memory besides what its ref names: the
/// stored content of its files (of open files no longer named too) and
/// its unchanged directories.
#[derive(Debug, Default)]
pub struct Held {
    /// Stored content and its size.
    pub contents: Vec<(Content, u64)>,
    /// Stored directories.
    pub dirs: Vec<ObjectId>,
}

impl Repository {
    /// Every revision (indexed or named by a ref) and the working tree.
    pub(crate) fn walk_reachable(&self, visitor: &mut dyn Visitor) -> Result<()> {
        self.walk_reachable_and(visitor, &Held::default())
    }

    /// [`Repository::walk_reachable`], and what `held` names.
    pub(crate) fn walk_reachable_and(&self, visitor: &mut dyn Visitor, held: &Held) -> Result<()> {
        let mut revisions = self.all_revisions()?;
        let mut trees = Vec::new();
        self.store().scan(Table::Refs, b"", &mut |k, v| {
            if let Some(id) = ObjectId::from_slice(v) {
                if k == WORKTREE.as_bytes() || k.starts_with(WORKTREES_PREFIX.as_bytes()) {
                    trees.push(id);
                } else {
                    revisions.push(id);
                }
            }
            true
        })?;
        let mut walk = Walk { repo: self, seen: HashSet::new(), visitor };
        for rev in revisions {
            walk.run(Work::Revision(rev))?;
        }
        for root in trees {
            walk.run(Work::Dir { id: root, path: String::new(), root: Some(root) })?;
        }
        // Directories of a mounted tree, wherever they are in it.
        for dir in &held.dirs {
            walk.run(Work::Dir { id: *dir, path: String::new(), root: None })?;
        }
        for (content, size) in &held.contents {
            walk.content(content, *size, "<held by a mount>")?;
        }
        Ok(())
    }
}

impl Repository {
    /// The regular file at `path` (root-relative) in tree `root`, if that
    /// is one: where hard links are resolved.
    pub(crate) fn file_at(&self, root: &ObjectId, path: &[u8]) -> Result<Option<Entry>> {
        let mut dir = *root;
        let mut parts = path.split(|&b| b == b'/').filter(|p| !p.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let listing = self.read_dir(&dir)?;
            match listing.get(part) {
                Some(Entry { kind: EntryKind::Dir { id }, .. }) if parts.peek().is_some() => dir = *id,
                Some(e @ Entry { kind: EntryKind::File { .. }, .. }) if parts.peek().is_none() => {
                    return Ok(Some(e.clone()));
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// What a walk has still to visit. The walk keeps it on a stack of its own,
/// not the thread's: a history of a million revisions, or a tree 20,000
/// directories deep (a mount makes one as easily as any), overflowed the
/// thread's stack when each parent and subdirectory was a call.
enum Work {
    Revision(ObjectId),
    /// Directory `id` at `path` in the tree of `root` (where its hard
    /// links are resolved; `None` when not known).
    Dir {
        id: ObjectId,
        path: String,
        root: Option<ObjectId>,
    },
}

impl Walk<'_> {
    /// Visits `start` and everything below it.
    fn run(&mut self, start: Work) -> Result<()> {
        let mut stack = vec![start];
        while let Some(work) = stack.pop() {
            match work {
                Work::Revision(id) => self.revision(&id, &mut stack)?,
                Work::Dir { id, path, root } => self.dir(&id, &path, root.as_ref(), &mut stack)?,
            }
        }
        Ok(())
    }

    fn revision(&mut self, id: &ObjectId, stack: &mut Vec<Work>) -> Result<()> {
        if !self.seen.insert(*id) {
            return Ok(());
        }
        let rev = match self.repo.read_revision(id) {
            Ok(rev) => rev,
            Err(e) => return self.visitor.broken(id, Kind::Revision, "", e),
        };
        self.visitor.object(id, Kind::Revision, 0, "");
        stack.extend(rev.parents.iter().rev().map(|p| Work::Revision(*p)));
        // The tree first: the stack then holds one revision per parent, not
        // one tree per revision of the history.
        stack.push(Work::Dir { id: rev.root, path: String::new(), root: Some(rev.root) });
        Ok(())
    }

    /// Directory `id` at `path` in the tree of `root`: its files are
    /// visited, its subdirectories pushed on `stack`.
    fn dir(&mut self, id: &ObjectId, path: &str, root: Option<&ObjectId>, stack: &mut Vec<Work>) -> Result<()> {
        if !self.seen.insert(*id) {
            return Ok(());
        }
        let dir = match self.repo.read_dir(id) {
            Ok(dir) => dir,
            Err(e) => return self.visitor.broken(id, Kind::Dir, path, e),
        };
        self.visitor.object(id, Kind::Dir, 0, if path.is_empty() { "/" } else { path });
        let mut subdirs = Vec::new();
        for e in &dir.entries {
            let child = if path.is_empty() {
                String::from_utf8_lossy(&e.name).into_owned()
            } else {
                format!("{path}/{}", String::from_utf8_lossy(&e.name))
            };
            match &e.kind {
                EntryKind::Dir { id } => subdirs.push(Work::Dir { id: *id, path: child, root: root.copied() }),
                EntryKind::File { size, content } => self.content(content, *size, &child)?,
                EntryKind::HardLink { target } if self.visitor.checks_links() => {
                    // A directory on the way that cannot be read is
                    // reported for itself; the link names nothing either.
                    if let Some(root) = root
                        && self.repo.file_at(root, target).ok().flatten().is_none()
                    {
                        let why = format!(
                            "hard link {child} names {}, which is no file in its tree",
                            String::from_utf8_lossy(target)
                        );
                        self.visitor.broken(id, Kind::Dir, &child, Error::InvalidTreePath(why))?;
                    }
                }
                _ => {}
            }
        }
        // In name order, the stack being last in, first out.
        stack.extend(subdirs.into_iter().rev());
        Ok(())
    }

    fn content(&mut self, content: &Content, size: u64, path: &str) -> Result<()> {
        if let Content::Inline(bytes) = content {
            self.visitor.inline(bytes);
        }
        let (seen, visitor) = (&mut self.seen, &mut *self.visitor);
        let walked = self.repo.content_objects(content, size, &mut |id, kind, size| {
            if kind == Kind::Chunk {
                visitor.object(&id, kind, size, path);
                return false;
            }
            if !seen.insert(id) {
                return false;
            }
            visitor.object(&id, kind, size, path);
            true
        });
        if let Err(e) = walked {
            let id = match &e {
                Error::MissingObject(id) | Error::Corrupt { id, .. } | Error::Malformed { id, .. } => *id,
                _ => ObjectId::default(),
            };
            self.visitor.broken(&id, Kind::ChunkList, path, e)?;
        }
        Ok(())
    }
}
