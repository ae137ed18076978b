//! In-memory nodes of a mounted working tree.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::content::Layout;
use crate::id::ObjectId;
use crate::object::{Content, EntryKind, Meta, Timestamp};

/// An inode number.
pub type Ino = u64;

/// Bytes per dirty-data block of a file being written.
pub const BLOCK: u64 = 64 << 10;

/// One file, directory, link or special file.
pub(crate) struct Node {
    /// The names it has: (parent directory, name). Directories have one;
    /// the root none; a hard-linked file several.
    pub parents: Vec<(Ino, Vec<u8>)>,
    pub meta: Meta,
    pub ctime: Timestamp,
    pub atime: Timestamp,
    /// References the kernel holds (lookups not yet forgotten).
    pub lookups: u64,
    /// Open file handles.
    pub opens: u64,
    pub body: Body,
}

pub(crate) enum Body {
    File(FileData),
    Dir(DirData),
    Symlink(Vec<u8>),
    /// Fifo, socket or device, as its entry kind.
    Special(EntryKind),
}

pub(crate) struct DirData {
    pub children: BTreeMap<Vec<u8>, Ino>,
    /// The stored Dir this directory equals, while it is unchanged.
    pub clean: Option<ObjectId>,
    /// Logical bytes below, as of the last load or flush.
    pub size: u64,
    /// How many children are directories (for the link count: 2 plus
    /// one per subdirectory's `..`).
    pub subdirs: u32,
    /// The names in listing order, until the next change (see
    /// [`super::listing::Order`]).
    pub order: Option<super::listing::Order>,
}

impl DirData {
    /// An empty directory; `clean`: the stored Dir it will equal once
    /// loaded.
    pub fn new(clean: Option<ObjectId>) -> DirData {
        DirData { children: BTreeMap::new(), clean, size: 0, subdirs: 0, order: None }
    }
}

/// A regular file: stored content overlaid with dirty blocks.
#[derive(Clone)]
pub(crate) struct FileData {
    pub size: u64,
    /// Last stored content, `base_len` bytes long; bytes at or past
    /// `base_size` (lowered by truncation) read as zeros.
    pub base: Content,
    pub base_len: u64,
    pub base_size: u64,
    pub layout: Option<Arc<Layout>>,
    /// Written blocks (index -> BLOCK bytes) not yet stored; shared with
    /// the snapshot a flush is storing until written again.
    pub blocks: BTreeMap<u64, Arc<Vec<u8>>>,
    /// Whether content changed since the last flush (writes or truncation).
    pub dirty: bool,
    /// Counts writes and truncations: a flush's snapshot is current while
    /// this is unchanged.
    pub version: u64,
    /// The smallest size truncated to since the last snapshot (`u64::MAX`:
    /// none), so that stored bytes past it keep reading as zeros.
    pub floor: u64,
    /// Where `layout` has stored chunks of zeros: (offset, length) runs,
    /// adjacent ones merged (none until the layout is loaded).
    pub zero_runs: Vec<(u64, u64)>,
}

impl FileData {
    pub fn stored(base: Content, size: u64) -> FileData {
        FileData {
            size,
            base,
            base_len: size,
            base_size: size,
            layout: None,
            blocks: BTreeMap::new(),
            dirty: false,
            version: 0,
            floor: u64::MAX,
            zero_runs: Vec::new(),
        }
    }

    /// Installs the stored version's layout; `zero` is the id of a chunk
    /// of zeros.
    pub fn set_layout(&mut self, layout: Arc<Layout>, zero: ObjectId) {
        self.zero_runs.clear();
        for &(offset, _, len) in layout.iter().filter(|(_, id, _)| *id == zero) {
            match self.zero_runs.last_mut() {
                Some((start, run)) if *start + *run == offset => *run += len,
                _ => self.zero_runs.push((offset, len)),
            }
        }
        self.layout = Some(layout);
    }

    /// Bytes that hold data, for `st_blocks`: the size less the holes known
    /// without reading (stored chunks of zeros below the stored bytes still
    /// in use, and the unwritten bytes past them), so that `du` and `cp`
    /// see a sparse file as one. Never less than the data: blocks written
    /// over stored bytes count whole, as they may lie on stored zeros
    /// (`tar --sparse` takes 0 blocks for a file of nothing but zeros).
    pub fn allocated(&self) -> u64 {
        let stored_zeros: u64 =
            self.zero_runs.iter().map(|&(offset, len)| self.base_size.saturating_sub(offset).min(len)).sum();
        let tail = self.size.saturating_sub(self.base_size);
        let written_tail = self.blocks.range(self.base_size / BLOCK..).count() as u64 * BLOCK;
        let written_over = self.blocks.range(..self.base_size.div_ceil(BLOCK)).count() as u64 * BLOCK;
        let holes = stored_zeros + tail.saturating_sub(written_tail);
        (self.size.saturating_sub(holes) + written_over).min(self.size)
    }

    pub fn empty() -> FileData {
        FileData::stored(Content::Empty, 0)
    }

    /// Bytes held in dirty blocks.
    pub fn dirty_bytes(&self) -> u64 {
        self.blocks.len() as u64 * BLOCK
    }
}

impl Node {
    pub fn new(parent: Option<(Ino, Vec<u8>)>, meta: Meta, body: Body) -> Node {
        let now = meta.mtime;
        Node { parents: parent.into_iter().collect(), meta, ctime: now, atime: now, lookups: 0, opens: 0, body }
    }

    pub fn dir(&self) -> Option<&DirData> {
        match &self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub fn dir_mut(&mut self) -> Option<&mut DirData> {
        match &mut self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub fn file_mut(&mut self) -> Option<&mut FileData> {
        match &mut self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    pub fn size(&self) -> u64 {
        match &self.body {
            Body::File(f) => f.size,
            Body::Symlink(t) => t.len() as u64,
            Body::Dir(d) => 4096.max(d.children.len() as u64 * 32),
            Body::Special(_) => 0,
        }
    }
}
