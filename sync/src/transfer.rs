//! The transfers: clone (copy everything) and backup sync (send what the
//! other side lacks, then fast-forward its refs).
//!
//! Ordering keeps one invariant on every receiver: when it has a directory,
//! chunk list or revision, it has everything below it. Chunks are stored
//! first, in batches that each commit (what arrived survives a kill);
//! metadata last, in one transaction; refs only after that. A walk can then
//! stop at the first object the receiver has.
//!
//! A clone from a source that keeps packs copies whole packs instead of
//! objects ([`copy_packs`]), in the same order: data, then metadata, then
//! refs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use monofs::ObjectId;
use monofs::crypto::Codec;
use monofs::object::{Dir, Kind, Revision, links};
use monofs::repo::{HEAD, RawRepository, RepoMeta, STORE_FILE, WORKTREE, WORKTREES_PREFIX};
use monofs::store::PackListing;
use serde::Serialize;

use crate::endpoint::{Endpoint, Identity, LOCK_WAIT, Local, RefChange, RefState, Update};
use crate::error::{Result, SyncError};
use crate::flusher::Flusher;
use crate::wire::WireObject;

/// Ids per presence query.
const HAS_BATCH: usize = 16384;
/// Metadata objects per read during a walk.
const META_BATCH: usize = 2048;
/// Stored bytes per committed batch of file data (each commit syncs the
/// receiver's disk, so batches are not small).
pub(crate) const BATCH_BYTES: u64 = 32 << 20;
/// Objects per committed batch of file data.
const BATCH_OBJECTS: usize = 8192;
/// Assumed size of a chunk whose size is not known yet (see
/// [`chunk_guess`]).
const CHUNK_GUESS: u64 = 64 << 10;

/// The size to assume for a chunk of unknown size when cutting batches: at
/// least a quarter of the repository's largest chunk, so that a batch of
/// them holds at most 4 x [`BATCH_BYTES`] (the answer's limit in
/// `http.rs` counts on it) whatever the chunker's settings. The default
/// chunker's largest is 256 KiB: [`CHUNK_GUESS`].
fn chunk_guess(meta: &RepoMeta) -> u64 {
    let max = monofs::repo::Config::decode(&meta.config).map_or(0, |c| u64::from(c.chunker.max));
    CHUNK_GUESS.max(max / 4)
}

/// A clone commits the packs received so far once they reach this many
/// bytes (bounding memory), without waiting for the disk ...
const PACK_BATCH_BYTES: u64 = 16 << 20;
/// ... and durably once this much time has passed since the last durable
/// commit, so a killed clone loses about this much of its transfer.
const PACK_BATCH_TIME: Duration = Duration::from_secs(1);
/// Packs received and not yet stored (about 1 MiB each).
const PACK_QUEUE: usize = 32;

/// Receives progress of a transfer. Every method has a no-op default.
pub trait Progress: Sync {
    /// What is being done now ("listing", "walking", "copying").
    fn phase(&self, _name: &str) {}
    /// The objects and stored bytes to copy are known.
    fn start(&self, _objects: u64, _bytes: u64) {}
    /// Some more were stored on the receiver.
    fn advance(&self, _objects: u64, _bytes: u64) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// How the objects to send were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Walked the DAG from the new revisions, skipping what the receiver has.
    Walk,
    /// Compared the sets of object ids (no key to read the DAG, or a clone
    /// from a source that cannot send whole packs).
    IdSet,
    /// A clone that copied whole packs (those holding objects the
    /// receiver lacks).
    Packs,
    /// A clone into an empty directory that copied the source's store
    /// file whole, then verified it.
    File,
}

/// Which way a sync goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// A whole repository into a new one.
    Clone,
    /// Local to remote.
    Push,
    /// Remote to local.
    Pull,
}

/// What a transfer did.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Clone, push or pull.
    pub direction: Direction,
    /// How missing objects were found.
    pub mode: Mode,
    /// Objects copied.
    pub objects_sent: u64,
    /// Their stored bytes (for a pack clone: the packs' bytes, including
    /// any garbage gc left between objects; for a file clone: the bytes of
    /// the store file copied in this run).
    pub bytes_sent: u64,
    /// A file clone that resumed an interrupted one: the bytes of its copy
    /// that were kept (whole pieces the source's file still has).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<u64>,
    /// Refs created or moved on the receiver.
    pub refs_updated: Vec<String>,
    /// Revisions newly indexed on the receiver.
    pub revisions_added: u64,
    /// Set when the receiver's working tree had changes of its own (or
    /// could not be checked without the key) and was left where it was.
    pub worktree_kept: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

#[derive(Default)]
struct Counters {
    objects: u64,
    bytes: u64,
}

impl Summary {
    /// The summary of an object-by-object or pack transfer that sent `c`
    /// and applied `update`, begun at `start`.
    fn of(
        direction: Direction,
        mode: Mode,
        c: &Counters,
        update: &Update,
        worktree_kept: bool,
        start: Instant,
    ) -> Self {
        Summary {
            direction,
            mode,
            objects_sent: c.objects,
            bytes_sent: c.bytes,
            resumed_at: None,
            refs_updated: update.refs.iter().filter(|r| r.old != Some(r.new)).map(|r| r.name.clone()).collect(),
            revisions_added: update.revisions.len() as u64,
            worktree_kept,
            duration_ms: start.elapsed().as_millis() as u64,
        }
    }
}

/// Asks `dst` which of `ids` it has, in batches.
fn has_batched(dst: &dyn Endpoint, ids: &[ObjectId]) -> Result<Vec<bool>> {
    let mut out = Vec::with_capacity(ids.len());
    for batch in ids.chunks(HAS_BATCH) {
        out.extend(dst.has(batch)?);
    }
    Ok(out)
}

/// The side objects are sent to, and the gc epoch its puts are checked
/// against (see [`Endpoint::put`]; `None`: a clone, which holds its
/// repository throughout).
#[derive(Clone, Copy)]
struct Receiver<'a> {
    to: &'a dyn Endpoint,
    gc_epoch: Option<u64>,
}

impl Receiver<'_> {
    fn put(&self, objects: &[WireObject]) -> Result<()> {
        self.to.put(objects, self.gc_epoch)
    }
}

/// Copies `items` (ids with their stored length, when known) from `src` to
/// `dst`: file data in committed batches while the next batch is fetched,
/// metadata buffered and returned for the caller to store last.
fn copy(
    src: &dyn Endpoint,
    dst: Receiver<'_>,
    items: &[(ObjectId, Option<u64>)],
    guess: u64,
    progress: &dyn Progress,
    counters: &mut Counters,
) -> Result<Vec<WireObject>> {
    let mut batches: Vec<Vec<ObjectId>> = Vec::new();
    let (mut cur, mut cur_bytes) = (Vec::new(), 0u64);
    for (id, len) in items {
        cur.push(*id);
        cur_bytes += len.unwrap_or(guess);
        if cur_bytes >= BATCH_BYTES || cur.len() >= BATCH_OBJECTS {
            batches.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    let mut metadata = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let (send, recv) = std::sync::mpsc::sync_channel::<Result<Vec<WireObject>>>(2);
        let batches = &batches;
        s.spawn(move || {
            for b in batches {
                let got = src.get(b);
                let failed = got.is_err();
                if send.send(got).is_err() || failed {
                    return;
                }
            }
        });
        for got in recv {
            let objects = got?;
            let (meta, data): (Vec<WireObject>, Vec<WireObject>) = objects.into_iter().partition(|o| o.metadata);
            if !data.is_empty() {
                dst.put(&data)?;
                let bytes: u64 = data.iter().map(|o| o.bytes.len() as u64).sum();
                counters.objects += data.len() as u64;
                counters.bytes += bytes;
                progress.advance(data.len() as u64, bytes);
            }
            metadata.extend(meta);
        }
        Ok(())
    })?;
    Ok(metadata)
}

/// Stores buffered metadata on `dst` in one transaction.
fn put_metadata(dst: Receiver<'_>, meta: &[WireObject], progress: &dyn Progress, c: &mut Counters) -> Result<()> {
    if meta.is_empty() {
        return Ok(());
    }
    dst.put(meta)?;
    let bytes: u64 = meta.iter().map(|o| o.bytes.len() as u64).sum();
    c.objects += meta.len() as u64;
    c.bytes += bytes;
    progress.advance(meta.len() as u64, bytes);
    Ok(())
}

/// Sends every object of `src` that `dst` lacks, found by comparing ids.
fn copy_id_set(src: &dyn Endpoint, dst: Receiver<'_>, progress: &dyn Progress, c: &mut Counters) -> Result<()> {
    progress.phase("listing");
    let listing = src.list()?;
    // One listing of the receiver costs about what presence queries for
    // every id would (40 bytes against 32 per object), in one round trip.
    let present: HashSet<ObjectId> = dst.to.list()?.into_iter().map(|(id, _)| id).collect();
    let missing: Vec<(ObjectId, Option<u64>)> =
        listing.iter().filter(|(id, _)| !present.contains(id)).map(|(id, len)| (*id, Some(*len))).collect();
    progress.start(missing.len() as u64, missing.iter().map(|(_, l)| l.unwrap_or(0)).sum());
    progress.phase("copying");
    let meta = copy(src, dst, &missing, CHUNK_GUESS, progress, c)?;
    put_metadata(dst, &meta, progress, c)
}

/// Copies whole packs from `src` into the local `dst`, skipping packs whose
/// live objects `dst` has already (a resumed clone). Data packs are
/// committed every 16 MiB while the next packs stream in, durably once a
/// second (the commits in between are relaxed, and a helper thread flushes
/// the store file meanwhile); metadata packs come last, in one durable
/// transaction, so a receiver never has a directory without what is below
/// it.
fn copy_packs(
    src: &dyn Endpoint,
    dst: &Local,
    listing: Vec<PackListing>,
    progress: &dyn Progress,
    c: &mut Counters,
) -> Result<()> {
    let present: HashSet<ObjectId> = dst.list()?.into_iter().map(|(id, _)| id).collect();
    let mut wanted: Vec<PackListing> = listing
        .into_iter()
        .filter_map(|mut p| {
            p.objects.retain(|e| ObjectId::from_slice(&e.key).is_some_and(|id| !present.contains(&id)));
            (!p.objects.is_empty()).then_some(p)
        })
        .collect();
    wanted.sort_by_key(|p| p.metadata);
    let live = |p: &PackListing| p.objects.iter().map(|e| u64::from(e.len)).sum::<u64>();
    progress.start(wanted.iter().map(|p| p.objects.len() as u64).sum(), wanted.iter().map(live).sum());
    progress.phase("copying");
    let ids: Vec<u64> = wanted.iter().map(|p| p.id).collect();
    let mut by_id: HashMap<u64, &PackListing> = wanted.iter().map(|p| (p.id, p)).collect();
    std::thread::scope(|s| -> Result<()> {
        let (send, recv) = std::sync::mpsc::sync_channel::<Result<(u64, Vec<u8>)>>(PACK_QUEUE);
        let ids = &ids;
        s.spawn(move || {
            let stopped = || SyncError::Invalid("the receiving side stopped".into());
            let r = src.get_packs(ids, &mut |id, pack| send.send(Ok((id, pack))).map_err(|_| stopped()));
            if let Err(e) = r {
                let _ = send.send(Err(e));
            }
        });
        // The pages that relaxed commits leave to the page cache reach the
        // disk while packs keep streaming in.
        let _flusher = Flusher::start_path(&dst.repo().path().join(STORE_FILE));
        let mut sink = dst.begin_packs()?;
        let (mut pending, mut since, mut in_metadata) = (0u64, Instant::now(), false);
        for got in recv {
            let (id, pack) = got?;
            let p = by_id.remove(&id).ok_or_else(|| SyncError::Protocol {
                from: src.describe(),
                what: format!("pack {id}, which was not asked for (or twice)"),
            })?;
            if p.metadata && !in_metadata {
                in_metadata = true;
                if pending > 0 {
                    sink.commit()?;
                    sink = dst.begin_packs()?;
                }
            }
            sink.add(p.metadata, &pack, &p.objects)?;
            pending += pack.len() as u64;
            c.objects += p.objects.len() as u64;
            c.bytes += pack.len() as u64;
            progress.advance(p.objects.len() as u64, live(p));
            let due = since.elapsed() >= PACK_BATCH_TIME;
            if !p.metadata && (pending >= PACK_BATCH_BYTES || due) {
                if due {
                    sink.commit()?;
                    since = Instant::now();
                } else {
                    sink.commit_relaxed()?;
                }
                sink = dst.begin_packs()?;
                pending = 0;
            }
        }
        if !by_id.is_empty() {
            return Err(SyncError::Protocol {
                from: src.describe(),
                what: format!("the pack stream ended with {} of {} packs missing", by_id.len(), ids.len()),
            });
        }
        sink.commit()
    })
}

/// Reads and verifies one object of `kind` from `src`.
fn read_object(src: &dyn Endpoint, codec: &Codec, id: &ObjectId, kind: Kind) -> Result<Vec<u8>> {
    let got = src.get(std::slice::from_ref(id))?;
    let o = got.first().ok_or_else(|| SyncError::MissingObject { from: src.describe(), id: *id })?;
    let (found, plain) = codec.open(id, &o.bytes).map_err(|e| SyncError::BadObject { id: *id, why: e.to_string() })?;
    if found != kind {
        return Err(SyncError::BadObject {
            id: *id,
            why: format!("a {} where a {} was expected", found.name(), kind.name()),
        });
    }
    Ok(plain)
}

fn read_revision(src: &dyn Endpoint, codec: &Codec, id: &ObjectId) -> Result<Revision> {
    let plain = read_object(src, codec, id, Kind::Revision)?;
    Revision::decode(&plain).map_err(|e| SyncError::BadObject { id: *id, why: e.to_string() })
}

/// Whether `ancestor` is `descendant` or one of its ancestors, following
/// parents through `src`.
fn is_ancestor(src: &dyn Endpoint, codec: &Codec, ancestor: &ObjectId, descendant: &ObjectId) -> Result<bool> {
    let mut seen = HashSet::new();
    let mut queue = vec![*descendant];
    while let Some(id) = queue.pop() {
        if id == *ancestor {
            return Ok(true);
        }
        if seen.insert(id) {
            queue.extend(read_revision(src, codec, &id)?.parents);
        }
    }
    Ok(false)
}

/// Walks from `roots` through `src`, asking `dst` level by level which
/// objects it has and not descending into those; copies what it lacks.
fn copy_walk(
    src: &dyn Endpoint,
    dst: Receiver<'_>,
    codec: &Codec,
    roots: Vec<(ObjectId, Kind)>,
    repo_meta: &RepoMeta,
    progress: &dyn Progress,
    c: &mut Counters,
) -> Result<()> {
    let guess = chunk_guess(repo_meta);
    progress.phase("walking");
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut frontier = roots;
    let mut meta: Vec<WireObject> = Vec::new();
    let mut chunks: Vec<(ObjectId, Option<u64>)> = Vec::new();
    while !frontier.is_empty() {
        frontier.retain(|(id, _)| seen.insert(*id));
        let ids: Vec<ObjectId> = frontier.iter().map(|(id, _)| *id).collect();
        let present = has_batched(dst.to, &ids)?;
        let mut next = Vec::new();
        let mut wanted = Vec::new();
        for ((id, kind), have) in frontier.iter().zip(present) {
            if have {
                continue;
            }
            if *kind == Kind::Chunk {
                chunks.push((*id, None));
            } else {
                wanted.push(*id);
            }
        }
        for batch in wanted.chunks(META_BATCH) {
            for o in src.get(batch)? {
                let (kind, plain) =
                    codec.open(&o.id, &o.bytes).map_err(|e| SyncError::BadObject { id: o.id, why: e.to_string() })?;
                next.extend(links(kind, &plain).map_err(|e| SyncError::BadObject { id: o.id, why: e.to_string() })?);
                meta.push(WireObject { metadata: true, ..o });
            }
        }
        frontier = next;
    }
    let meta_bytes: u64 = meta.iter().map(|o| o.bytes.len() as u64).sum();
    progress.start((chunks.len() + meta.len()) as u64, chunks.len() as u64 * guess + meta_bytes);
    progress.phase("copying");
    let stray = copy(src, dst, &chunks, guess, progress, c)?;
    // Deepest first, so that a parent never lands before its children.
    meta.reverse();
    meta.extend(stray);
    put_metadata(dst, &meta, progress, c)
}

/// What a repository's refs and revision index name, with their kinds.
fn roots_of(state: &RefState) -> Vec<(ObjectId, Kind)> {
    let refs = state.refs.iter().map(|(name, id)| (*id, if is_tree_ref(name) { Kind::Dir } else { Kind::Revision }));
    refs.chain(state.revisions.iter().map(|id| (*id, Kind::Revision))).collect()
}

/// The objects below `roots` (included) that `dst` lacks, with their
/// kinds: every metadata object `dst` has is read, level by level, so
/// nothing is taken on trust (unlike a sync's walk, which stops at what
/// the receiver has).
fn missing_below(dst: &dyn Endpoint, codec: &Codec, roots: Vec<(ObjectId, Kind)>) -> Result<Vec<(ObjectId, Kind)>> {
    // Only directories, lists and revisions are remembered across levels:
    // chunks, most of the objects, are leaves, checked once per level.
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut missing = Vec::new();
    let mut frontier = roots;
    while !frontier.is_empty() {
        let mut level: HashSet<ObjectId> = HashSet::new();
        frontier.retain(|(id, kind)| if *kind == Kind::Chunk { level.insert(*id) } else { seen.insert(*id) });
        let ids: Vec<ObjectId> = frontier.iter().map(|(id, _)| *id).collect();
        let mut read = Vec::new();
        for ((id, kind), have) in frontier.iter().zip(has_batched(dst, &ids)?) {
            match (have, kind) {
                (false, _) => missing.push((*id, *kind)),
                (true, Kind::Chunk) => {}
                (true, _) => read.push(*id),
            }
        }
        let mut next = Vec::new();
        for batch in read.chunks(META_BATCH) {
            for o in dst.get(batch)? {
                let (kind, plain) =
                    codec.open(&o.id, &o.bytes).map_err(|e| SyncError::BadObject { id: o.id, why: e.to_string() })?;
                next.extend(links(kind, &plain).map_err(|e| SyncError::BadObject { id: o.id, why: e.to_string() })?);
            }
        }
        frontier = next;
    }
    Ok(missing)
}

pub(crate) fn is_tree_ref(name: &str) -> bool {
    name == WORKTREE || name.starts_with(WORKTREES_PREFIX)
}

/// What a backup sync changes on the receiver (see [`plan`]).
struct Plan {
    /// Ref moves.
    changes: Vec<RefChange>,
    /// The working tree was left where it was (no key to compare it).
    worktree_kept: bool,
    /// See [`Update::committed_root_record`].
    committed_root_record: Option<String>,
}

/// The ref moves a backup sync makes on `dst`: new refs are created,
/// existing ones only fast-forwarded; the working tree follows HEAD, and
/// one with uncommitted changes stops the sync (with the key: without it,
/// the working tree cannot be compared and is left alone).
fn plan(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    ours: &RefState,
    theirs: &RefState,
    codec: Option<&Codec>,
) -> Result<Plan> {
    let mut changes = Vec::new();
    let mut committed_root_record = None;
    for (name, new) in ours.refs.iter().filter(|(n, _)| !is_tree_ref(n)) {
        let old = theirs.refs.get(name).copied();
        match old {
            Some(old) if old == *new => continue,
            Some(old) => {
                let forward = match codec {
                    Some(codec) => is_ancestor(src, codec, &old, new)?,
                    // Without the key parents cannot be read; accept only
                    // what the sender has itself, so no revision is lost,
                    // and a revision the receiver lacks: one it has already
                    // is where a rewind would take it (a checkout of an
                    // older revision, a tag moved back). A new revision
                    // that diverged cannot be told apart without the key.
                    None => ours.revisions.contains(&old) && !theirs.revisions.contains(new),
                };
                // The receiver has the old value's history; the sender's
                // value may be in it.
                if !forward
                    && let Some(codec) = codec
                    && is_ancestor(dst, codec, new, &old)?
                {
                    return Err(SyncError::SenderBehind {
                        side: dst.describe(),
                        name: name.clone(),
                        theirs: old.short(12),
                        ours: new.short(12),
                    });
                }
                if !forward {
                    return Err(SyncError::NotFastForward {
                        side: dst.describe(),
                        name: name.clone(),
                        theirs: old.short(12),
                        ours: new.short(12),
                    });
                }
            }
            None => {}
        }
        changes.push(RefChange { name: name.clone(), old, new: *new });
    }
    let mut worktree_kept = false;
    if let Some(head) = changes.iter().find(|c| c.name == HEAD).cloned() {
        let current = theirs.refs.get(WORKTREE).copied();
        match codec {
            Some(codec) => {
                let clean = match head.old {
                    Some(old) => read_revision(src, codec, &old)?.root,
                    None => codec.id(Kind::Dir, &Dir::default().encode()),
                };
                let new_rev = read_revision(src, codec, &head.new)?;
                let root = new_rev.root;
                // A tree that syncs without the key left behind, still
                // what it was based on, is clean too.
                let empty = codec.id(Kind::Dir, &Dir::default().encode());
                let left_clean = theirs.worktree_base.is_some_and(|base| {
                    monofs::repo::still_at_base(&base, current, empty, |h| {
                        read_revision(dst, codec, h).ok().map(|r| r.root)
                    })
                });
                // Already the new revision's tree (a clone of a working tree
                // that was committed since): nothing to move, but the move
                // is sent all the same, so that the receiver knows its
                // working tree went with HEAD.
                let changed = current != Some(root) && current.is_some() && current != Some(clean) && !left_clean;
                // A chmod of a mounted root, say, and nothing else; unless
                // the new HEAD has committed the same (the sender made the
                // change too, and committed it), or the record is of
                // another tree (stale: the tree's root ignores it).
                let root_record = theirs.root_records.get(WORKTREE).filter(|_| theirs.worktree_root_meta);
                let committed = root_record.filter(|record| {
                    monofs::repo::open_root_record(codec, WORKTREE, record).is_some_and(|(at, meta)| {
                        Some(at) != current || !monofs::repo::root_differs(&meta, &new_rev.root_meta)
                    })
                });
                if changed || (theirs.worktree_root_meta && committed.is_none()) {
                    return Err(SyncError::dirty_receiver(dst.describe()));
                }
                committed_root_record = committed.map(hex::encode);
                changes.push(RefChange { name: WORKTREE.into(), old: current, new: root });
            }
            None => worktree_kept = current.is_some(),
        }
    }
    Ok(Plan { changes, worktree_kept, committed_root_record })
}

/// Backs up: sends `src`'s revisions and tags that `dst` lacks and
/// fast-forwards `dst`'s refs. `codec` (the key both replicas share) lets it
/// walk the DAG; without it the object id sets are compared.
pub fn sync(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    codec: Option<&Codec>,
    direction: Direction,
    progress: &dyn Progress,
) -> Result<Summary> {
    let start = Instant::now();
    let (src_id, dst_id) = (src.identity()?, dst.identity()?);
    if src_id.meta != dst_id.meta {
        return Err(SyncError::NotReplicas { a: src.describe(), b: dst.describe() });
    }
    if !src_id.dictionaries.is_subset(&dst_id.dictionaries) {
        send_dictionaries(&src.meta()?, &dst_id, dst)?;
    }
    let mut c = Counters::default();
    // A collection on the receiver meanwhile refuses the update; sending
    // again restores what it removed.
    let mut retries = GC_RETRIES;
    loop {
        match sync_once(src, dst, codec, &src_id, progress, &mut c) {
            Err(e) if e.gc_during_sync() && retries > 0 => {
                retries -= 1;
                tracing::warn!("{e}: sending again");
            }
            done => {
                let (mode, update, worktree_kept) = done?;
                return Ok(Summary::of(direction, mode, &c, &update, worktree_kept, start));
            }
        }
    }
}

/// How many times [`sync`] sends again after a collection on the receiver
/// refused its update.
const GC_RETRIES: u32 = 2;

/// One pass of [`sync`]: what `dst` lacks is sent, then its refs are
/// moved; returns the mode, the update made and whether `dst`'s working
/// tree was kept.
fn sync_once(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    codec: Option<&Codec>,
    src_id: &Identity,
    progress: &dyn Progress,
    c: &mut Counters,
) -> Result<(Mode, Update, bool)> {
    let (ours, theirs) = (src.state()?, dst.state()?);
    let Plan { changes, worktree_kept, committed_root_record } = plan(src, dst, &ours, &theirs, codec)?;
    let revisions: Vec<ObjectId> = ours.revisions.difference(&theirs.revisions).copied().collect();
    let to = Receiver { to: dst, gc_epoch: Some(theirs.gc_epoch) };
    let mode = match codec {
        Some(codec) => {
            let mut roots: BTreeSet<ObjectId> = revisions.iter().copied().collect();
            roots.extend(changes.iter().filter(|c| !is_tree_ref(&c.name)).map(|c| c.new));
            let mut roots: Vec<(ObjectId, Kind)> = roots.into_iter().map(|id| (id, Kind::Revision)).collect();
            roots.extend(changes.iter().filter(|c| is_tree_ref(&c.name)).map(|c| (c.new, Kind::Dir)));
            copy_walk(src, to, codec, roots, &src_id.meta, progress, c)?;
            Mode::Walk
        }
        None => {
            copy_id_set(src, to, progress, c)?;
            Mode::IdSet
        }
    };
    progress.phase("updating refs");
    let update = Update { refs: changes, revisions, gc_epoch: Some(theirs.gc_epoch), committed_root_record };
    if !update.refs.is_empty() || !update.revisions.is_empty() {
        dst.update(&update)?;
    }
    Ok((mode, update, worktree_kept))
}

/// Gives `to` (whose identity is `dst`) the dictionaries of `src` it
/// lacks, so that the objects compressed with them can be verified and
/// read there.
fn send_dictionaries(src: &RepoMeta, dst: &Identity, to: &dyn Endpoint) -> Result<()> {
    let missing: Vec<_> = src.dictionaries.iter().filter(|(k, _)| !dst.dictionaries.contains(k)).cloned().collect();
    if missing.is_empty() { Ok(()) } else { to.add_dictionaries(&missing) }
}

/// Copies the whole repository `src` into `dst` (absent or empty, or an
/// unfinished clone of the same repository, which is resumed): every
/// object as stored (sealed objects stay sealed, no key needed), every ref,
/// the revision index, the config and the key file.
pub fn clone(src: &dyn Endpoint, dst: &Path, progress: &dyn Progress) -> Result<(Summary, Local)> {
    clone_with(src, dst, progress, true)
}

/// [`clone`], choosing whether a clone into an empty directory may copy the
/// source's store file whole (`whole_file`; see docs/SYNC.md) or must copy
/// packs (or objects).
pub fn clone_with(
    src: &dyn Endpoint,
    dst: &Path,
    progress: &dyn Progress,
    whole_file: bool,
) -> Result<(Summary, Local)> {
    let start = Instant::now();
    let meta = src.meta()?;
    if whole_file && let Some(done) = crate::whole::clone_file(src, dst, &meta, progress)? {
        return Ok(done);
    }
    let local = if dst.join(STORE_FILE).exists() {
        let local = Local::open_unfinished(dst, LOCK_WAIT)?;
        let mine = local.meta()?;
        if !local.is_partial_clone()? || !mine.same_repository(&meta) {
            return Err(SyncError::DestinationExists(dst.to_owned()));
        }
        // The source may have trained a dictionary since the clone began.
        send_dictionaries(&meta, &Identity::of(mine), &local)?;
        local
    } else {
        let local = Local::new(RawRepository::create_for_import(dst, &meta)?);
        local.mark_partial_clone(&src.describe())?;
        local
    };
    let state = src.state()?;
    let mut c = Counters::default();
    progress.phase("listing");
    let mode = match src.packs()? {
        Some(listing) => {
            copy_packs(src, &local, listing, progress, &mut c)?;
            Mode::Packs
        }
        None => {
            copy_id_set(src, Receiver { to: &local, gc_epoch: None }, progress, &mut c)?;
            Mode::IdSet
        }
    };
    // A listing that left objects out (a broken or tampered server) must
    // not make a clone whose refs name what it cannot read: with a codec,
    // everything below the refs is checked, and what is missing fetched.
    if let Some(codec) = local.codec().cloned() {
        progress.phase("checking");
        let missing = missing_below(&local, &codec, roots_of(&state))?;
        if !missing.is_empty() {
            tracing::warn!("{}: {} objects missing from its listing; fetching them", src.describe(), missing.len());
            copy_walk(src, Receiver { to: &local, gc_epoch: None }, &codec, missing, &meta, progress, &mut c)?;
        }
    }
    progress.phase("updating refs");
    let mine = local.state()?;
    let update = Update {
        refs: state
            .refs
            .iter()
            .map(|(name, id)| RefChange { name: name.clone(), old: mine.refs.get(name).copied(), new: *id })
            .collect(),
        revisions: state.revisions.iter().copied().collect(),
        // The clone holds its repository from the start.
        gc_epoch: None,
        committed_root_record: None,
    };
    local.finish_clone(&update, &state)?;
    let summary = Summary::of(Direction::Clone, mode, &c, &update, false, start);
    Ok((summary, local))
}

#[cfg(test)]
mod tests {
    use monofs::repo::{ChunkerParams, Config, RepoMeta};

    use super::{BATCH_BYTES, CHUNK_GUESS, chunk_guess};

    fn meta(max: u32) -> RepoMeta {
        let mut config = Config::new(false).expect("config");
        config.chunker = ChunkerParams { min: 64, avg: 256, max };
        RepoMeta { config: config.encode(), key: None, dictionaries: Vec::new() }
    }

    #[test]
    fn batches_of_unknown_chunks_stay_within_four_times_the_batch() {
        assert_eq!(chunk_guess(&meta(256 << 10)), CHUNK_GUESS, "the default chunker keeps the guess");
        for max in [1024, 256 << 10, 4 << 20, 16 << 20] {
            let guess = chunk_guess(&meta(max));
            // A batch closes once its guesses reach BATCH_BYTES; each chunk
            // is at most `max`.
            let worst = BATCH_BYTES.div_ceil(guess) * u64::from(max);
            assert!(worst <= 4 * BATCH_BYTES, "max {max}: {worst} bytes");
        }
    }
}
