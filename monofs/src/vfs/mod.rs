//! The VFS core: one inode-level API over a repository's working tree, used
//! by the FUSE adapter (and the NFS server).
//!
//! While mounted, the tree lives in memory as a graph of nodes loaded from
//! the stored tree; edits change nodes, and [`Vfs::flush`] stores what
//! changed (dirty files chunked, changed directories re-encoded) and moves
//! the `WORKTREE` ref in one transaction, so a crash loses only what was not
//! yet flushed and the repository stays consistent. Inode numbers are kept
//! in the `inodes` table by (parent, name), so a file keeps its number
//! across remounts.

mod data;
pub mod listing;
mod load;
mod node;
mod persist;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

pub use node::{BLOCK, Ino};
use node::{Body, DirData, FileData, Node};

use crate::content::ChunkCache;
use crate::error::Error;
use crate::id::ObjectId;
use crate::object::{Content, EntryKind, Meta, Timestamp, valid_name};
use crate::repo::{Repository, WORKTREE, worktree_ref};
use crate::store::Table;

/// The root directory's inode number.
pub const ROOT: Ino = 1;

/// How far ahead of a read stored chunks are fetched.
const READ_AHEAD: u64 = 4 << 20;

/// Dirty file bytes held in memory before a write forces a flush (512 MiB
/// made a mount process peak at 1 GB writing one large file); see
/// [`Vfs::limit_dirty`].
const MAX_DIRTY: u64 = 256 << 20;

/// Verified chunks kept for readers (sequential reads need only the
/// read-ahead; the kernel's page cache keeps what was read).
const CHUNK_CACHE: usize = 64 << 20;

const META_NEXT_INO: &[u8] = b"next_ino";

/// Inode numbers a session may give out beyond what is stored: the stored
/// counter is moved this far ahead, durably, before the first is given
/// out, so that numbers a crashed session gave out (an NFS client keeps
/// them in its handles) are never given to another file.
const INO_RESERVE: u64 = 1 << 20;

/// A failed file-system operation.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// A POSIX error for the caller.
    #[error("{0}")]
    Errno(Errno),
    /// The repository failed (corrupt object, I/O): EIO for the caller,
    /// ENOSPC when its disk is full.
    #[error(transparent)]
    Repo(#[from] Error),
}

impl VfsError {
    /// The errno to report.
    pub fn errno(&self) -> i32 {
        match self {
            VfsError::Errno(e) => *e as i32,
            VfsError::Repo(e) => {
                tracing::error!("{e}");
                if e.is_disk_full() { Errno::ENOSPC as i32 } else { Errno::EIO as i32 }
            }
        }
    }
}

impl From<Errno> for VfsError {
    fn from(e: Errno) -> Self {
        VfsError::Errno(e)
    }
}

/// Result of a VFS operation.
pub type VResult<T> = std::result::Result<T, VfsError>;

/// The type of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Socket.
    Socket,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
}

/// Attributes of an inode.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    /// Inode number.
    pub ino: Ino,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Type.
    pub kind: FileKind,
    /// Permission bits (0o7777).
    pub perm: u16,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number for device nodes.
    pub rdev: u32,
}

/// Attribute changes requested by `setattr`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<Timestamp>,
    /// New modification time.
    pub mtime: Option<Timestamp>,
}

/// What the kernel may still cache after [`Vfs::load`]: every (parent,
/// name) and every inode of the tree before.
pub type Forgotten = (Vec<(Ino, Vec<u8>)>, Vec<Ino>);

/// How `rename` treats an existing target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace it (POSIX rename).
    #[default]
    Replace,
    /// Fail with EEXIST (RENAME_NOREPLACE).
    NoReplace,
    /// Swap the two (RENAME_EXCHANGE).
    Exchange,
}

pub(crate) fn table_key(parent: Ino, name: &[u8]) -> Vec<u8> {
    let mut k = parent.to_be_bytes().to_vec();
    k.extend_from_slice(name);
    k
}

struct State {
    nodes: HashMap<Ino, Node>,
    /// The persisted (parent, name) -> inode table and pending changes.
    table: HashMap<Vec<u8>, Ino>,
    table_changes: HashMap<Vec<u8>, Option<Ino>>,
    next_ino: u64,
    /// The stored counter: numbers below it may have been given out.
    reserved: u64,
    /// Something changed since the last flush.
    changed: bool,
    dirty_bytes: u64,
    /// The stored root as of the last load or flush.
    root: ObjectId,
    /// Counts loads: a flush's snapshot of files belongs to this tree
    /// while it is unchanged.
    generation: u64,
    /// Nodes the tree may hold (see [`Vfs::limit_growth`]).
    max_nodes: usize,
    /// The root's metadata as loaded, and whether the tree has a record of
    /// its own for it (see `Repository::tree_root_meta`): a flush writes
    /// one once the root's metadata differs from what it inherited, and
    /// keeps it up to date from then on.
    root_meta: (Meta, bool),
}

/// The working tree of a repository as a file system.
pub struct Vfs {
    repo: Arc<Repository>,
    cache: Arc<ChunkCache>,
    state: Mutex<State>,
    read_only: bool,
    /// The ref the tree is flushed to (none when read-only).
    tree_ref: Option<String>,
    /// Prefix of this tree's keys in the inode table.
    ns: Vec<u8>,
    /// Whether inode numbers are stored (not for a scratch tree).
    persist_inodes: bool,
    /// Held by the one flush running.
    flushing: Mutex<()>,
    /// Set when a file is closed with changes not stored yet, for the
    /// flusher to store them soon (see [`Vfs::wait_for_closed_changes`]).
    closed_changes: (Mutex<bool>, std::sync::Condvar),
    /// Dirty file bytes held in memory before a write forces a flush.
    max_dirty: std::sync::atomic::AtomicU64,
    /// The root's metadata when a revision's tree is served.
    revision_root_meta: Option<Meta>,
}

/// Names a file may have, as on ext4 (EMLINK past it): each costs memory
/// in the process serving the tree.
const MAX_LINKS: usize = 65_000;

/// Bytes of extended attributes (names and values) a node may hold: one
/// value of the largest size Linux allows (64 KiB) and as much again, far
/// beyond ext4's 4 KiB block (ENOSPC past it, as there): they are kept in
/// memory and in the node's directory object, and there was no bound.
const XATTR_SPACE: usize = 128 << 10;

/// Stored files from this size on have their zeros counted at lookup (see
/// `Vfs::count_zeros`): sparse files are mostly large (disk images,
/// databases), and the count reads the file's chunk list under the tree's
/// lock, which `ls -l` of many photos should not pay (the Linux source has
/// one file this large out of 78,579; the list is kept for later reads).
const SPARSE_CHECK_MIN: u64 = 16 << 20;

/// The largest file, as on ext4 (16 TiB): offsets and sizes past it are
/// EFBIG. Storing a file keeps a chunk reference per 256 KiB of its holes
/// in memory (about 190 MB per TiB), so `ftruncate` to 2^62 got the mount
/// killed by the OOM killer at its next flush.
pub const MAX_FILE_SIZE: u64 = 16 << 40;

/// First byte of the inode keys of a named working tree.
const NAMED_TREE_TAG: u8 = 0xff;

/// Which tree a [`Vfs`] serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tree {
    /// The repository's working tree (`WORKTREE`).
    Worktree,
    /// A named working tree (`worktrees/NAME`), such as a sandbox's
    /// copy-on-write branch of an image; see [`Repository::create_worktree`].
    Named(String),
    /// Revision `id`'s tree, read-only.
    Revision(ObjectId),
    /// A writable copy of the tree `root` that nothing refers to: flushes
    /// store its objects but no ref and no inode numbers, so forgetting it
    /// costs nothing (a throwaway sandbox's root file system).
    Scratch(ObjectId),
}

impl Tree {
    fn ref_name(&self) -> Option<String> {
        match self {
            Tree::Worktree => Some(WORKTREE.to_owned()),
            Tree::Named(name) => Some(worktree_ref(name)),
            Tree::Revision(_) | Tree::Scratch(_) => None,
        }
    }

    fn inode_namespace(&self) -> Vec<u8> {
        match self {
            Tree::Named(name) => named_namespace(name),
            _ => Vec::new(),
        }
    }
}

/// Inode-table prefix of named tree `name`.
pub(crate) fn named_namespace(name: &str) -> Vec<u8> {
    let mut ns = vec![NAMED_TREE_TAG];
    ns.extend_from_slice(name.as_bytes());
    ns.push(0);
    ns
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn kind_of(node: &Node) -> FileKind {
    match &node.body {
        Body::File(_) => FileKind::File,
        Body::Dir(_) => FileKind::Dir,
        Body::Symlink(_) => FileKind::Symlink,
        Body::Special(EntryKind::Fifo) => FileKind::Fifo,
        Body::Special(EntryKind::Socket) => FileKind::Socket,
        Body::Special(EntryKind::CharDev { .. }) => FileKind::CharDev,
        Body::Special(_) => FileKind::BlockDev,
    }
}

fn attr_of(ino: Ino, node: &Node) -> Attr {
    let nlink = match &node.body {
        Body::Dir(d) => 2 + d.subdirs,
        // An unlinked file still open reports 0 links, as POSIX says.
        _ => node.parents.len() as u32,
    };
    let rdev = match &node.body {
        Body::Special(EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor }) => {
            nix::sys::stat::makedev(*major, *minor) as u32
        }
        _ => 0,
    };
    let size = node.size();
    let allocated = match &node.body {
        Body::File(f) => f.allocated(),
        _ => size,
    };
    Attr {
        ino,
        size,
        blocks: allocated.div_ceil(512),
        atime: node.atime,
        mtime: node.meta.mtime,
        ctime: node.ctime,
        kind: kind_of(node),
        perm: (node.meta.mode & 0o7777) as u16,
        nlink,
        uid: node.meta.uid,
        gid: node.meta.gid,
        rdev,
    }
}

fn check_name(name: &[u8]) -> VResult<()> {
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG.into());
    }
    if !valid_name(name) {
        return Err(Errno::EINVAL.into());
    }
    Ok(())
}

impl State {
    fn node(&self, ino: Ino) -> VResult<&Node> {
        self.nodes.get(&ino).ok_or(VfsError::Errno(Errno::ENOENT))
    }

    fn node_mut(&mut self, ino: Ino) -> VResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(VfsError::Errno(Errno::ENOENT))
    }

    fn dir(&self, ino: Ino) -> VResult<&DirData> {
        self.node(ino)?.dir().ok_or(VfsError::Errno(Errno::ENOTDIR))
    }

    fn child(&self, parent: Ino, name: &[u8]) -> VResult<Ino> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG.into());
        }
        self.dir(parent)?.children.get(name).copied().ok_or(VfsError::Errno(Errno::ENOENT))
    }

    /// Marks directory `ino` and its ancestors as changed.
    fn touch_dir(&mut self, mut ino: Ino) {
        self.changed = true;
        loop {
            let Some(node) = self.nodes.get_mut(&ino) else { return };
            if let Some(d) = node.dir_mut() {
                d.clean = None;
            }
            match node.parents.first() {
                Some((p, _)) => ino = *p,
                None => return,
            }
        }
    }

    /// After directory `ino` moved: the names of hard-link groups below it
    /// have new paths, so every directory holding a name of such a group
    /// is stored again (a link names its group's first name by path, and
    /// which name is first may change too).
    fn touch_links_below(&mut self, ino: Ino) {
        let mut linked = Vec::new();
        let mut todo = vec![ino];
        while let Some(at) = todo.pop() {
            let Some(node) = self.nodes.get(&at) else { continue };
            match &node.body {
                Body::Dir(d) => todo.extend(d.children.values().copied()),
                _ if node.parents.len() > 1 => linked.push(at),
                _ => {}
            }
        }
        for at in linked {
            self.touch_parents(at);
        }
    }

    /// Marks the directories holding `ino` (every name of it) as changed.
    fn touch_parents(&mut self, ino: Ino) {
        let parents: Vec<Ino> =
            self.nodes.get(&ino).map(|n| n.parents.iter().map(|p| p.0).collect()).unwrap_or_default();
        for p in parents {
            self.touch_dir(p);
        }
        self.changed = true;
    }

    fn alloc(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn link_name(&mut self, parent: Ino, name: &[u8], ino: Ino) -> VResult<()> {
        let is_dir = matches!(self.node(ino)?.body, Body::Dir(_));
        let d = self.node_mut(parent)?.dir_mut().ok_or(VfsError::Errno(Errno::ENOTDIR))?;
        d.children.insert(name.to_vec(), ino);
        d.subdirs += u32::from(is_dir);
        d.order = None;
        let key = table_key(parent, name);
        self.table.insert(key.clone(), ino);
        self.table_changes.insert(key, Some(ino));
        self.node_mut(ino)?.parents.push((parent, name.to_vec()));
        let t = now();
        let p = self.node_mut(parent)?;
        p.meta.mtime = t;
        p.ctime = t;
        self.touch_dir(parent);
        Ok(())
    }

    fn unlink_name(&mut self, parent: Ino, name: &[u8]) -> VResult<Ino> {
        let d = self.node_mut(parent)?.dir_mut().ok_or(VfsError::Errno(Errno::ENOTDIR))?;
        let ino = d.children.remove(name).ok_or(VfsError::Errno(Errno::ENOENT))?;
        d.order = None;
        if self.nodes.get(&ino).is_some_and(|n| matches!(n.body, Body::Dir(_)))
            && let Some(d) = self.node_mut(parent)?.dir_mut()
        {
            d.subdirs = d.subdirs.saturating_sub(1);
        }
        let key = table_key(parent, name);
        self.table.remove(&key);
        self.table_changes.insert(key, None);
        let t = now();
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.parents.retain(|(p, n)| !(*p == parent && n == name));
            node.ctime = t;
        }
        let p = self.node_mut(parent)?;
        p.meta.mtime = t;
        p.ctime = t;
        self.touch_dir(parent);
        // Other names of the node must re-derive their hard-link form.
        self.touch_parents(ino);
        self.maybe_drop(ino);
        Ok(ino)
    }

    /// Frees a node that has no name, no kernel reference and no open handle.
    fn maybe_drop(&mut self, ino: Ino) {
        if ino == ROOT {
            return;
        }
        let gone = self.nodes.get(&ino).is_some_and(|n| n.parents.is_empty() && n.lookups == 0 && n.opens == 0);
        if gone
            && let Some(node) = self.nodes.remove(&ino)
            && let Body::File(f) = &node.body
        {
            self.dirty_bytes = self.dirty_bytes.saturating_sub(f.dirty_bytes());
        }
    }

    fn new_node(&mut self, parent: Ino, name: &[u8], mut meta: Meta, body: Body) -> VResult<(Ino, Attr)> {
        check_name(name)?;
        if self.dir(parent)?.children.contains_key(name) {
            return Err(Errno::EEXIST.into());
        }
        // A set-group-ID directory gives what is made in it its group, and
        // its set-group-ID bit to directories (shared group directories).
        let above = &self.node(parent)?.meta;
        if above.mode & nix::libc::S_ISGID != 0 {
            meta.gid = above.gid;
            if matches!(body, Body::Dir(_)) {
                meta.mode |= nix::libc::S_ISGID;
            }
        }
        if self.nodes.len() >= self.max_nodes {
            return Err(Errno::ENOSPC.into());
        }
        let ino = self.alloc();
        let mut node = Node::new(None, meta, body);
        node.lookups = 1;
        self.nodes.insert(ino, node);
        self.link_name(parent, name, ino)?;
        Ok((ino, attr_of(ino, self.node(ino)?)))
    }
}

impl Vfs {
    /// Mounts the working tree of `repo` (read-only: the tree of revision
    /// `revision`).
    pub fn new(repo: Arc<Repository>, revision: Option<ObjectId>) -> Result<Vfs, Error> {
        Self::serve(repo, revision.map_or(Tree::Worktree, Tree::Revision))
    }

    /// Mounts `tree` of `repo`.
    pub fn serve(repo: Arc<Repository>, tree: Tree) -> Result<Vfs, Error> {
        let ns = tree.inode_namespace();
        let mut table = HashMap::new();
        let scratch = matches!(tree, Tree::Scratch(_));
        // A scratch tree numbers its inodes afresh and never stores them.
        let scan_prefix: &[u8] = if scratch { &[NAMED_TREE_TAG, 0xff] } else { &ns };
        repo.store().scan(Table::Inodes, scan_prefix, &mut |k, v| {
            if scratch {
                return false;
            }
            // The main working tree's keys start with a parent inode, never
            // with a named tree's 0xff prefix.
            let own = !ns.is_empty() || k.first() != Some(&NAMED_TREE_TAG);
            if own && let Ok(bytes) = <[u8; 8]>::try_from(v) {
                table.insert(k[ns.len()..].to_vec(), u64::from_le_bytes(bytes));
            }
            true
        })?;
        let next_ino = repo
            .store()
            .get(Table::Meta, META_NEXT_INO)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(2, u64::from_le_bytes)
            .max(table.values().max().map_or(2, |m| m + 1));
        let writes_inodes = !scratch && !matches!(tree, Tree::Revision(_));
        let reserved = if writes_inodes {
            let reserved = next_ino + INO_RESERVE;
            let mut tx = repo.store().begin()?;
            tx.put(Table::Meta, META_NEXT_INO, &reserved.to_le_bytes())?;
            tx.commit()?;
            reserved
        } else {
            u64::MAX
        };
        let state = State {
            nodes: HashMap::new(),
            table,
            table_changes: HashMap::new(),
            next_ino,
            reserved,
            changed: false,
            dirty_bytes: 0,
            // Set by `load` below.
            root: ObjectId([0; crate::id::ID_LEN]),
            generation: 0,
            root_meta: (Meta::default(), false),
            max_nodes: usize::MAX,
        };
        let revision = match &tree {
            Tree::Revision(id) => Some(repo.read_revision(id)?),
            _ => None,
        };
        let root = match &tree {
            Tree::Revision(_) => revision.as_ref().map_or_else(ObjectId::default, |r| r.root),
            Tree::Scratch(root) => *root,
            Tree::Worktree => repo.worktree()?,
            Tree::Named(name) => {
                repo.get_ref(&worktree_ref(name))?.ok_or_else(|| Error::NoSuchWorktree(name.clone()))?
            }
        };
        let vfs = Vfs {
            repo,
            cache: Arc::new(ChunkCache::new(CHUNK_CACHE)),
            state: Mutex::new(state),
            read_only: matches!(tree, Tree::Revision(_)),
            tree_ref: tree.ref_name(),
            persist_inodes: !scratch,
            ns,
            flushing: Mutex::new(()),
            closed_changes: Default::default(),
            max_dirty: MAX_DIRTY.into(),
            revision_root_meta: revision.map(|r| r.root_meta),
        };
        vfs.load(&root)?;
        Ok(vfs)
    }

    /// Holds at most `bytes` of written file data in memory (at least
    /// 1 MiB): past it a write stores what is pending first. A sandbox's
    /// tree keeps this within its memory limit, as the data is held by the
    /// process serving the tree, outside the sandbox's cgroup.
    pub fn limit_dirty(&self, bytes: u64) {
        self.max_dirty.store(bytes.clamp(1 << 20, MAX_DIRTY), std::sync::atomic::Ordering::Relaxed);
    }

    /// Lets the tree hold at most `nodes` more files, directories and links
    /// than it holds now: past that, making one fails with ENOSPC, as on a
    /// full disk. Every node stays in this process's memory (about 2 KiB
    /// with its name), which for a sandbox is outside its cgroup.
    pub fn limit_growth(&self, nodes: u64) -> VResult<()> {
        let mut st = self.lock()?;
        st.max_nodes = st.nodes.len().saturating_add(usize::try_from(nodes).unwrap_or(usize::MAX));
        Ok(())
    }

    /// The repository.
    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    fn lock(&self) -> VResult<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| VfsError::Repo(Error::Aborted))
    }

    fn writable(&self) -> VResult<()> {
        if self.read_only { Err(Errno::EROFS.into()) } else { Ok(()) }
    }

    /// Replaces the in-memory tree with stored tree `root` (after a
    /// checkout); inode numbers of unchanged paths are kept. Returns the
    /// names (parent, name) and inodes known before, for the adapter to
    /// invalidate in the kernel's caches.
    pub fn load(&self, root: &ObjectId) -> Result<Forgotten, Error> {
        let mut st = self.state.lock().map_err(|_| Error::Aborted)?;
        self.load_into(&mut st, root)
    }

    /// Stores every change, lets `change` move the tree's ref (a checkout),
    /// and loads the tree the ref then names, like [`Vfs::load`]. No flush
    /// and no edit can come in between: a flush there would point the ref
    /// back at the old tree, silently undoing the move, and an edit there
    /// would be dropped unseen by `change`'s check for uncommitted work.
    pub fn switch(&self, change: impl FnOnce(&Repository) -> Result<(), Error>) -> Result<Forgotten, Error> {
        let Some(name) = self.tree_ref.as_deref() else {
            // A revision's tree: nothing to store, nothing moves under it.
            change(&self.repo)?;
            return Ok(Forgotten::default());
        };
        let _one = self.flushing.lock().map_err(|_| Error::Aborted)?;
        self.store_files()?;
        let mut st = self.state.lock().map_err(|_| Error::Aborted)?;
        self.write_tree(&mut st)?;
        change(&self.repo)?;
        let root = self.repo.get_ref(name)?.ok_or(Error::MissingObject(ObjectId::default()))?;
        self.load_into(&mut st, &root)
    }

    fn load_into(&self, st: &mut State, root: &ObjectId) -> Result<Forgotten, Error> {
        let old_names: Vec<(Ino, Vec<u8>)> = st
            .nodes
            .iter()
            .filter_map(|(ino, n)| n.dir().map(|d| (*ino, d)))
            .flat_map(|(ino, d)| d.children.keys().map(move |name| (ino, name.clone())))
            .collect();
        let old_inodes: Vec<Ino> = st.nodes.keys().copied().collect();
        let (root_meta, recorded) = self.stored_root_meta(st)?;
        // Files open now keep what they hold: one whose path holds other
        // content in the new tree, or none, stays open under its number,
        // unnamed, and the path gets a new number. Without this, a
        // descriptor opened before a checkout read and wrote the checked
        // out file.
        let open: HashMap<Ino, load::Held> = st
            .nodes
            .iter()
            .filter(|(_, n)| n.opens > 0)
            .filter_map(|(ino, n)| match &n.body {
                // Unstored changes are in no stored tree.
                Body::File(f) => Some((*ino, (!f.dirty).then(|| (f.base.clone(), f.size)))),
                _ => None,
            })
            .collect();
        let (mut nodes, table) =
            load::Loader::new(&self.repo, &st.table, &mut st.next_ino, &open).load(root, root_meta.clone())?;
        let mut kept_dirty = 0;
        for ino in open.keys() {
            let Some(mut held) = st.nodes.remove(ino) else { continue };
            match nodes.get_mut(ino) {
                Some(same) => {
                    same.opens = held.opens;
                    same.lookups = held.lookups;
                }
                None => {
                    held.parents.clear();
                    kept_dirty += held.file_mut().map_or(0, |f| f.dirty_bytes());
                    nodes.insert(*ino, held);
                }
            }
        }
        for key in st.table.keys() {
            if !table.contains_key(key) {
                st.table_changes.insert(key.clone(), None);
            }
        }
        for (key, ino) in &table {
            if st.table.get(key) != Some(ino) {
                st.table_changes.insert(key.clone(), Some(*ino));
            }
        }
        st.table = table;
        st.nodes = nodes;
        st.dirty_bytes = kept_dirty;
        st.root = *root;
        st.generation += 1;
        st.changed = !st.table_changes.is_empty();
        st.root_meta = (root_meta, recorded);
        Ok((old_names, old_inodes))
    }

    /// The root's metadata as stored for the tree about to be loaded, and
    /// whether it is the tree's own record: the record, else the revision's
    /// (HEAD's for the working tree), else what the root has now (a tree
    /// reloaded), else a new directory's.
    fn stored_root_meta(&self, st: &State) -> Result<(Meta, bool), Error> {
        if let Some(name) = &self.tree_ref {
            if let Some(meta) = self.repo.tree_root_meta(name)? {
                return Ok((meta, true));
            }
            if let Some(meta) = self.inherited_root_meta(name) {
                return Ok((meta, false));
            }
        }
        let meta = self.revision_root_meta.clone().or_else(|| st.nodes.get(&ROOT).map(|n| n.meta.clone()));
        Ok((
            meta.unwrap_or_else(|| Meta {
                mode: 0o755,
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                mtime: now(),
                xattrs: Vec::new(),
            }),
            false,
        ))
    }

    /// What the root of the tree of ref `name` has without a record of its
    /// own: HEAD's root's for the working tree. A revision that cannot be
    /// read is reported and counts as none: the tree can still be mounted,
    /// to copy its files out.
    fn inherited_root_meta(&self, name: &str) -> Option<Meta> {
        if name != WORKTREE {
            return None;
        }
        let head = self.repo.head().ok()??;
        match self.repo.read_revision(&head) {
            Ok(rev) => Some(rev.root_meta),
            Err(e) => {
                tracing::warn!("HEAD's revision, which the root's metadata comes from: {e}");
                None
            }
        }
    }

    /// Inside `tx`, points the tree's ref `name` at `root`, with the root's
    /// metadata recorded when it differs from what the tree inherits (see
    /// `Repository::tree_root_meta`; its mtime aside, see
    /// [`crate::repo::root_differs`]), and no record otherwise: a record is
    /// then an uncommitted change, which a sync looks for. Where nothing is
    /// inherited (a named tree, a repository with no commit), a root
    /// changed once keeps its record. Returns the metadata and whether it
    /// was recorded.
    fn point_ref(
        &self,
        st: &State,
        tx: &mut dyn crate::store::Transaction,
        name: &str,
        root: &ObjectId,
    ) -> Result<(Meta, bool), Error> {
        self.repo.set_ref(tx, name, root)?;
        let meta = st.nodes.get(&ROOT).map(|n| n.meta.clone()).unwrap_or_default();
        let record = match self.inherited_root_meta(name) {
            Some(inherited) => crate::repo::root_differs(&meta, &inherited),
            None => st.root_meta.1 || meta != st.root_meta.0,
        };
        if record {
            self.repo.put_tree_root_meta(tx, name, root, &meta)?;
        } else {
            self.repo.drop_tree_root_meta(tx, name)?;
        }
        Ok((meta, record))
    }

    /// Stores every change and points the tree's ref (`WORKTREE` or
    /// `worktrees/NAME`) at the result; returns the root id. Cheap when
    /// nothing changed.
    pub fn flush(&self) -> Result<ObjectId, Error> {
        let _one = self.flushing.lock().map_err(|_| Error::Aborted)?;
        self.flush_unlocked()
    }

    /// [`Vfs::flush`] for a caller that holds `flushing`.
    fn flush_unlocked(&self) -> Result<ObjectId, Error> {
        if !self.read_only {
            self.store_files()?;
        }
        let mut st = self.state.lock().map_err(|_| Error::Aborted)?;
        self.write_tree(&mut st)
    }

    /// Stores every change and commits the tree; see [`Vfs::with_flushed`].
    pub fn commit(&self, opts: &crate::CommitOptions) -> Result<crate::CommitSummary, Error> {
        self.with_flushed(|repo| repo.commit_worktree(opts))
    }

    /// Removes the objects nothing refers to, while mounted: stores every
    /// change (what it supersedes becomes garbage), then collects
    /// ([`Repository::gc_keeping`]) keeping what the tree holds in memory.
    /// On a full disk, where the changes may not fit until gc makes room,
    /// only the names are stored first ([`Vfs::store_names`]), so that
    /// files removed on the mount are garbage; the flusher stores the
    /// rest once there is room.
    pub fn gc(&self) -> Result<crate::gc::GcSummary, Error> {
        let _one = self.flushing.lock().map_err(|_| Error::Aborted)?;
        if let Err(e) = self.flush_unlocked() {
            if !crate::error::disk_full(&e) {
                return Err(e);
            }
            tracing::warn!("collecting garbage before the pending changes are stored: {e}");
            self.store_names()?;
        }
        self.repo.gc_keeping(|| self.held())
    }

    /// Points the tree's ref at the tree as it is named now, with changed
    /// files at their last stored version: no file content is stored, only
    /// directories. The changes stay pending, for the next flush.
    fn store_names(&self) -> Result<(), Error> {
        let Some(name) = self.tree_ref.as_deref().filter(|_| !self.read_only) else { return Ok(()) };
        let mut st = self.state.lock().map_err(|_| Error::Aborted)?;
        let (root, _, mut tx) = self.write_root(&mut st, true)?;
        self.point_ref(&st, tx.as_mut(), name, &root)?;
        Ok(tx.commit()?)
    }

    /// Writes the changed directories and files (`stored_only`: see
    /// [`persist::Writer::stored_only`]) into a transaction; returns the
    /// root's id, what to install once committed, and the transaction.
    fn write_root(
        &self,
        st: &mut State,
        stored_only: bool,
    ) -> Result<(ObjectId, persist::Written, Box<dyn crate::store::Transaction + '_>), Error> {
        let ((root, written), tx, _) = self.repo.write_objects(|sink| {
            let nodes = &mut st.nodes;
            let mut w = persist::Writer {
                repo: &self.repo,
                cache: &self.cache,
                sink,
                nodes,
                written: Default::default(),
                stored_only,
            };
            persist::write_root(&mut w)
        })?;
        Ok((root, written, tx))
    }

    /// What the tree refers to besides its stored ref: the stored content
    /// of every file in memory (named, open, or still known to the kernel,
    /// which can open a file after its last name is removed, through
    /// /proc/PID/fd), and the stored directories. Without a flush first,
    /// this covers the changes not stored yet too: a changed directory has
    /// all its entries in memory.
    fn held(&self) -> Result<crate::Held, Error> {
        let st = self.state.lock().map_err(|_| Error::Aborted)?;
        let mut held = crate::Held::default();
        for node in st.nodes.values() {
            match &node.body {
                Body::File(f) => held.contents.push((f.base.clone(), f.base_len)),
                Body::Dir(d) => held.dirs.extend(d.clean),
                Body::Symlink(_) | Body::Special(_) => {}
            }
        }
        Ok(held)
    }

    /// Stores every change, then runs `f` with no flush of this tree until
    /// it returns: what `f` reads of the stored tree stays current. A
    /// commit reads the tree's ref and then points it at the same root in
    /// its own transaction; a flush in between would be undone by that,
    /// and its files dropped from what is stored.
    pub fn with_flushed<T>(&self, f: impl FnOnce(&Repository) -> Result<T, Error>) -> Result<T, Error> {
        let _one = self.flushing.lock().map_err(|_| Error::Aborted)?;
        self.flush_unlocked()?;
        f(&self.repo)
    }

    /// The locked part of a flush: writes the changed directories (and
    /// whatever file content [`Vfs::store_files`] left dirty) and moves the
    /// ref.
    fn write_tree(&self, st: &mut State) -> Result<ObjectId, Error> {
        if self.read_only || !st.changed {
            return Ok(st.root);
        }
        let (root, written, mut tx) = self.write_root(st, false)?;
        let root_meta = match &self.tree_ref {
            Some(name) => Some(self.point_ref(st, tx.as_mut(), name, &root)?),
            None => None,
        };
        // Kept until the commit succeeds, as everything else here.
        for (key, ino) in st.table_changes.iter().filter(|_| self.persist_inodes) {
            let key = [self.ns.as_slice(), key].concat();
            match ino {
                Some(ino) => tx.put(Table::Inodes, &key, &ino.to_le_bytes())?,
                None => tx.delete(Table::Inodes, &key)?,
            }
        }
        if self.persist_inodes && st.next_ino >= st.reserved {
            // Past the reservation (a million files in one session): the
            // next one, stored with the names that use these numbers.
            st.reserved = st.next_ino + INO_RESERVE;
            tx.put(Table::Meta, META_NEXT_INO, &st.reserved.to_le_bytes())?;
        }
        tx.commit()?;
        written.install(&mut st.nodes);
        st.table_changes.clear();
        st.changed = false;
        st.dirty_bytes = 0;
        st.root = root;
        if let Some(root_meta) = root_meta {
            st.root_meta = root_meta;
        }
        Ok(root)
    }

    /// Stores the content of changed files without holding the tree, so
    /// that other requests go on while their bytes are chunked, hashed and
    /// written: each is snapshotted under the lock (its blocks shared, not
    /// copied), stored outside it, and installed as the file's new stored
    /// content unless the tree was reloaded meanwhile. Blocks written since
    /// the snapshot stay dirty on top; the tree itself is written by
    /// [`Vfs::flush`], under the lock, which this leaves little to do.
    fn store_files(&self) -> Result<(), Error> {
        let (generation, snapshots) = {
            let mut st = self.state.lock().map_err(|_| Error::Aborted)?;
            if !st.changed {
                return Ok(());
            }
            // Files open but no longer named are stored too (no directory
            // refers to them; gc keeps them while they are held): what is
            // written to them is then bounded like any other file's, not
            // held in memory until they are closed.
            let snapshots: Vec<(Ino, FileData)> = st
                .nodes
                .iter_mut()
                .filter_map(|(ino, n)| match &mut n.body {
                    Body::File(f) if f.dirty => {
                        f.floor = u64::MAX;
                        Some((*ino, f.clone()))
                    }
                    _ => None,
                })
                .collect();
            (st.generation, snapshots)
        };
        if snapshots.is_empty() {
            return Ok(());
        }
        let (stored, tx, _) = self.repo.write_objects(|sink| {
            snapshots
                .into_iter()
                .map(|(ino, mut snap)| {
                    let stored = persist::store_file(&self.repo, &self.cache, sink, &mut snap)?;
                    Ok((ino, snap, stored))
                })
                .collect::<Result<Vec<_>, Error>>()
        })?;
        // Durable, though nothing refers to it until the tree commit that
        // follows: the files are marked stored below, and a store opened
        // again after an I/O error keeps only durable commits.
        tx.commit()?;
        let mut st = self.state.lock().map_err(|_| Error::Aborted)?;
        if st.generation != generation {
            // A checkout replaced the tree: what was stored is unreferenced.
            return Ok(());
        }
        let mut freed = 0;
        for (ino, snap, new) in stored {
            let Some(Body::File(f)) = st.nodes.get_mut(&ino).map(|n| &mut n.body) else { continue };
            let before = f.dirty_bytes();
            // Blocks not written since the snapshot are in `new` now.
            f.blocks.retain(|i, b| snap.blocks.get(i).is_none_or(|s| !Arc::ptr_eq(s, b)));
            f.base_size = snap.size.min(f.floor);
            f.base = new.base;
            f.base_len = snap.size;
            f.layout = new.layout;
            f.zero_runs = new.zero_runs;
            f.floor = u64::MAX;
            f.dirty = f.version != snap.version;
            freed += before - f.dirty_bytes();
        }
        st.dirty_bytes = st.dirty_bytes.saturating_sub(freed);
        Ok(())
    }

    /// Looks `name` up in `parent`, taking a kernel reference.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VResult<Attr> {
        let mut st = self.lock()?;
        let ino = st.child(parent, name)?;
        let node = st.node_mut(ino)?;
        node.lookups += 1;
        self.count_zeros(node);
        Ok(attr_of(ino, node))
    }

    /// Loads the chunk list of a large stored file not read yet, so that
    /// its `st_blocks` leaves out its stored chunks of zeros: the kernel
    /// keeps the attributes a lookup returns, and `cp` and `du` judge from
    /// them whether a file is sparse. A failure leaves the count for later.
    fn count_zeros(&self, node: &mut Node) {
        if let Body::File(f) = &mut node.body
            && f.layout.is_none()
            && f.base_len >= SPARSE_CHECK_MIN
        {
            let _ = data::ensure_layout(&self.repo, f);
        }
    }

    /// Looks `name` up in `parent` without taking a reference (NFS has no
    /// forget).
    pub fn resolve(&self, parent: Ino, name: &[u8]) -> VResult<Attr> {
        let mut st = self.lock()?;
        let ino = match name {
            b"." => parent,
            b".." => st.node(parent)?.parents.first().map_or(ROOT, |p| p.0),
            _ => st.child(parent, name)?,
        };
        let node = st.node_mut(ino)?;
        self.count_zeros(node);
        Ok(attr_of(ino, node))
    }

    /// Whether the tree is a read-only revision.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Drops `n` kernel references.
    pub fn forget(&self, ino: Ino, n: u64) {
        if let Ok(mut st) = self.lock() {
            if let Some(node) = st.nodes.get_mut(&ino) {
                node.lookups = node.lookups.saturating_sub(n);
            }
            st.maybe_drop(ino);
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> VResult<Attr> {
        let st = self.lock()?;
        Ok(attr_of(ino, st.node(ino)?))
    }

    /// `lseek` with SEEK_DATA (`data`) or SEEK_HOLE from `offset`: the
    /// first byte at or after it that is data, or that is in a hole (the
    /// end of the file counts as one). ENXIO at or past the end, or when
    /// no data follows. Holes are what is known to be zeros without
    /// reading: the unwritten part of a sparse file and stored chunks of
    /// zeros.
    pub fn seek(&self, ino: Ino, offset: u64, data: bool) -> VResult<u64> {
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        let Body::File(f) = &mut node.body else { return Err(Errno::EINVAL.into()) };
        if offset >= f.size {
            return Err(Errno::ENXIO.into());
        }
        let holes = data::holes(&self.repo, f, self.repo.zero_chunk().1)?;
        let within = holes.iter().find(|(start, end)| *start <= offset && offset < *end);
        let found = match (data, within) {
            (true, None) => offset,
            (true, Some((_, end))) => *end,
            (false, Some(_)) => offset,
            (false, None) => holes.iter().find(|(start, _)| *start > offset).map_or(f.size, |h| h.0),
        };
        if found >= f.size && data {
            return Err(Errno::ENXIO.into());
        }
        Ok(found)
    }

    /// Changes attributes.
    pub fn setattr(&self, ino: Ino, set: SetAttr) -> VResult<Attr> {
        self.setattr_where(ino, set, |_| true).map(|a| a.expect("an unconditional change applies"))
    }

    /// Changes attributes only if `ino`'s status-change time is still
    /// `ctime` (NFS's guarded SETATTR, RFC 1813 3.3.2): None, with nothing
    /// changed, when it moved.
    pub fn setattr_if(&self, ino: Ino, set: SetAttr, ctime: Timestamp) -> VResult<Option<Attr>> {
        self.setattr_where(ino, set, |node| node.ctime == ctime)
    }

    fn setattr_where(&self, ino: Ino, set: SetAttr, when: impl FnOnce(&Node) -> bool) -> VResult<Option<Attr>> {
        if set.size.is_some_and(|size| size > MAX_FILE_SIZE) {
            return Err(Errno::EFBIG.into());
        }
        self.writable()?;
        let mut st = self.lock()?;
        let t = now();
        let node = st.node_mut(ino)?;
        if !when(node) {
            return Ok(None);
        }
        if let Some(mode) = set.mode {
            node.meta.mode = mode & 0o7777;
        }
        if let Some(uid) = set.uid {
            node.meta.uid = uid;
        }
        if let Some(gid) = set.gid {
            node.meta.gid = gid;
        }
        if let Some(size) = set.size {
            let f = node.file_mut().ok_or(VfsError::Errno(Errno::EISDIR))?;
            data::truncate(f, size);
            node.meta.mtime = t;
        }
        if let Some(a) = set.atime {
            node.atime = a;
        }
        if let Some(m) = set.mtime {
            node.meta.mtime = m;
        }
        node.ctime = t;
        let attr = attr_of(ino, node);
        st.touch_parents(ino);
        Ok(Some(attr))
    }

    /// Target of a symlink.
    pub fn readlink(&self, ino: Ino) -> VResult<Vec<u8>> {
        match &self.lock()?.node(ino)?.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    fn meta(mode: u32, uid: u32, gid: u32) -> Meta {
        Meta { mode: mode & 0o7777, uid, gid, mtime: now(), xattrs: Vec::new() }
    }

    /// Creates a regular file, fifo, socket or device node (`mode` holds the
    /// type bits).
    pub fn mknod(&self, parent: Ino, name: &[u8], mode: u32, rdev: u64, uid: u32, gid: u32) -> VResult<Attr> {
        self.writable()?;
        let body = match mode & nix::libc::S_IFMT {
            nix::libc::S_IFREG | 0 => Body::File(FileData::empty()),
            nix::libc::S_IFIFO => Body::Special(EntryKind::Fifo),
            nix::libc::S_IFSOCK => Body::Special(EntryKind::Socket),
            nix::libc::S_IFCHR => Body::Special(EntryKind::CharDev {
                major: nix::sys::stat::major(rdev),
                minor: nix::sys::stat::minor(rdev),
            }),
            nix::libc::S_IFBLK => Body::Special(EntryKind::BlockDev {
                major: nix::sys::stat::major(rdev),
                minor: nix::sys::stat::minor(rdev),
            }),
            _ => return Err(Errno::EINVAL.into()),
        };
        let mut st = self.lock()?;
        Ok(st.new_node(parent, name, Self::meta(mode, uid, gid), body)?.1)
    }

    /// Creates and opens a regular file.
    pub fn create(&self, parent: Ino, name: &[u8], mode: u32, uid: u32, gid: u32) -> VResult<Attr> {
        self.writable()?;
        let mut st = self.lock()?;
        let (ino, attr) = st.new_node(parent, name, Self::meta(mode, uid, gid), Body::File(FileData::empty()))?;
        st.node_mut(ino)?.opens += 1;
        Ok(attr)
    }

    /// Creates a directory.
    pub fn mkdir(&self, parent: Ino, name: &[u8], mode: u32, uid: u32, gid: u32) -> VResult<Attr> {
        self.writable()?;
        let mut st = self.lock()?;
        let body = Body::Dir(DirData::new(None));
        Ok(st.new_node(parent, name, Self::meta(mode, uid, gid), body)?.1)
    }

    /// Creates a symbolic link.
    pub fn symlink(&self, parent: Ino, name: &[u8], target: &[u8], uid: u32, gid: u32) -> VResult<Attr> {
        self.writable()?;
        let mut st = self.lock()?;
        Ok(st.new_node(parent, name, Self::meta(0o777, uid, gid), Body::Symlink(target.to_vec()))?.1)
    }

    /// Adds a name for an existing non-directory.
    pub fn link(&self, ino: Ino, parent: Ino, name: &[u8]) -> VResult<Attr> {
        self.writable()?;
        check_name(name)?;
        let mut st = self.lock()?;
        if matches!(st.node(ino)?.body, Body::Dir(_)) {
            return Err(Errno::EPERM.into());
        }
        if st.dir(parent)?.children.contains_key(name) {
            return Err(Errno::EEXIST.into());
        }
        if st.node(ino)?.parents.len() >= MAX_LINKS {
            return Err(Errno::EMLINK.into());
        }
        st.link_name(parent, name, ino)?;
        st.touch_parents(ino);
        let node = st.node_mut(ino)?;
        node.lookups += 1;
        node.ctime = now();
        Ok(attr_of(ino, node))
    }

    /// Removes a non-directory name.
    pub fn unlink(&self, parent: Ino, name: &[u8]) -> VResult<()> {
        self.writable()?;
        let mut st = self.lock()?;
        let ino = st.child(parent, name)?;
        if matches!(st.node(ino)?.body, Body::Dir(_)) {
            return Err(Errno::EISDIR.into());
        }
        st.unlink_name(parent, name)?;
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> VResult<()> {
        self.writable()?;
        if name == b"." {
            return Err(Errno::EINVAL.into());
        }
        let mut st = self.lock()?;
        let ino = st.child(parent, name)?;
        let d = st.dir(ino)?;
        if !d.children.is_empty() {
            return Err(Errno::ENOTEMPTY.into());
        }
        st.unlink_name(parent, name)?;
        Ok(())
    }

    /// Renames `parent/name` to `new_parent/new_name`.
    pub fn rename(&self, parent: Ino, name: &[u8], new_parent: Ino, new_name: &[u8], mode: RenameMode) -> VResult<()> {
        self.writable()?;
        check_name(new_name)?;
        let mut st = self.lock()?;
        let ino = st.child(parent, name)?;
        let is_dir = matches!(st.node(ino)?.body, Body::Dir(_));
        st.dir(new_parent)?;
        if is_dir {
            // A directory cannot move below itself.
            let mut at = new_parent;
            loop {
                if at == ino {
                    return Err(Errno::EINVAL.into());
                }
                match st.node(at)?.parents.first() {
                    Some((p, _)) => at = *p,
                    None => break,
                }
            }
        }
        let existing = st.dir(new_parent)?.children.get(new_name).copied();
        if existing == Some(ino) {
            return Ok(());
        }
        match (mode, existing) {
            (RenameMode::NoReplace, Some(_)) => return Err(Errno::EEXIST.into()),
            (RenameMode::Exchange, None) => return Err(Errno::ENOENT.into()),
            (RenameMode::Exchange, Some(other)) => {
                // Hold both nodes while they are briefly without a name.
                st.node_mut(ino)?.opens += 1;
                st.node_mut(other)?.opens += 1;
                st.unlink_name(parent, name)?;
                st.unlink_name(new_parent, new_name)?;
                st.link_name(new_parent, new_name, ino)?;
                st.link_name(parent, name, other)?;
                st.node_mut(ino)?.opens -= 1;
                st.node_mut(other)?.opens -= 1;
                st.touch_links_below(ino);
                st.touch_links_below(other);
                return Ok(());
            }
            (_, Some(other)) => {
                let other_is_dir = matches!(st.node(other)?.body, Body::Dir(_));
                match (is_dir, other_is_dir) {
                    (true, false) => return Err(Errno::ENOTDIR.into()),
                    (false, true) => return Err(Errno::EISDIR.into()),
                    (true, true) if !st.dir(other)?.children.is_empty() => return Err(Errno::ENOTEMPTY.into()),
                    _ => {}
                }
                // Keep the replaced node alive while the kernel knows it.
                st.unlink_name(new_parent, new_name)?;
            }
            (_, None) => {}
        }
        // Hold a reference so the node survives the moment without a name.
        st.node_mut(ino)?.opens += 1;
        st.unlink_name(parent, name)?;
        st.link_name(new_parent, new_name, ino)?;
        st.node_mut(ino)?.opens -= 1;
        st.node_mut(ino)?.ctime = now();
        st.touch_links_below(ino);
        Ok(())
    }

    /// Opens a file (`truncate` for O_TRUNC).
    pub fn open(&self, ino: Ino, write: bool, truncate: bool) -> VResult<()> {
        if write {
            self.writable()?;
        }
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        if truncate && let Some(f) = node.file_mut() {
            data::truncate(f, 0);
            node.meta.mtime = now();
            node.ctime = node.meta.mtime;
            st.touch_parents(ino);
        }
        st.node_mut(ino)?.opens += 1;
        Ok(())
    }

    /// The stored content of regular file `ino` while it has no unstored
    /// changes, with its size: a key for caches of whole files. `None` for
    /// a changed file and for empty or inline (small) ones.
    pub fn stored_content(&self, ino: Ino) -> VResult<Option<(ObjectId, u64)>> {
        let st = self.lock()?;
        let Body::File(f) = &st.node(ino)?.body else { return Ok(None) };
        if f.dirty || !f.blocks.is_empty() || f.base_len != f.size || f.base_size != f.size {
            return Ok(None);
        }
        Ok(match &f.base {
            Content::Chunk(id) | Content::List(id) => Some((*id, f.size)),
            Content::Empty | Content::Inline(_) => None,
        })
    }

    /// Whether file `ino` looks like code: a program (an execute bit) or a
    /// shared library (a name with a `.so` part), which is run or mapped
    /// and seldom written in place.
    pub fn is_code(&self, ino: Ino) -> VResult<bool> {
        let st = self.lock()?;
        let node = st.node(ino)?;
        let library = |name: &[u8]| name.ends_with(b".so") || name.windows(4).any(|w| w == b".so.");
        Ok(node.meta.mode & 0o111 != 0 || node.parents.iter().any(|(_, name)| library(name)))
    }

    /// Closes a handle opened by [`Vfs::open`] or [`Vfs::create`]. A file
    /// closed with unstored changes is a cue for the flusher.
    pub fn release(&self, ino: Ino) {
        let mut changed = false;
        if let Ok(mut st) = self.lock() {
            if let Some(node) = st.nodes.get_mut(&ino) {
                node.opens = node.opens.saturating_sub(1);
                changed = matches!(&node.body, Body::File(f) if f.dirty);
            }
            st.maybe_drop(ino);
        }
        if changed && let Ok(mut closed) = self.closed_changes.0.lock() {
            *closed = true;
            self.closed_changes.1.notify_one();
        }
    }

    /// Waits up to `timeout` for a file to be closed with unstored changes
    /// (see [`Vfs::release`]); returns whether one was, and clears the cue.
    /// The flusher stores them soon after, rather than at its next round,
    /// so that what an application wrote and closed is not left in memory
    /// for long.
    pub fn wait_for_closed_changes(&self, timeout: std::time::Duration) -> bool {
        let Ok(closed) = self.closed_changes.0.lock() else { return false };
        let Ok((mut closed, _)) = self.closed_changes.1.wait_timeout_while(closed, timeout, |c| !*c) else {
            return false;
        };
        std::mem::take(&mut *closed)
    }

    /// Reads up to `len` bytes at `offset`.
    pub fn read(&self, ino: Ino, offset: u64, len: usize) -> VResult<bytes::Bytes> {
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        let f = match &mut node.body {
            Body::File(f) => f,
            Body::Dir(_) => return Err(Errno::EISDIR.into()),
            _ => return Err(Errno::EINVAL.into()),
        };
        let Some(plan) = data::clean_read(&self.repo, f, offset, len)? else {
            // Dirty blocks in the range: read under the lock.
            return Ok(data::read(&self.repo, &self.cache, f, offset, len)?.into());
        };
        drop(st);
        // Stored bytes: chunk reads, decryption and verification run without
        // the state lock, so requests proceed in parallel, and the chunks
        // that follow are fetched ahead for sequential readers.
        let out = self.repo.read_range(&plan.base, &plan.layout, &self.cache, offset, plan.len)?;
        self.prefetch(&plan.layout, offset + out.len() as u64);
        Ok(out)
    }

    /// Warms the chunk cache with what follows `end` (up to [`READ_AHEAD`]).
    fn prefetch(&self, layout: &Arc<crate::content::Layout>, end: u64) {
        let ids: Vec<ObjectId> =
            data::following_chunks(layout, end, READ_AHEAD).into_iter().filter(|id| !self.cache.contains(id)).collect();
        for id in ids {
            let (repo, cache) = (self.repo.clone(), self.cache.clone());
            crate::parallel::io_pool().spawn(move || {
                let _ = cache.get(&repo, &id);
            });
        }
    }

    /// Writes `data` at `offset`; returns the bytes written.
    pub fn write(&self, ino: Ino, offset: u64, bytes: &[u8]) -> VResult<usize> {
        self.writable()?;
        if offset.checked_add(bytes.len() as u64).is_none_or(|end| end > MAX_FILE_SIZE) {
            return Err(Errno::EFBIG.into());
        }
        if self.lock()?.dirty_bytes > self.max_dirty.load(std::sync::atomic::Ordering::Relaxed) {
            // Pending bytes are stored before more are taken, so that a
            // write refused for want of room (ENOSPC) has changed nothing.
            self.flush()?;
        }
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        let Body::File(f) = &mut node.body else { return Err(Errno::EISDIR.into()) };
        let before = f.dirty_bytes();
        data::write(&self.repo, &self.cache, f, offset, bytes)?;
        let grown = f.dirty_bytes() - before;
        let t = now();
        node.meta.mtime = t;
        node.ctime = t;
        // A write clears setuid/setgid, as the kernel does on other file systems.
        node.meta.mode &= !0o6000;
        st.dirty_bytes += grown;
        st.touch_parents(ino);
        Ok(bytes.len())
    }

    /// A page of directory `ino`'s entries, `.` and `..` first, after
    /// `cookie` (0: from the start), in cookie order (see [`listing`]), and
    /// whether it is the last page.
    pub fn list(&self, ino: Ino, cookie: u64) -> VResult<(Vec<listing::Listed>, bool)> {
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        let parent = node.parents.first().map_or(ROOT, |p| p.0);
        let d = node.dir_mut().ok_or(VfsError::Errno(Errno::ENOTDIR))?;
        let order = match &d.order {
            Some(order) => order.clone(),
            None => {
                let order = listing::order(d.children.keys());
                d.order = Some(order.clone());
                order
            }
        };
        let st = &*st;
        let d = st.node(ino)?.dir().ok_or(VfsError::Errno(Errno::ENOTDIR))?;
        Ok(listing::page_of(ino, parent, &order, cookie, listing::PAGE, |name| {
            let child = *d.children.get(name)?;
            Some((child, kind_of(st.nodes.get(&child)?)))
        }))
    }

    /// Sets an extended attribute.
    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], create: bool, replace: bool) -> VResult<()> {
        self.writable()?;
        // POSIX ACLs are not supported: saying so makes tools (cp -a, tar)
        // fall back to chmod instead of storing an ACL that changes nothing.
        if name.starts_with(b"system.posix_acl_") {
            return Err(Errno::EOPNOTSUPP.into());
        }
        // Only the namespaces Linux has, as ext4 answers: a name outside
        // them was stored, and a checkout to disk then failed on it.
        if ![&b"user."[..], b"trusted.", b"security.", b"system."].iter().any(|ns| name.starts_with(ns)) {
            return Err(Errno::EOPNOTSUPP.into());
        }
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        let pos = node.meta.xattrs.binary_search_by(|(k, _)| k.as_slice().cmp(name));
        let space = |xattrs: &[(Vec<u8>, Vec<u8>)]| xattrs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let replaced = pos.map_or(0, |i| name.len() + node.meta.xattrs[i].1.len());
        if space(&node.meta.xattrs) - replaced + name.len() + value.len() > XATTR_SPACE {
            return Err(Errno::ENOSPC.into());
        }
        match pos {
            Ok(_) if create => return Err(Errno::EEXIST.into()),
            Err(_) if replace => return Err(Errno::ENODATA.into()),
            Ok(i) => node.meta.xattrs[i].1 = value.to_vec(),
            Err(i) => node.meta.xattrs.insert(i, (name.to_vec(), value.to_vec())),
        }
        node.ctime = now();
        st.touch_parents(ino);
        Ok(())
    }

    /// An extended attribute's value.
    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> VResult<Vec<u8>> {
        let st = self.lock()?;
        let node = st.node(ino)?;
        node.meta
            .xattrs
            .binary_search_by(|(k, _)| k.as_slice().cmp(name))
            .map(|i| node.meta.xattrs[i].1.clone())
            .map_err(|_| VfsError::Errno(Errno::ENODATA))
    }

    /// Names of the extended attributes, NUL-terminated, concatenated.
    pub fn listxattr(&self, ino: Ino) -> VResult<Vec<u8>> {
        let st = self.lock()?;
        let mut out = Vec::new();
        for (k, _) in &st.node(ino)?.meta.xattrs {
            out.extend_from_slice(k);
            out.push(0);
        }
        Ok(out)
    }

    /// Removes an extended attribute.
    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> VResult<()> {
        self.writable()?;
        let mut st = self.lock()?;
        let node = st.node_mut(ino)?;
        let i = node
            .meta
            .xattrs
            .binary_search_by(|(k, _)| k.as_slice().cmp(name))
            .map_err(|_| VfsError::Errno(Errno::ENODATA))?;
        node.meta.xattrs.remove(i);
        node.ctime = now();
        st.touch_parents(ino);
        Ok(())
    }

    /// Number of inodes in memory (for statfs).
    pub fn inode_count(&self) -> u64 {
        self.lock().map_or(0, |st| st.nodes.len() as u64)
    }

    /// Whether the tree changed since the last flush.
    pub fn changed(&self) -> bool {
        self.lock().is_ok_and(|st| st.changed)
    }
}
