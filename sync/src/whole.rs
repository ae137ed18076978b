//! The clone fast path: a clone into an empty directory copies the source's
//! store file whole (one redb file) instead of re-inserting its packs.
//!
//! The source holds its repository open, and with it the repository lock,
//! so nothing else writes the file; a server holds pushes off while it
//! sends it (docs/SYNC.md). The copy goes to `DST/monofs.redb.partial`: over
//! HTTP it resumes from the bytes already there and is checked against the
//! BLAKE3 of the whole file that the server sends last; it is then flushed
//! to disk, opened, its config and key compared with the source's, every
//! live object verified as a pack clone verifies it, and what belongs to
//! the source's machine dropped (stat cache, inode numbers, remotes, marks).
//! Only then is it renamed to `DST/monofs.redb`: the destination is a
//! repository only once the copy is whole and verified.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use monofs::ObjectId;
use monofs::crypto::Codec;
use monofs::repo::{RepoLock, RepoMeta, STORE_FILE};
use monofs::store::{RedbStore, Store, Table};

use crate::endpoint::{Endpoint, LOCK_WAIT, Local, StoreSender, verify_frame};
use crate::error::{Result, SyncError};
use crate::flusher::Flusher;
use crate::transfer::{Direction, Mode, Progress, Summary};

/// Where the store file is copied to before it is verified and renamed.
pub use monofs::repo::PARTIAL_STORE_FILE as PARTIAL_FILE;

/// Clones `src` into `dst` by copying its store file, when `dst` is absent,
/// empty or holds only what an earlier attempt of this left, and `src` can
/// send its file whole. `Ok(None)`: not possible; `dst` is left as found
/// (without a partial copy) for the pack clone.
pub(crate) fn clone_file(
    src: &dyn Endpoint,
    dst: &Path,
    meta: &RepoMeta,
    progress: &dyn Progress,
) -> Result<Option<(Summary, Local)>> {
    let start = Instant::now();
    if dst.join(STORE_FILE).exists() {
        return Ok(None);
    }
    if dst.exists() {
        let entries = std::fs::read_dir(dst).map_err(|e| SyncError::io(format!("reading {}", dst.display()), e))?;
        for e in entries {
            let e = e.map_err(|e| SyncError::io(format!("reading {}", dst.display()), e))?;
            if e.file_name() != PARTIAL_FILE && e.file_name() != "lock" {
                return Ok(None);
            }
        }
    }
    let local_file = src.store_file();
    std::fs::create_dir_all(dst).map_err(|e| SyncError::io(format!("creating {}", dst.display()), e))?;
    let lock = RepoLock::acquire(dst)?;
    let partial = dst.join(PARTIAL_FILE);
    progress.phase("copying the store file");
    let copied = match local_file {
        Some(file) => copy_local(&file, &partial, progress)?,
        None => match fetch(&src.describe(), &mut |offset, out| src.read_store(offset, out), &partial, progress)? {
            Some(c) => c,
            None => {
                // Leave DST as the pack clone expects it: empty.
                remove(&partial);
                drop(lock);
                remove(&dst.join("lock"));
                return Ok(None);
            }
        },
    };
    tracing::debug!("store file copied in {:?}", start.elapsed());
    progress.phase("verifying");
    let objects = match check_and_clean(&partial, meta, &src.describe()) {
        Ok(n) => n,
        Err(e) => {
            remove(&partial);
            return Err(e);
        }
    };
    tracing::debug!("store file verified and cleaned at {:?}", start.elapsed());
    let store = dst.join(STORE_FILE);
    std::fs::rename(&partial, &store).map_err(|e| SyncError::io(format!("renaming {}", partial.display()), e))?;
    File::open(dst).and_then(|d| d.sync_all()).map_err(|e| SyncError::io(format!("flushing {}", dst.display()), e))?;
    drop(lock);
    let local = Local::open(dst, LOCK_WAIT)?;
    let state = local.state()?;
    let summary = Summary {
        direction: Direction::Clone,
        mode: Mode::File,
        objects_sent: objects,
        bytes_sent: copied.sent,
        resumed_at: (copied.resumed_at > 0).then_some(copied.resumed_at),
        refs_updated: state.refs.keys().cloned().collect(),
        revisions_added: state.revisions.len() as u64,
        worktree_kept: false,
        duration_ms: start.elapsed().as_millis() as u64,
    };
    Ok(Some((summary, local)))
}

/// What a copy moved.
struct Copied {
    /// Bytes copied in this run.
    sent: u64,
    /// Bytes an earlier, interrupted run had copied already.
    resumed_at: u64,
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// A local source: the file is copied in the kernel (copy_file_range) and
/// flushed. A failure (a full disk) removes the partial copy.
fn copy_local(file: &Path, partial: &Path, progress: &dyn Progress) -> Result<Copied> {
    let copy = || -> std::io::Result<u64> {
        // On one file system the copy may share blocks (a reflink on
        // btrfs or XFS) and need no room: a full disk then says so itself.
        let source = std::fs::metadata(file)?;
        let here = std::fs::metadata(partial.parent().unwrap_or(Path::new(".")))?;
        if std::os::unix::fs::MetadataExt::dev(&source) != std::os::unix::fs::MetadataExt::dev(&here) {
            check_room(partial, source.len())?;
        }
        let n = std::fs::copy(file, partial)?;
        File::open(partial)?.sync_all()?;
        Ok(n)
    };
    match copy() {
        Ok(n) => {
            progress.start(0, n);
            progress.advance(0, n);
            Ok(Copied { sent: n, resumed_at: 0 })
        }
        Err(e) => {
            remove(partial);
            Err(SyncError::io(format!("copying {} to {}", file.display(), partial.display()), e))
        }
    }
}

/// Refuses a copy of `bytes` more into `partial` that its disk cannot
/// hold, before the copy fills it.
fn check_room(partial: &Path, bytes: u64) -> std::io::Result<()> {
    let dir = partial.parent().unwrap_or(Path::new("."));
    match monofs::store::free_bytes(dir) {
        Some(free) if free < bytes => {
            let mib = |b: u64| b as f64 / f64::from(1 << 20);
            let what = format!(
                "not enough space left on the device: {:.1} MiB free, the copy needs {:.1} MiB",
                mib(free),
                mib(bytes)
            );
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, what))
        }
        _ => Ok(()),
    }
}

/// A source's [`Endpoint::read_store`]: sends the file from an offset,
/// returns the whole file's BLAKE3 (`None`: the source has no store file).
type ReadStore<'a> = dyn FnMut(u64, &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> + 'a;

/// A remote source: fetches the file into `partial`, resuming after the
/// bytes already there, and checks it against the source's BLAKE3 of the
/// whole file. A mismatch after a resume (the source's file changed since)
/// starts over once; a mismatch of a copy made in one go is corruption in
/// transit. A local write failure (a full disk) removes the partial copy;
/// a broken transfer keeps it for the next run. `read` is the source's
/// [`Endpoint::read_store`]; `from` names the source in errors.
fn fetch(from: &str, read: &mut ReadStore<'_>, partial: &Path, progress: &dyn Progress) -> Result<Option<Copied>> {
    let io = |what: &str, e: std::io::Error| SyncError::io(format!("{what} {}", partial.display()), e);
    for _ in 0..2 {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(partial)
            .map_err(|e| io("opening", e))?;
        let offset = file.metadata().map_err(|e| io("reading", e))?.len();
        let mut hasher = blake3::Hasher::new();
        if offset > 0 {
            hasher.update_reader(&mut file).map_err(|e| io("reading", e))?;
        }
        file.seek(SeekFrom::Start(offset)).map_err(|e| io("seeking in", e))?;
        let flusher = Flusher::start(&file);
        let mut local_failure = false;
        let mut sent = 0u64;
        let mut started = false;
        let got = read(offset, &mut |len, piece| {
            if !started {
                started = true;
                progress.start(0, len);
                progress.advance(0, offset);
                if let Err(e) = check_room(partial, len.saturating_sub(offset)) {
                    local_failure = true;
                    return Err(io("copying into", e));
                }
            }
            hasher.update(piece);
            file.write_all(piece).map_err(|e| {
                local_failure = true;
                io("writing", e)
            })?;
            sent += piece.len() as u64;
            progress.advance(0, piece.len() as u64);
            Ok(())
        });
        drop(flusher);
        let hash = match got {
            Ok(Some(hash)) => hash,
            Ok(None) => return Ok(None),
            // The partial copy is longer than the source's file now.
            Err(SyncError::Remote { status: 416, .. }) if offset > 0 => {
                remove(partial);
                continue;
            }
            Err(e) => {
                if local_failure {
                    remove(partial);
                }
                return Err(e);
            }
        };
        if let Err(e) = file.sync_all() {
            remove(partial);
            return Err(io("flushing", e));
        }
        if hasher.finalize().as_bytes() == &hash {
            return Ok(Some(Copied { sent, resumed_at: offset }));
        }
        remove(partial);
        if offset == 0 {
            let what = "the store file does not match its checksum (corrupted in transit); run the same command again";
            return Err(SyncError::Protocol { from: from.into(), what: what.into() });
        }
        tracing::info!("{from}: the source's store file changed since the interrupted copy; starting over");
    }
    let what = "the store file changed while it was copied; run the same command again".into();
    Err(SyncError::Protocol { from: from.into(), what })
}

/// Opens the copy, checks that it is the source's repository, verifies
/// every live object and drops what belongs to the source's machine.
/// Returns the number of objects.
fn check_and_clean(partial: &Path, meta: &RepoMeta, from: &str) -> Result<u64> {
    let store = RedbStore::open(partial)?;
    let copied = RepoMeta::read(&store)?;
    if !copied.same_repository(meta) {
        let what = "the copied store file is not the repository it claims to be".into();
        return Err(SyncError::Protocol { from: from.into(), what });
    }
    let t = Instant::now();
    let objects = match copied.keyless_codec()? {
        Some(codec) => verify_objects(&store, Some(&codec), from)?,
        // Sealed and no key: no object can be authenticated (on any path);
        // reading every frame back only to check its shape would add
        // nothing to the checksum of the whole file (docs/SYNC.md).
        None => store.count(Table::Objects)?,
    };
    tracing::debug!("{objects} objects verified in {:?}", t.elapsed());
    // Refs as a sync would accept them (see `Local::apply`).
    let mut bad_ref = None;
    store.scan(Table::Refs, b"", &mut |k, _| {
        let name = String::from_utf8_lossy(k);
        if let Err(e) = monofs::repo::validate_ref_name(&name) {
            bad_ref = Some(e);
        }
        bad_ref.is_none()
    })?;
    if let Some(e) = bad_ref {
        return Err(SyncError::Protocol { from: from.into(), what: format!("the copied store file has an {e}") });
    }
    let mut tx = store.begin()?;
    tx.clear(Table::StatCache)?;
    tx.clear(Table::Inodes)?;
    let mut keys = Vec::new();
    store.scan(Table::Meta, b"", &mut |k, _| {
        // What the working tree was based on, and its root's own
        // metadata, belong to the refs, which the copy keeps (docs/SYNC.md,
        // step 5; docs/FORMAT.md, `root-meta/`).
        let of_refs = k == monofs::repo::META_WORKTREE_BASE || k.starts_with(monofs::repo::ROOT_META_PREFIX);
        if !RepoMeta::holds(k) && !of_refs {
            keys.push(k.to_vec());
        }
        true
    })?;
    for k in keys {
        tx.delete(Table::Meta, &k)?;
    }
    tx.commit()?;
    Ok(objects)
}

/// Verifies every live object of `store` (pack by pack, as a pack clone
/// does on arrival) and any outside packs; returns how many there are.
fn verify_objects(store: &dyn Store, codec: Option<&Codec>, from: &str) -> Result<u64> {
    let listing = store.list_packs()?.unwrap_or_default();
    let by_id: HashMap<u64, usize> = listing.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let ids: Vec<u64> = listing.iter().map(|p| p.id).collect();
    let mut tally = Tally { codec, from, seen: 0, failed: None };
    store.read_packs(&ids, &mut |id, pack| {
        let Some(p) = by_id.get(&id).map(|i| &listing[*i]) else { return true };
        p.objects.iter().all(|e| {
            let start = e.offset as usize;
            let frame = start.checked_add(e.len as usize).and_then(|end| pack.get(start..end));
            tally.verify(&e.key, frame, p.metadata)
        })
    })?;
    let all = store.list_objects()?;
    if tally.failed.is_none() && all.len() as u64 != tally.seen {
        // Objects kept outside packs: verify them one by one.
        let in_packs: std::collections::HashSet<&[u8]> =
            listing.iter().flat_map(|p| p.objects.iter().map(|e| e.key.as_slice())).collect();
        let rest: Vec<&[u8]> = all.iter().map(|e| e.key.as_slice()).filter(|k| !in_packs.contains(k)).collect();
        store.get_objects(&rest, &mut |k, v, metadata| tally.verify(k, Some(v), metadata))?;
    }
    match tally.failed {
        Some(e) => Err(e),
        None => Ok(tally.seen),
    }
}

/// Objects verified so far, and the first that failed.
struct Tally<'a> {
    codec: Option<&'a Codec>,
    from: &'a str,
    seen: u64,
    failed: Option<SyncError>,
}

impl Tally<'_> {
    /// Checks one object's frame (`None`: outside its pack) against its
    /// id; whether to go on.
    fn verify(&mut self, key: &[u8], frame: Option<&[u8]>, metadata: bool) -> bool {
        let checked = ObjectId::from_slice(key)
            .ok_or_else(|| SyncError::Protocol { from: self.from.into(), what: "bad object id".into() })
            .and_then(|oid| {
                let frame = frame.ok_or_else(|| SyncError::BadObject { id: oid, why: "outside its pack".into() })?;
                verify_frame(self.codec, &oid, frame, metadata)
            });
        match checked {
            Ok(_) => self.seen += 1,
            Err(e) => self.failed = Some(e),
        }
        self.failed.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::NoProgress;

    /// A source that sends `file` whole, with the checksum of `sum` (the
    /// file as the source has it), flipping byte `flip` on the way when set.
    struct FakeSource {
        file: Vec<u8>,
        sum: Vec<u8>,
        flip: Option<usize>,
    }

    impl FakeSource {
        fn fetch(&self, partial: &Path) -> Result<Option<Copied>> {
            fetch("fake", &mut |offset, out| self.read_store(offset, out), partial, &NoProgress)
        }

        fn read_store(&self, offset: u64, out: &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> {
            let mut sent = self.file[offset as usize..].to_vec();
            if let Some(at) = self.flip.and_then(|i| i.checked_sub(offset as usize)) {
                sent[at] ^= 0x55;
            }
            for piece in sent.chunks(1000) {
                out(self.file.len() as u64, piece)?;
            }
            Ok(Some(*blake3::hash(&self.sum).as_bytes()))
        }
    }

    fn file() -> Vec<u8> {
        (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_byte_changed_in_transit_fails_the_checksum_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let src = FakeSource { file: file(), sum: file(), flip: Some(4321) };
        let err = src.fetch(&partial).err().expect("refused");
        assert!(err.to_string().contains("does not match its checksum"), "{err}");
        assert!(!partial.exists());
    }

    #[test]
    fn an_interrupted_copy_resumes_after_the_bytes_it_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        std::fs::write(&partial, &file()[..6000]).expect("write");
        let src = FakeSource { file: file(), sum: file(), flip: None };
        let copied = src.fetch(&partial).expect("fetch").expect("sent whole");
        assert_eq!((copied.resumed_at, copied.sent), (6000, 4000));
        assert_eq!(std::fs::read(&partial).expect("read"), file());
    }

    #[test]
    fn a_partial_copy_of_a_file_that_changed_since_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let mut stale = file()[..6000].to_vec();
        stale[10] ^= 1;
        std::fs::write(&partial, &stale).expect("write");
        let src = FakeSource { file: file(), sum: file(), flip: None };
        let copied = src.fetch(&partial).expect("fetch").expect("sent whole");
        assert_eq!((copied.resumed_at, copied.sent), (0, 10_000));
        assert_eq!(std::fs::read(&partial).expect("read"), file());
    }
}
