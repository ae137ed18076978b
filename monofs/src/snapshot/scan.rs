//! Phase one of a snapshot: walk a directory into an in-memory tree of
//! metadata (in parallel), then resolve hard-link groups in tree order.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::longpath::reachable;
use crate::object::{EntryKind, Meta, Timestamp};

/// Identity and change detectors of a regular file, for the stat cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub nlink: u64,
}

pub(crate) enum ScanNode {
    Dir(ScanDir),
    File { meta: Meta, path: PathBuf, stat: FileStat },
    Symlink { meta: Meta, target: Vec<u8> },
    Special { meta: Meta, kind: EntryKind },
    HardLink { target: Vec<u8> },
}

pub(crate) struct ScanDir {
    /// Absolute path (the stat cache is keyed by it).
    pub path: PathBuf,
    pub meta: Meta,
    /// Sorted by name bytes.
    pub entries: Vec<(Vec<u8>, ScanNode)>,
}

/// Totals found by the walk.
#[derive(Default, Clone, Copy)]
pub(crate) struct ScanTotals {
    pub files: u64,
    pub bytes: u64,
}

/// The metadata of the file at `path`, reached at `at` (see [`reachable`]).
fn meta_of(path: &Path, at: &Path, md: &std::fs::Metadata) -> Result<Meta> {
    let mut xattrs = Vec::new();
    match xattr::list(at) {
        Ok(names) => {
            for name in names {
                if let Some(value) = xattr::get(at, &name).map_err(|e| Error::io(path, e))? {
                    xattrs.push((name.as_bytes().to_vec(), value));
                }
            }
        }
        // File systems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    xattrs.sort();
    Ok(Meta {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: Timestamp { sec: md.mtime(), nsec: md.mtime_nsec() as u32 },
        xattrs,
    })
}

/// Walks `path` (a directory) recursively.
pub(crate) fn scan_dir(path: &Path) -> Result<ScanDir> {
    let at = reachable(path).map_err(|e| Error::io(path, e))?;
    let md = std::fs::symlink_metadata(&*at).map_err(|e| Error::io(path, e))?;
    let meta = meta_of(path, &at, &md)?;
    let mut names: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for item in std::fs::read_dir(&*at).map_err(|e| Error::io(path, e))? {
        let item = item.map_err(|e| Error::io(path, e))?;
        names.push((item.file_name().as_bytes().to_vec(), path.join(item.file_name())));
    }
    drop(at);
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let entries =
        names.into_par_iter().map(|(name, child)| Ok((name, scan_node(&child)?))).collect::<Result<Vec<_>>>()?;
    Ok(ScanDir { path: path.to_owned(), meta, entries })
}

fn scan_node(path: &Path) -> Result<ScanNode> {
    let at = reachable(path).map_err(|e| Error::io(path, e))?;
    let md = std::fs::symlink_metadata(&*at).map_err(|e| Error::io(path, e))?;
    let ft = md.file_type();
    if ft.is_dir() {
        drop(at);
        return Ok(ScanNode::Dir(scan_dir(path)?));
    }
    let meta = meta_of(path, &at, &md)?;
    let (major, minor) = (nix::sys::stat::major(md.rdev()), nix::sys::stat::minor(md.rdev()));
    Ok(if ft.is_file() {
        let stat = FileStat {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: meta.mtime,
            ctime: Timestamp { sec: md.ctime(), nsec: md.ctime_nsec() as u32 },
            nlink: md.nlink(),
        };
        ScanNode::File { meta, path: path.to_owned(), stat }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(&*at).map_err(|e| Error::io(path, e))?;
        ScanNode::Symlink { meta, target: target.as_os_str().as_bytes().to_vec() }
    } else if ft.is_fifo() {
        ScanNode::Special { meta, kind: EntryKind::Fifo }
    } else if ft.is_socket() {
        ScanNode::Special { meta, kind: EntryKind::Socket }
    } else if ft.is_char_device() {
        ScanNode::Special { meta, kind: EntryKind::CharDev { major, minor } }
    } else {
        ScanNode::Special { meta, kind: EntryKind::BlockDev { major, minor } }
    })
}

/// Turns every file that shares its inode with a file seen earlier (in
/// pre-order by sorted names) into a [`ScanNode::HardLink`] to that first
/// path, and counts what remains to be read.
pub(crate) fn resolve_hard_links(root: &mut ScanDir) -> ScanTotals {
    let mut first: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut totals = ScanTotals::default();
    walk(root, &mut Vec::new(), &mut first, &mut totals);
    totals
}

fn walk(dir: &mut ScanDir, prefix: &mut Vec<u8>, first: &mut HashMap<(u64, u64), Vec<u8>>, totals: &mut ScanTotals) {
    for (name, node) in &mut dir.entries {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(name);
        match node {
            ScanNode::Dir(sub) => walk(sub, prefix, first, totals),
            ScanNode::File { stat, .. } if stat.nlink > 1 => match first.get(&(stat.dev, stat.ino)) {
                Some(target) => *node = ScanNode::HardLink { target: target.clone() },
                None => {
                    first.insert((stat.dev, stat.ino), prefix.clone());
                    totals.files += 1;
                    totals.bytes += stat.size;
                }
            },
            ScanNode::File { stat, .. } => {
                totals.files += 1;
                totals.bytes += stat.size;
            }
            _ => {}
        }
        prefix.truncate(len);
    }
}
