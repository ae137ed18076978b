//! `commit --from DIR`: snapshot a plain directory as a revision.
//!
//! Phase one walks the directory into memory (metadata only, in parallel)
//! and resolves hard-link groups; phase two builds the tree bottom-up on all
//! cores, reading only files the stat cache cannot vouch for, while the
//! calling thread writes the sealed objects into one transaction. The
//! revision, refs and stat records land in that same transaction, so a
//! crash at any moment leaves the previous state intact.

mod sample;
mod scan;
mod sparse;
mod statcache;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::content::Chunker;
use crate::crypto::Codec;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Content, Dir, Entry, EntryKind, Kind, Meta, Timestamp};
use crate::progress::Progress;
use crate::repo::{ObjectSink, Repository};
use crate::store::{Store, Table};
use crate::{CommitOptions, CommitSummary};
use scan::{ScanDir, ScanNode};
pub(crate) use statcache::refers_to_live as record_refers_to;

struct Ctx<'a> {
    repo: &'a Repository,
    sink: &'a ObjectSink<'a>,
    chunker: Chunker,
    codec: &'a Codec,
    store: &'a dyn Store,
    progress: &'a dyn Progress,
    started: Timestamp,
    cache_updates: Mutex<Vec<([u8; 32], Vec<u8>)>>,
    reused: AtomicU64,
}

impl Repository {
    /// Snapshots directory `dir` as a new revision whose parent is HEAD; the
    /// working tree then equals it. Uncommitted changes of the working tree
    /// make it fail, unless `opts.discard_changes`.
    pub fn commit_dir(&self, dir: &Path, opts: &CommitOptions, progress: &dyn Progress) -> Result<CommitSummary> {
        if !opts.discard_changes && self.worktree_dirty()? {
            return Err(Error::DirtyWorkingTree);
        }
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let md = std::fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        if !md.is_dir() {
            return Err(Error::io(&dir, std::io::Error::from(std::io::ErrorKind::NotADirectory)));
        }
        let started = Timestamp::now();
        let clock = std::time::Instant::now();
        let pool = crate::parallel::io_pool();
        let mut tree = pool.install(|| scan::scan_dir(&dir))?;
        let totals = scan::resolve_hard_links(&mut tree);
        tracing::debug!(files = totals.files, bytes = totals.bytes, elapsed = ?clock.elapsed(), "scanned");
        if self.wants_dictionary() {
            let samples = pool.install(|| sample::read(&tree));
            self.train_dictionary(&samples)?;
            tracing::debug!(samples = samples.len(), elapsed = ?clock.elapsed(), "dictionary step");
        }
        progress.start(totals.files, totals.bytes);
        let chunker = Chunker::for_repo(self);
        let ((root, size, updates, reused), mut tx, stats) = self.write_objects(|sink| {
            let ctx = Ctx {
                repo: self,
                sink,
                chunker,
                codec: self.codec(),
                store: self.store(),
                progress,
                started,
                cache_updates: Mutex::new(Vec::new()),
                reused: AtomicU64::new(0),
            };
            let (root, size) = pool.install(|| build_dir(&ctx, &tree))?;
            let updates = ctx.cache_updates.into_inner().map_err(|_| Error::Aborted)?;
            Ok((root, size, updates, ctx.reused.into_inner()))
        })?;
        tracing::debug!(new_objects = stats.new_objects, reused, elapsed = ?clock.elapsed(), "tree built");
        for (key, record) in &updates {
            tx.put(Table::StatCache, key, record)?;
        }
        let revision = self.record_commit(tx.as_mut(), root, size, tree.meta.clone(), opts)?;
        tx.commit()?;
        tracing::debug!(elapsed = ?clock.elapsed(), "committed");
        Ok(CommitSummary {
            revision,
            root,
            size,
            files: totals.files,
            reused_files: reused,
            new_objects: stats.new_objects + 1,
            new_bytes: stats.new_bytes,
        })
    }
}

fn build_dir(ctx: &Ctx<'_>, dir: &ScanDir) -> Result<(ObjectId, u64)> {
    let key = statcache::key(ctx.codec, &dir.path);
    let old = statcache::load(ctx.store, ctx.codec, &key);
    let reuse = old.as_ref().map(|rec| statcache::reusable(ctx.repo, rec, dir)).unwrap_or_default();
    let built: Vec<Built> = dir
        .entries
        .par_iter()
        .map(|(name, node)| build_entry(ctx, name, node, reuse.get(name)))
        .collect::<Result<_>>()?;
    let size = built.iter().map(|b| b.size).sum();
    let mut files = Vec::new();
    let mut entries = Vec::with_capacity(built.len());
    for b in built {
        if let Some(identity) = b.cache {
            files.push((b.entry.name.clone(), identity));
        }
        entries.push(b.entry);
    }
    let d = Dir { entries, size };
    let id = ctx.sink.put(Kind::Dir, &d.encode())?;
    let record = statcache::DirRecord { dir: id, files };
    if old.as_ref() != Some(&record) {
        let sealed = statcache::seal(ctx.codec, &key, &record);
        ctx.cache_updates.lock().map_err(|_| Error::Aborted)?.push((key, sealed));
    }
    Ok((id, size))
}

/// Opens the file at `path` for reading, however long the path, if it is
/// still the file the walk found there (`stat`): not a symlink, not
/// another file reached through a directory replaced since.
fn open(path: &Path, stat: &scan::FileStat) -> Result<std::fs::File> {
    scan::open_as_listed(path, 0, stat.dev, stat.ino)
}

/// One entry of a directory being built.
struct Built {
    entry: Entry,
    /// Logical bytes below it.
    size: u64,
    /// For a regular file the stat cache may vouch for next time.
    cache: Option<statcache::Identity>,
}

fn build_entry(ctx: &Ctx<'_>, name: &[u8], node: &ScanNode, cached: Option<&Content>) -> Result<Built> {
    let entry = |kind, meta: &Meta| Entry { name: name.to_vec(), kind, meta: meta.clone() };
    let plain = |entry, size| Built { entry, size, cache: None };
    Ok(match node {
        ScanNode::Dir(sub) => {
            let (id, size) = build_dir(ctx, sub)?;
            plain(entry(EntryKind::Dir { id }, &sub.meta), size)
        }
        ScanNode::File { meta, path, stat } => {
            let (content, size) = match cached {
                Some(content) => {
                    ctx.reused.fetch_add(1, Ordering::Relaxed);
                    ctx.progress.bytes(stat.size);
                    (content.clone(), stat.size)
                }
                None => {
                    let file = open(path, stat)?;
                    match sparse::SparseFile::of(file) {
                        Ok(mut sparse) => {
                            let (content, size, _) =
                                ctx.chunker.store_edit(ctx.sink, &mut sparse, Default::default(), path)?;
                            if size > crate::content::INLINE_MAX as u64 {
                                ctx.progress.bytes(size);
                                (content, size)
                            } else {
                                // It shrank while read: stored as any small file is.
                                let mut file = open(path, stat)?;
                                ctx.chunker.store(ctx.sink, &mut file, path, |n| ctx.progress.bytes(n))?
                            }
                        }
                        Err(mut file) => ctx.chunker.store(ctx.sink, &mut file, path, |n| ctx.progress.bytes(n))?,
                    }
                }
            };
            ctx.progress.file();
            // A file that changed while it was read must be read again next time.
            let cache = if size == stat.size { statcache::cacheable(stat, ctx.started) } else { None };
            Built { entry: entry(EntryKind::File { size, content }, meta), size, cache }
        }
        ScanNode::Symlink { meta, target } => plain(entry(EntryKind::Symlink { target: target.clone() }, meta), 0),
        ScanNode::Special { meta, kind } => plain(entry(kind.clone(), meta), 0),
        ScanNode::HardLink { target } => plain(
            Entry { name: name.to_vec(), kind: EntryKind::HardLink { target: target.clone() }, meta: Meta::default() },
            0,
        ),
    })
}
