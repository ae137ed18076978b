//! `checkout REV --to DIR`: materialise a tree byte for byte with its
//! metadata (owner when root, mode, mtime, symlinks, hard links, devices,
//! fifos, xattrs).
//!
//! Order matters: content first (files in parallel), then hard links (their
//! primaries exist by then), then directory metadata deepest first, since
//! creating entries changes a directory's mtime and a read-only mode would
//! forbid creating them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use rayon::prelude::*;

use crate::content::Piece;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::longpath::{Reachable, reachable};
use crate::object::{Entry, EntryKind, Meta};
use crate::progress::Progress;
use crate::repo::Repository;

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Regular files written (hard links counted once).
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries that could not be recreated without privileges (devices as
    /// non-root), skipped with a warning.
    pub skipped: u64,
    /// Extended attributes the target refused (its file system's limits,
    /// a namespace that needs privileges), and what the first refusal said.
    pub xattrs_lost: u64,
    /// The first refused attribute: path, name and error.
    pub first_xattr_lost: Option<String>,
}

impl RestoreSummary {
    /// Says how many extended attributes the target refused, and the
    /// first, when it refused any: a restore that lost some is a failure
    /// for the command that made it, after everything else was written.
    pub fn xattrs_refused(&self) -> Option<String> {
        let first = self.first_xattr_lost.as_ref()?;
        Some(format!("{} extended attributes could not be written there (the first: {first})", self.xattrs_lost))
    }
}

struct Ctx<'a> {
    repo: &'a Repository,
    root: PathBuf,
    as_root: bool,
    progress: &'a dyn Progress,
    links: Mutex<Vec<(PathBuf, PathBuf)>>,
    dirs: Mutex<Vec<(PathBuf, Meta)>>,
    files: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    lost: Lost,
}

/// Extended attributes not written: how many, and the first refusal.
#[derive(Default)]
struct Lost(Mutex<(u64, Option<String>)>);

impl Lost {
    fn add(&self, path: &Path, name: &[u8], e: &std::io::Error) {
        let what = format!("{}: {}: {e}", path.display(), String::from_utf8_lossy(name));
        tracing::warn!("xattr not restored: {what}");
        if let Ok(mut lost) = self.0.lock() {
            lost.0 += 1;
            lost.1.get_or_insert(what);
        }
    }

    fn into_summary(self, summary: &mut RestoreSummary) {
        let (n, first) = self.0.into_inner().unwrap_or_default();
        summary.xattrs_lost += n;
        if summary.first_xattr_lost.is_none() {
            summary.first_xattr_lost = first;
        }
    }
}

impl Repository {
    /// Writes revision `rev` into `target` (see [`Repository::restore`]) and
    /// gives `target` itself the metadata of the revision's root.
    pub fn restore_revision(
        &self,
        rev: &ObjectId,
        target: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<RestoreSummary> {
        let rev = self.read_revision(rev)?;
        let mut summary = self.restore(&rev.root, target, force, progress)?;
        let lost = Lost::default();
        apply_meta(target, &rev.root_meta, false, nix::unistd::geteuid().is_root(), &lost)?;
        lost.into_summary(&mut summary);
        Ok(summary)
    }

    /// Writes the tree of directory object `root` into `target`, which must
    /// be missing or empty unless `force` (then existing files are
    /// replaced and unrelated ones left alone).
    pub fn restore(
        &self,
        root: &ObjectId,
        target: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<RestoreSummary> {
        if target.exists() {
            let md = std::fs::metadata(target).map_err(|e| Error::io(target, e))?;
            if !md.is_dir() {
                return Err(Error::io(target, std::io::Error::from(std::io::ErrorKind::NotADirectory)));
            }
            let mut listing = std::fs::read_dir(target).map_err(|e| Error::io(target, e))?;
            if !force && listing.next().is_some() {
                return Err(Error::NotEmpty(target.to_owned()));
            }
        } else {
            std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
        }
        let dir = self.read_dir(root)?;
        progress.start(0, dir.size);
        let ctx = Ctx {
            repo: self,
            root: target.to_owned(),
            as_root: nix::unistd::geteuid().is_root(),
            progress,
            links: Mutex::new(Vec::new()),
            dirs: Mutex::new(Vec::new()),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            lost: Lost::default(),
        };
        crate::parallel::io_pool().install(|| restore_entries(&ctx, &dir.entries, target))?;
        for (link, primary) in ctx.links.into_inner().map_err(|_| Error::Aborted)? {
            check_no_symlink_dirs(target, &primary)?;
            replace_existing(&link)?;
            let (from, to) = (reach(&primary)?, reach(&link)?);
            std::fs::hard_link(&*from, &*to).map_err(|e| Error::io(&link, e))?;
        }
        let mut dirs = ctx.dirs.into_inner().map_err(|_| Error::Aborted)?;
        // Deepest first: a path sorts after its ancestors.
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, meta) in &dirs {
            apply_meta(path, meta, false, ctx.as_root, &ctx.lost)?;
        }
        let mut summary = RestoreSummary {
            files: ctx.files.into_inner(),
            bytes: ctx.bytes.into_inner(),
            skipped: ctx.skipped.into_inner(),
            ..Default::default()
        };
        ctx.lost.into_summary(&mut summary);
        Ok(summary)
    }
}

fn restore_entries(ctx: &Ctx<'_>, entries: &[Entry], dir: &Path) -> Result<()> {
    entries.par_iter().try_for_each(|e| restore_entry(ctx, e, &dir.join(OsStr::from_bytes(&e.name))))
}

fn restore_entry(ctx: &Ctx<'_>, e: &Entry, path: &Path) -> Result<()> {
    match &e.kind {
        EntryKind::Dir { id } => {
            // An existing symlink must not be followed out of the target.
            let is_real_dir = std::fs::symlink_metadata(&*reach(path)?).is_ok_and(|m| m.is_dir());
            if !is_real_dir {
                replace_existing(path)?;
                std::fs::create_dir(&*reach(path)?).map_err(|err| Error::io(path, err))?;
            }
            let sub = ctx.repo.read_dir(id)?;
            restore_entries(ctx, &sub.entries, path)?;
            ctx.dirs.lock().map_err(|_| Error::Aborted)?.push((path.to_owned(), e.meta.clone()));
            return Ok(());
        }
        EntryKind::File { content, size } => {
            replace_existing(path)?;
            let reached = reach(path)?;
            let file = std::fs::File::create(&*reached).map_err(|err| Error::io(path, err))?;
            let mut at = 0u64;
            let written = ctx.repo.read_content(content, *size, &mut |piece| {
                // Zeros are left as holes, as `cp --sparse=auto` does: a
                // sparse disk image comes back sparse.
                if let Piece::Data(bytes) = piece
                    && !bytes.iter().all(|b| *b == 0)
                {
                    file.write_all_at(bytes, at).map_err(|err| Error::io(path, err))?;
                }
                at += piece.len();
                ctx.bytes.fetch_add(piece.len(), Ordering::Relaxed);
                ctx.progress.bytes(piece.len());
                Ok(())
            });
            if let Err(e) = written.and_then(|()| file.set_len(*size).map_err(|err| Error::io(path, err))) {
                // A damaged object or a full disk: no file rather than a
                // truncated one that passes for the file.
                let _ = std::fs::remove_file(&*reached);
                return Err(e);
            }
            ctx.files.fetch_add(1, Ordering::Relaxed);
            ctx.progress.file();
        }
        EntryKind::Symlink { target } => {
            replace_existing(path)?;
            std::os::unix::fs::symlink(OsStr::from_bytes(target), &*reach(path)?)
                .map_err(|err| Error::io(path, err))?;
        }
        EntryKind::HardLink { target } => {
            let primary = tree_path(&ctx.root, target)?;
            ctx.links.lock().map_err(|_| Error::Aborted)?.push((path.to_owned(), primary));
            return Ok(());
        }
        EntryKind::Fifo | EntryKind::Socket | EntryKind::CharDev { .. } | EntryKind::BlockDev { .. } => {
            let (kind, dev) = match &e.kind {
                EntryKind::Fifo => (SFlag::S_IFIFO, 0),
                EntryKind::Socket => (SFlag::S_IFSOCK, 0),
                EntryKind::CharDev { major, minor } => (SFlag::S_IFCHR, nix::sys::stat::makedev(*major, *minor)),
                EntryKind::BlockDev { major, minor } => (SFlag::S_IFBLK, nix::sys::stat::makedev(*major, *minor)),
                _ => unreachable!("matched above"),
            };
            if dev != 0 && !ctx.as_root {
                tracing::warn!("{}: device node not created (needs root)", path.display());
                ctx.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            replace_existing(path)?;
            nix::sys::stat::mknod(&*reach(path)?, kind, Mode::from_bits_truncate(0o600), dev)
                .map_err(|err| Error::io(path, err.into()))?;
        }
    }
    apply_meta(path, &e.meta, matches!(e.kind, EntryKind::Symlink { .. }), ctx.as_root, &ctx.lost)
}

/// Resolves a root-relative hard-link target, refusing anything that could
/// leave the restore directory.
fn tree_path(root: &Path, target: &[u8]) -> Result<PathBuf> {
    let mut out = root.to_owned();
    for part in target.split(|&b| b == b'/') {
        if !crate::object::valid_name(part) {
            return Err(Error::InvalidTreePath(String::from_utf8_lossy(target).into_owned()));
        }
        out.push(OsStr::from_bytes(part));
    }
    Ok(out)
}

/// link(2) follows symlinks in the middle of a path, so a hostile tree
/// holding a symlink `d -> /etc` and a hard link to `d/shadow` could pull an
/// outside file into the restore. Every directory between the restore root
/// and the primary must be a real directory.
fn check_no_symlink_dirs(root: &Path, primary: &Path) -> Result<()> {
    let rel = primary.strip_prefix(root).map_err(|_| Error::InvalidTreePath(primary.display().to_string()))?;
    let mut at = root.to_owned();
    let parts: Vec<_> = rel.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        if !std::fs::symlink_metadata(&*reach(&at)?).is_ok_and(|m| m.is_dir()) {
            return Err(Error::InvalidTreePath(format!("hard link through non-directory {}", at.display())));
        }
    }
    Ok(())
}

/// `path`, reachable however long it is (see [`reachable`]).
fn reach(path: &Path) -> Result<Reachable> {
    reachable(path).map_err(|e| Error::io(path, e))
}

fn replace_existing(path: &Path) -> Result<()> {
    let at = reach(path)?;
    match std::fs::symlink_metadata(&*at) {
        Ok(md) if md.is_dir() => Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::IsADirectory))),
        Ok(_) => std::fs::remove_file(&*at).map_err(|e| Error::io(path, e)),
        Err(_) => Ok(()),
    }
}

fn apply_meta(path: &Path, meta: &Meta, is_symlink: bool, as_root: bool, lost: &Lost) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let reached = reach(path)?;
    let at: &Path = &reached;
    if as_root {
        std::os::unix::fs::lchown(at, Some(meta.uid), Some(meta.gid)).map_err(io)?;
    }
    // A directory that was there (the target, or one under --force) keeps
    // no user attribute the tree does not have. Other namespaces are the
    // system's (an SELinux label the policy gave it).
    for name in xattr::list(at).into_iter().flatten() {
        let stale = name.as_bytes().starts_with(b"user.") && !meta.xattrs.iter().any(|(k, _)| k == name.as_bytes());
        if stale {
            xattr::remove(at, &name).map_err(io)?;
        }
    }
    for (name, value) in &meta.xattrs {
        if let Err(e) = xattr::set(at, OsStr::from_bytes(name), value) {
            // A target that holds fewer or smaller attributes should not
            // stop the rest of the restore: counted and reported at its
            // end. Namespaces other than user.* need privileges (an
            // SELinux label on every file of a tree committed there): as
            // a user, their refusal is expected and only logged.
            if as_root || name.starts_with(b"user.") {
                lost.add(path, name, &e);
            } else {
                tracing::info!(
                    "{}: xattr {} not restored (not root): {e}",
                    path.display(),
                    String::from_utf8_lossy(name)
                );
            }
        }
    }
    if !is_symlink {
        // After chown, which clears setuid/setgid.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            at,
            Mode::from_bits_truncate(meta.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| io(e.into()))?;
    }
    let mtime = TimeSpec::new(meta.mtime.sec, i64::from(meta.mtime.nsec));
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, at, &TimeSpec::UTIME_OMIT, &mtime, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io(e.into()))
}
