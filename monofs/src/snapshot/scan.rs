//! Phase one of a snapshot: walk a directory into an in-memory tree of
//! metadata (in parallel), then resolve hard-link groups in tree order.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xattr::FileExt;

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

/// The extended attributes of an entry, sorted: `list` and `get` read them
/// (by descriptor or by a path not followed at its end).
fn xattrs_of(
    path: &Path,
    list: impl FnOnce() -> std::io::Result<xattr::XAttrs>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut xattrs = Vec::new();
    match list() {
        Ok(names) => {
            for name in names {
                if let Some(value) = get(&name).map_err(|e| Error::io(path, e))? {
                    xattrs.push((name.as_bytes().to_vec(), value));
                }
            }
        }
        // File systems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    xattrs.sort();
    Ok(xattrs)
}

fn meta_of(md: &std::fs::Metadata, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Meta {
    Meta {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: Timestamp { sec: md.mtime(), nsec: md.mtime_nsec() as u32 },
        xattrs,
    }
}

/// The error of a tree that changed under the walk in a way it must not
/// follow: a directory replaced (by a symlink, say) between its listing in
/// its parent and its opening.
fn replaced(path: &Path) -> Error {
    let why = "it was replaced while the commit read it; run the commit again";
    Error::io(path, std::io::Error::other(why))
}

/// Walks `path` (a directory) recursively.
///
/// Each directory is listed, and its entries examined, through a
/// descriptor of it (as `/proc/self/fd/N/NAME`, which no symlink on the
/// way can redirect), and each subdirectory is opened by its path, not
/// following a symlink at its end, and checked to be the directory its
/// parent listed (device and inode). A directory swapped for a symlink
/// while the commit runs thus fails the commit rather than have it store
/// what the symlink points to. Only the directories being listed are held
/// open, not every ancestor, so a tree of any depth takes few descriptors.
pub(crate) fn scan_dir(path: &Path) -> Result<ScanDir> {
    // The top is the path the user gave, followed if it is a symlink.
    let dir = reachable(path).and_then(|at| std::fs::File::open(&*at)).map_err(|e| Error::io(path, e))?;
    scan_opened(path, dir)
}

fn scan_opened(path: &Path, dir: std::fs::File) -> Result<ScanDir> {
    let md = dir.metadata().map_err(|e| Error::io(path, e))?;
    let meta = meta_of(&md, xattrs_of(path, || dir.list_xattr(), |n| dir.get_xattr(n))?);
    let here = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut names: Vec<Vec<u8>> = Vec::new();
    for item in std::fs::read_dir(&here).map_err(|e| Error::io(path, e))? {
        names.push(item.map_err(|e| Error::io(path, e))?.file_name().as_bytes().to_vec());
    }
    names.sort_unstable();
    // Every entry examined while the directory is held; subdirectories
    // walked once it is closed.
    let looked: Vec<(Vec<u8>, Looked)> = names
        .into_par_iter()
        .map(|name| {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            let looked = look(&child, &here.join(std::ffi::OsStr::from_bytes(&name)))?;
            Ok((name, looked))
        })
        .collect::<Result<_>>()?;
    drop(dir);
    let entries = looked
        .into_par_iter()
        .map(|(name, looked)| {
            let node = match looked {
                Looked::Leaf(node) => node,
                Looked::Dir { dev, ino } => {
                    let child = path.join(std::ffi::OsStr::from_bytes(&name));
                    ScanNode::Dir(scan_opened(&child, open_as_listed(&child, nix::libc::O_DIRECTORY, dev, ino)?)?)
                }
            };
            Ok((name, node))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ScanDir { path: path.to_owned(), meta, entries })
}

/// What a directory's listing found of one entry.
enum Looked {
    /// A subdirectory, to be walked: its device and inode as listed.
    Dir { dev: u64, ino: u64 },
    /// Anything else, examined.
    Leaf(ScanNode),
}

/// Opens for reading (with open(2) `flags` besides) the entry at `path`
/// that the walk found as `dev`/`ino`, not through a symlink at its end,
/// and only if it is still that one: a subdirectory its parent listed, a
/// file read after the walk.
pub(crate) fn open_as_listed(path: &Path, flags: i32, dev: u64, ino: u64) -> Result<std::fs::File> {
    let opened = reachable(path)
        .and_then(|at| std::fs::OpenOptions::new().read(true).custom_flags(flags | nix::libc::O_NOFOLLOW).open(&*at));
    let dir = match opened {
        Ok(dir) => dir,
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ELOOP | nix::libc::ENOTDIR)) => {
            return Err(replaced(path));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let md = dir.metadata().map_err(|e| Error::io(path, e))?;
    if (md.dev(), md.ino()) != (dev, ino) {
        return Err(replaced(path));
    }
    Ok(dir)
}

/// Examines the entry at `path`, reached at `at` through its directory's
/// descriptor (not followed at its end).
fn look(path: &Path, at: &Path) -> Result<Looked> {
    let md = std::fs::symlink_metadata(at).map_err(|e| Error::io(path, e))?;
    let ft = md.file_type();
    if ft.is_dir() {
        return Ok(Looked::Dir { dev: md.dev(), ino: md.ino() });
    }
    let meta = meta_of(&md, xattrs_of(path, || xattr::list(at), |n| xattr::get(at, n))?);
    let (major, minor) = (nix::sys::stat::major(md.rdev()), nix::sys::stat::minor(md.rdev()));
    Ok(Looked::Leaf(if ft.is_file() {
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
        let target = std::fs::read_link(at).map_err(|e| match e.raw_os_error() {
            // No longer a symlink.
            Some(nix::libc::EINVAL) => replaced(path),
            _ => Error::io(path, e),
        })?;
        ScanNode::Symlink { meta, target: target.as_os_str().as_bytes().to_vec() }
    } else if ft.is_fifo() {
        ScanNode::Special { meta, kind: EntryKind::Fifo }
    } else if ft.is_socket() {
        ScanNode::Special { meta, kind: EntryKind::Socket }
    } else if ft.is_char_device() {
        ScanNode::Special { meta, kind: EntryKind::CharDev { major, minor } }
    } else {
        ScanNode::Special { meta, kind: EntryKind::BlockDev { major, minor } }
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory replaced after its parent listed it, by a symlink to
    /// another one or by another directory, is not walked.
    #[test]
    fn a_directory_replaced_after_its_listing_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, elsewhere) = (dir.path().join("b"), dir.path().join("elsewhere"));
        std::fs::create_dir(&b).expect("mkdir");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        let md = std::fs::symlink_metadata(&b).expect("lstat");
        assert!(open_as_listed(&b, nix::libc::O_DIRECTORY, md.dev(), md.ino()).is_ok());
        std::fs::rename(&b, dir.path().join("b.real")).expect("rename");
        std::os::unix::fs::symlink(&elsewhere, &b).expect("symlink");
        let err = open_as_listed(&b, nix::libc::O_DIRECTORY, md.dev(), md.ino()).expect_err("followed a symlink");
        assert!(err.to_string().contains("was replaced"), "{err}");
        std::fs::remove_file(&b).expect("rm");
        std::fs::create_dir(&b).expect("another directory");
        assert!(open_as_listed(&b, nix::libc::O_DIRECTORY, md.dev(), md.ino()).is_err(), "walked another directory");
    }
}
