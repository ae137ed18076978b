//! The clone fast path: a clone into an empty directory copies the source's
//! store file whole (one redb file) instead of re-inserting its packs.
//!
//! The source holds its repository open, and with it the repository lock,
//! so nothing else writes the file; a server holds pushes off while it
//! sends it (docs/SYNC.md). The copy goes to `DST/monofs.redb.partial`: over
//! HTTP it keeps the pieces already there that the server's file still has
//! and is checked against the checksum of the whole file that the server
//! sends last; it is then flushed
//! to disk, opened, its config and key compared with the source's, every
//! live object verified as a pack clone verifies it, and what belongs to
//! the source's machine dropped (stat cache, inode numbers, remotes, marks).
//! Only then is it renamed to `DST/monofs.redb`: the destination is a
//! repository only once the copy is whole and verified.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use monofs::ObjectId;
use monofs::crypto::Codec;
use monofs::repo::{RepoLock, RepoMeta, STORE_FILE};
use monofs::store::{RedbStore, Store, Table};

use crate::endpoint::{Endpoint, LOCK_WAIT, Local, StoreSender, verify_frame};
use crate::error::{Result, SyncError};
use crate::flusher::Flusher;
use crate::pieces::{self, Piece};
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
        None => match fetch(&src.describe(), &mut |have, out| src.read_store(have, out), &partial, progress)? {
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
        // A copy starts over: whatever is there goes (a symlink itself,
        // not what it points to).
        if std::fs::symlink_metadata(partial).is_ok() {
            std::fs::remove_file(partial)?;
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

/// A source's [`Endpoint::read_store`]: sends the file's pieces, keeping
/// those of the have list that match; returns the checksum of the whole
/// file (`None`: the source has no store file).
type ReadStore<'a> = dyn FnMut(&[u8], &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> + 'a;

/// A remote source: fetches the file into `partial`, keeping the pieces of
/// an interrupted copy that the source's file still has (see
/// [`crate::pieces`]), and checks it against the source's checksum of the
/// whole file. A mismatch after a resume starts over once; a mismatch of a
/// copy made in one go is corruption in transit. A local write failure (a
/// full disk) removes the partial copy; a broken transfer keeps it for the
/// next run. `read` is the source's [`Endpoint::read_store`]; `from` names
/// the source in errors.
fn fetch(from: &str, read: &mut ReadStore<'_>, partial: &Path, progress: &dyn Progress) -> Result<Option<Copied>> {
    let io = |what: &str, e: std::io::Error| SyncError::io(format!("{what} {}", partial.display()), e);
    let bad = |what: String| SyncError::Protocol { from: from.into(), what };
    let mut started_over = false;
    let mut busy = BUSY_WAITS.iter();
    loop {
        let file = open_partial(partial)?;
        let had = file.metadata().map_err(|e| io("reading", e))?.len();
        let mut sums = sums_of(&file, had).map_err(|e| io("reading", e))?;
        let have = pieces::encode_have(&sums);
        let flusher = Flusher::start(&file);
        let mut len = None;
        let mut next = 0u64;
        let (mut kept, mut sent) = (0u64, 0u64);
        let mut local_failure = false;
        let got = read(&have, &mut |piece| {
            let (n, bytes) = match piece {
                Piece::Length(l) => {
                    if len.replace(l).is_some() {
                        return Err(bad("the store file's length came twice".into()));
                    }
                    progress.start(0, l);
                    if let Err(e) = check_room(partial, l.saturating_sub(had)) {
                        local_failure = true;
                        return Err(io("copying into", e));
                    }
                    return Ok(());
                }
                Piece::Kept(n) => (n, None),
                Piece::Data(n, bytes) => (n, Some(bytes)),
            };
            let Some(l) = len.filter(|l| n < pieces::count(*l)) else {
                return Err(bad(format!("piece {n} is past the end of the store file")));
            };
            if n != next {
                return Err(bad(format!("piece {n} of the store file out of order")));
            }
            next += 1;
            let size = pieces::len_of(n, l);
            match bytes {
                None if (n as usize) < sums.len() && size == pieces::PIECE => kept += size,
                None => return Err(bad(format!("piece {n} of the store file kept, which this copy does not have"))),
                Some(bytes) if bytes.len() as u64 != size => {
                    return Err(bad(format!("piece {n} of the store file has {} bytes, not {size}", bytes.len())));
                }
                Some(bytes) => {
                    file.write_all_at(bytes, n * pieces::PIECE).map_err(|e| {
                        local_failure = true;
                        io("writing", e)
                    })?;
                    let sum = pieces::sum(bytes);
                    match sums.get_mut(n as usize) {
                        Some(s) => *s = sum,
                        None => sums.push(sum),
                    }
                    sent += size;
                }
            }
            progress.advance(0, size);
            Ok(())
        });
        drop(flusher);
        let hash = match got {
            Ok(Some(hash)) => hash,
            Ok(None) => return Ok(None),
            // A push is being stored there: with nothing to keep, packs are
            // copied instead; a copy under way waits (pushes are short).
            Err(SyncError::Remote { status: 503, .. }) if had == 0 => return Ok(None),
            Err(e @ SyncError::Remote { status: 503, .. }) => match busy.next() {
                Some(wait) => {
                    tracing::info!("{from}: storing a push; trying again in {wait:?}");
                    std::thread::sleep(*wait);
                    continue;
                }
                None => return Err(e),
            },
            Err(e) => {
                if local_failure {
                    remove(partial);
                }
                return Err(e);
            }
        };
        let Some(len) = len.filter(|l| next == pieces::count(*l)) else {
            return Err(bad("the store file ended before its last piece".into()));
        };
        sums.truncate(next as usize);
        if let Err(e) = file.set_len(len).and_then(|()| file.sync_all()) {
            remove(partial);
            return Err(io("flushing", e));
        }
        if pieces::whole(&sums) == hash {
            return Ok(Some(Copied { sent, resumed_at: kept }));
        }
        remove(partial);
        if kept == 0 || started_over {
            let what = "the store file does not match its checksum (corrupted in transit); run the same command again";
            return Err(bad(what.into()));
        }
        tracing::info!("{from}: the store file does not match its checksum after a resume; starting over");
        started_over = true;
    }
}

/// How long a resumed copy waits, and how often, for a server storing a
/// push before it gives up (keeping the copy for the next run).
const BUSY_WAITS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(15),
];

/// Opens the partial copy to resume it, or a new one: a regular file, not
/// through a symlink (one planted there would have the copy written over
/// whatever it points to).
fn open_partial(partial: &Path) -> Result<File> {
    let not_a_file = || SyncError::Invalid(format!("{} is not a regular file: remove it", partial.display()));
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(partial);
    let file = match opened {
        Ok(file) => file,
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ELOOP | nix::libc::EISDIR)) => return Err(not_a_file()),
        Err(e) => return Err(SyncError::io(format!("opening {}", partial.display()), e)),
    };
    match file.metadata() {
        Ok(md) if md.is_file() => Ok(file),
        Ok(_) => Err(not_a_file()),
        Err(e) => Err(SyncError::io(format!("reading {}", partial.display()), e)),
    }
}

/// The sums of the whole pieces among the first `len` bytes of `file`.
/// Pieces that are holes (a copy cut short by a crash, or made sparse) are
/// not read: their sum is that of zeros.
fn sums_of(file: &File, len: u64) -> std::io::Result<Vec<blake3::Hash>> {
    let mut buf = vec![0u8; pieces::PIECE as usize];
    let zeros = std::sync::OnceLock::new();
    let mut data = 0u64;
    (0..len / pieces::PIECE)
        .map(|n| {
            let at = n * pieces::PIECE;
            if data < at + pieces::PIECE {
                data = next_data(file, at)?;
            }
            if data >= at + pieces::PIECE {
                return Ok(*zeros.get_or_init(|| pieces::sum(&vec![0u8; pieces::PIECE as usize])));
            }
            file.read_exact_at(&mut buf, at)?;
            Ok(pieces::sum(&buf))
        })
        .collect()
}

/// Where the next data of `file` at or after `at` begins (`u64::MAX`: none),
/// as far as its file system tells holes apart; `at` where it does not.
fn next_data(file: &File, at: u64) -> std::io::Result<u64> {
    let Ok(offset) = i64::try_from(at) else { return Ok(at) };
    match nix::unistd::lseek(file, offset, nix::unistd::Whence::SeekData) {
        Ok(data) => Ok(u64::try_from(data).unwrap_or(at)),
        Err(nix::errno::Errno::ENXIO) => Ok(u64::MAX),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EOPNOTSUPP) => Ok(at),
        Err(e) => Err(e.into()),
    }
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
    let codec = copied.keyless_codec()?;
    let objects = match &codec {
        Some(codec) => verify_objects(&store, Some(codec), from)?,
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
    // Dictionary records no object can use are not copied, as a pack
    // clone leaves them out (docs/FORMAT.md 4.5).
    let usable = copied.clone().usable(codec.as_ref()).dictionaries;
    for (key, record) in &copied.dictionaries {
        if !usable.iter().any(|(k, r)| k == key && r == record) {
            tracing::warn!(key = %String::from_utf8_lossy(key), "{from}: dictionary record left out: no object can use it");
            keys.push(key.clone());
        }
    }
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

    /// A source that sends `file` whole, flipping byte `flip` on the way
    /// when set, claiming the client has piece `lie` when set, and busy
    /// storing a push (`503`) the first `busy` times it is asked.
    #[derive(Default)]
    struct FakeSource {
        file: Vec<u8>,
        flip: Option<usize>,
        lie: Option<u64>,
        busy: std::cell::Cell<u32>,
    }

    impl FakeSource {
        fn new(file: Vec<u8>) -> FakeSource {
            FakeSource { file, ..FakeSource::default() }
        }

        fn fetch(&self, partial: &Path) -> Result<Option<Copied>> {
            fetch("fake", &mut |have, out| self.read_store(have, out), partial, &NoProgress)
        }

        fn read_store(&self, have: &[u8], out: &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> {
            if self.busy.get() > 0 {
                self.busy.set(self.busy.get() - 1);
                return Err(SyncError::Remote { url: "fake".into(), status: 503, message: "busy".into() });
            }
            let have = pieces::Have::parse(have, "test")?;
            let mut sent = self.file.clone();
            if let Some(at) = self.flip {
                sent[at] ^= 0x55;
            }
            out(Piece::Length(self.file.len() as u64))?;
            let mut sums = Vec::new();
            for (n, (piece, as_sent)) in
                self.file.chunks(pieces::PIECE as usize).zip(sent.chunks(pieces::PIECE as usize)).enumerate()
            {
                let n = n as u64;
                sums.push(pieces::sum(piece));
                if have.has(n, &pieces::sum(piece)) || self.lie == Some(n) {
                    out(Piece::Kept(n))?;
                } else {
                    out(Piece::Data(n, as_sent))?;
                }
            }
            Ok(Some(pieces::whole(&sums)))
        }
    }

    const MIB: usize = pieces::PIECE as usize;

    /// Five and a half pieces.
    fn file() -> Vec<u8> {
        (0..(5 * MIB + MIB / 2) as u32).map(|i| (i.wrapping_mul(7) % 251) as u8).collect()
    }

    #[test]
    fn a_byte_changed_in_transit_fails_the_checksum_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let src = FakeSource { flip: Some(3 * MIB + 4321), ..FakeSource::new(file()) };
        let err = src.fetch(&partial).err().expect("refused");
        assert!(err.to_string().contains("does not match its checksum"), "{err}");
        assert!(!partial.exists());
    }

    #[test]
    fn an_interrupted_copy_keeps_the_whole_pieces_it_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        std::fs::write(&partial, &file()[..3 * MIB + 1000]).expect("write");
        let copied = FakeSource::new(file()).fetch(&partial).expect("fetch").expect("sent whole");
        assert_eq!((copied.resumed_at, copied.sent), (3 * MIB as u64, (2 * MIB + MIB / 2) as u64));
        assert_eq!(std::fs::read(&partial).expect("read"), file());
    }

    #[test]
    fn a_partial_copy_of_a_file_that_changed_since_gets_the_changed_pieces_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let mut stale = file()[..4 * MIB + 10].to_vec();
        stale[10] ^= 1;
        stale[2 * MIB + 7] ^= 1;
        std::fs::write(&partial, &stale).expect("write");
        let copied = FakeSource::new(file()).fetch(&partial).expect("fetch").expect("sent whole");
        // Pieces 1 and 3 kept; 0 and 2 changed, 4 and 5 never arrived.
        assert_eq!((copied.resumed_at, copied.sent), (2 * MIB as u64, (3 * MIB + MIB / 2) as u64));
        assert_eq!(std::fs::read(&partial).expect("read"), file());
    }

    #[test]
    fn a_partial_copy_longer_than_the_file_is_cut_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let mut longer = file();
        longer.extend_from_slice(&[9; 3 * MIB]);
        std::fs::write(&partial, &longer).expect("write");
        let copied = FakeSource::new(file()).fetch(&partial).expect("fetch").expect("sent whole");
        assert_eq!((copied.resumed_at, copied.sent), (5 * MIB as u64, (MIB / 2) as u64));
        assert_eq!(std::fs::read(&partial).expect("read"), file());
    }

    #[test]
    fn a_resumed_copy_waits_for_a_server_storing_a_push() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        std::fs::write(&partial, &file()[..2 * MIB]).expect("write");
        let src = FakeSource { busy: 1.into(), ..FakeSource::new(file()) };
        let copied = src.fetch(&partial).expect("fetch").expect("sent whole");
        assert_eq!(copied.resumed_at, 2 * MIB as u64);
        // With nothing to keep, packs are copied instead.
        remove(&partial);
        let src = FakeSource { busy: 1.into(), ..FakeSource::new(file()) };
        assert!(src.fetch(&partial).expect("fetch").is_none());
    }

    /// A symlink planted where the copy goes is not followed (the copy
    /// would overwrite what it points to); a directory there is no copy to
    /// resume. Both are refused with advice to remove them.
    #[test]
    fn a_partial_copy_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        std::os::unix::fs::symlink(&victim, &partial).expect("symlink");
        let err = FakeSource::new(file()).fetch(&partial).err().expect("refused");
        assert!(err.to_string().contains("not a regular file: remove it") && !err.resumable(), "{err}");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        remove(&partial);
        std::fs::create_dir(&partial).expect("mkdir");
        let err = FakeSource::new(file()).fetch(&partial).err().expect("refused");
        assert!(err.to_string().contains("not a regular file: remove it") && !err.resumable(), "{err}");
    }

    /// Holes are summed as zeros without being read: a piece of zeros the
    /// source has too is kept, others are sent again.
    #[test]
    fn holes_in_a_partial_copy_are_summed_as_zeros() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        let mut src = file();
        src[2 * MIB..3 * MIB].fill(0);
        let f = File::create(&partial).expect("create");
        f.write_all_at(&src[MIB..2 * MIB], MIB as u64).expect("write");
        f.set_len(4 * MIB as u64).expect("extend with a hole");
        drop(f);
        let copied = FakeSource::new(src.clone()).fetch(&partial).expect("fetch").expect("sent whole");
        // Pieces 1 (data) and 2 (a hole, zeros in the source) kept.
        assert_eq!(copied.resumed_at, 2 * MIB as u64);
        assert_eq!(std::fs::read(&partial).expect("read"), src);
    }

    #[test]
    fn a_source_claiming_the_copy_has_a_piece_it_lacks_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partial = dir.path().join(PARTIAL_FILE);
        std::fs::write(&partial, &file()[..MIB]).expect("write");
        let src = FakeSource { lie: Some(1), ..FakeSource::new(file()) };
        let err = src.fetch(&partial).err().expect("refused");
        assert!(err.to_string().contains("piece 1 of the store file kept"), "{err}");
    }
}
