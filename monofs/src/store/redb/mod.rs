//! The embedded default: one `redb` file per repository (ACID, crash-safe).
//!
//! redb gives a value larger than a page a page of its own, rounded up to a
//! power of two; stored one per value, compressed chunks (16-256 KiB, any
//! size in between) would waste a third of the file. Objects are therefore
//! appended to pack values of just under 1 MiB, which fill their pages, and
//! the `objects` table maps each id to its place in a pack. Metadata
//! (directories, lists, revisions) goes to packs of its own, so walking trees
//! does not drag file data through the cache (see
//! docs/FORMAT.md, "Store"). Packs are rewritten by [`Store::compact`] once
//! gc has left holes in them.

mod packs;
mod space;

use bytes::Bytes;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableHandle,
};

use super::{
    Integrity, ObjectEntry, ObjectVisitor, PackEntry, PackListing, PackVisitor, Store, StoreError, StoreResult, Table,
    Transaction,
};
use packs::{Location, METADATA_BIT, PackWriter, Stream};
use space::DiskSpace;
pub use space::free_bytes;

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

const PACKS: Def = TableDefinition::new("packs");

/// redb's page cache; it holds at most half in unwritten pages, so this
/// bounds the memory a large commit needs (the OS page cache does the
/// rest). 64 MiB holds the object index of a repository of some 100k files
/// many times over; 256 MiB made the peak memory of the first commit of the
/// Linux tree 345 MB instead of 160 MB for 3% less time.
const CACHE_BYTES: usize = 64 << 20;

fn builder() -> redb::Builder {
    builder_with_cache(CACHE_BYTES)
}

fn builder_with_cache(bytes: usize) -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(bytes);
    b
}

fn def(t: Table) -> Def {
    TableDefinition::new(t.name())
}

fn err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    // redb's errors do not give the OS error they carry as their source:
    // lift it out, so that callers can tell a full disk (ENOSPC), and mark
    // it, so that the store knows redb now refuses every call.
    if let Some(kind) = failed_io(&e) {
        return StoreError(Box::new(std::io::Error::new(kind, FailedIo(e.to_string()))));
    }
    StoreError(Box::new(e))
}

/// A failed read or write of the database file (or redb's refusal to go on
/// after one), as [`err`] gives it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FailedIo(String);

/// Whether `e` is a [`FailedIo`].
fn is_failed_io(e: &StoreError) -> bool {
    e.0.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| inner.is::<FailedIo>())
}

/// The kind of the I/O error under a redb error, if it is one (`Other`
/// for redb's "Previous I/O error").
fn failed_io(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let storage = if let Some(s) = e.downcast_ref::<redb::StorageError>() {
        s
    } else if let Some(redb::CommitError::Storage(s)) = e.downcast_ref() {
        s
    } else if let Some(redb::TransactionError::Storage(s)) = e.downcast_ref() {
        s
    } else if let Some(redb::TableError::Storage(s)) = e.downcast_ref() {
        s
    } else if let Some(redb::CompactionError::Storage(s)) = e.downcast_ref() {
        s
    } else if let Some(redb::DatabaseError::Storage(s)) = e.downcast_ref() {
        s
    } else {
        return None;
    };
    match storage {
        redb::StorageError::Io(io) => Some(io.kind()),
        redb::StorageError::PreviousIo => Some(std::io::ErrorKind::Other),
        _ => None,
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError(Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())))
}

/// A [`Store`] over one redb database file.
pub struct RedbStore {
    /// `None` only while opening it again fails (see [`RedbStore::reopen`]).
    db: RwLock<Option<Database>>,
    path: Arc<Path>,
    /// The size of redb's cache, at most half of which holds unwritten pages.
    cache_bytes: usize,
    /// Opened to be shared with other processes.
    shared: bool,
    /// Opened with a check of every page (see [`RedbStore::open_verified`]).
    verified: bool,
    recent: Arc<RecentPacks>,
    /// Set by a failed read or write of the file: redb then refuses every
    /// call until the file is opened again, which the next call does.
    failed: Arc<AtomicBool>,
    relaxed: Arc<Relaxed>,
}

/// Relaxed commits (see [`Transaction::set_relaxed`]) not yet made durable
/// by a durable one. Updated only while a write transaction holds redb's
/// write slot, so in commit order.
#[derive(Default)]
struct Relaxed {
    /// One is pending: opening the file again would drop it.
    pending: AtomicBool,
    /// The bytes of objects they added, which redb may still hold
    /// unwritten: the next transaction's free-space check counts them.
    bytes: AtomicU64,
}

/// Packs read lately, kept whole: a file read front to back reads the
/// objects of one pack one after the other, and redb's page cache keeps
/// pages as large as packs poorly (it read each pack about ten times over
/// with a 64 MiB cache). Emptied by every commit here, as pack ids can be
/// reused once compaction has dropped the newest packs.
#[derive(Default)]
struct RecentPacks {
    recent: Mutex<Recent>,
    /// Packs being read: threads reading objects of one pack at once (a
    /// read and its read-ahead) read it once.
    flights: crate::flights::Flights<u64, Bytes>,
}

#[derive(Default)]
struct Recent {
    packs: VecDeque<(u64, Bytes)>,
    /// Counts clears: a pack read before one is not kept after it.
    generation: u64,
}

/// How many packs [`RecentPacks`] keeps (about 1 MiB each).
const RECENT_PACKS: usize = 8;

impl RecentPacks {
    /// The generation to give [`RecentPacks::put`]: taken before the read
    /// transaction begins, so a pack from before a clear is never kept.
    fn generation(&self) -> u64 {
        self.recent.lock().map_or(u64::MAX, |r| r.generation)
    }

    /// Pack `id`, if kept.
    fn get(&self, id: u64) -> Option<Bytes> {
        let r = self.recent.lock().ok()?;
        r.packs.iter().find(|(p, _)| *p == id).map(|(_, pack)| pack.clone())
    }

    /// Keeps pack `id`, read in `generation`, unless a clear came since.
    fn put(&self, id: u64, pack: Bytes, generation: u64) {
        if let Ok(mut r) = self.recent.lock()
            && r.generation == generation
            && !r.packs.iter().any(|(p, _)| *p == id)
        {
            if r.packs.len() == RECENT_PACKS {
                r.packs.pop_front();
            }
            r.packs.push_back((id, pack));
        }
    }

    fn clear(&self) {
        if let Ok(mut r) = self.recent.lock() {
            r.packs.clear();
            r.generation += 1;
        }
    }
}

/// A read-only handle on a redb store; it never writes to the file.
pub struct ReadOnlyStore {
    db: ReadOnlyDatabase,
}

impl RedbStore {
    /// Creates a new database file with every table.
    pub fn create(path: &Path) -> StoreResult<RedbStore> {
        Self::create_with_cache(path, CACHE_BYTES)
    }

    /// [`RedbStore::create`] with a page cache of `cache_bytes` instead of
    /// the default 256 MiB. A store that is being filled by a copy (a
    /// clone) writes each page once and reads little back: a small cache
    /// recycles its buffers instead of growing, which saves memory and page
    /// faults.
    pub fn create_with_cache(path: &Path, cache_bytes: usize) -> StoreResult<RedbStore> {
        let store = Self::assemble(path, cache_bytes, false);
        let db = store.builder().create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        for t in Table::ALL {
            tx.open_table(def(t)).map_err(err)?;
        }
        tx.open_table(PACKS).map_err(err)?;
        tx.commit().map_err(err)?;
        *store.db.write().map_err(|_| corrupt("lock poisoned"))? = Some(db);
        Ok(store)
    }

    /// Opens an existing database file, adding tables that a newer build
    /// knows and the file lacks.
    pub fn open(path: &Path) -> StoreResult<RedbStore> {
        Self::open_with(Self::assemble(path, CACHE_BYTES, false))
    }

    /// Opens an existing database file that other processes may have open
    /// too, each writing in turn (one write transaction at a time across
    /// all of them); every process must open it this way.
    pub fn open_shared(path: &Path) -> StoreResult<RedbStore> {
        Self::open_with(Self::assemble(path, CACHE_BYTES, true))
    }

    /// [`RedbStore::open`] after redb checked every page of the file: a
    /// damaged file fails to open (`fsck` reports it) where a plain open
    /// trusts it and may panic on the damage later. Reads the whole file.
    /// A file redb finds corrupted beyond repair fails with
    /// [`crate::store::Damaged`], for fsck to report as such (opened
    /// unchecked, such a file can make redb panic on the first read).
    pub fn open_verified(path: &Path) -> StoreResult<RedbStore> {
        let store = RedbStore { verified: true, ..Self::assemble(path, CACHE_BYTES, false) };
        match store.builder().open(path) {
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(why))) => {
                Err(StoreError(Box::new(crate::store::Damaged(why))))
            }
            Err(e) => Err(err(e)),
            Ok(db) => Self::open_db(store, db),
        }
    }

    fn assemble(path: &Path, cache_bytes: usize, shared: bool) -> RedbStore {
        RedbStore {
            db: RwLock::new(None),
            path: path.into(),
            cache_bytes,
            shared,
            verified: false,
            recent: Arc::default(),
            failed: Arc::default(),
            relaxed: Arc::default(),
        }
    }

    fn builder(&self) -> redb::Builder {
        let mut b = builder_with_cache(self.cache_bytes);
        b.set_check_integrity_on_open(self.verified);
        if self.shared {
            b.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
        }
        b
    }

    fn open_with(store: RedbStore) -> StoreResult<RedbStore> {
        let db = store.builder().open(&store.path).map_err(err)?;
        Self::open_db(store, db)
    }

    /// Adds the tables `db` lacks and makes it `store`'s database.
    fn open_db(store: RedbStore, db: Database) -> StoreResult<RedbStore> {
        let present: Vec<String> =
            db.begin_read().map_err(err)?.list_tables().map_err(err)?.map(|t| t.name().to_owned()).collect();
        if Table::ALL.iter().any(|t| !present.iter().any(|p| p == t.name())) {
            let tx = db.begin_write().map_err(err)?;
            for t in Table::ALL {
                tx.open_table(def(t)).map_err(err)?;
            }
            tx.commit().map_err(err)?;
        }
        *store.db.write().map_err(|_| corrupt("lock poisoned"))? = Some(db);
        Ok(store)
    }

    /// Runs `f` on the database, opened again first if a failed read or
    /// write left redb refusing every call; notes such a failure of `f`.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> StoreResult<T>) -> StoreResult<T> {
        if self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let db = self.db.read().map_err(|_| corrupt("lock poisoned"))?;
        let db = db.as_ref().ok_or_else(|| corrupt("the store could not be opened again after an I/O error"))?;
        note_failure(&self.failed, f(db))
    }

    /// Opens the file again after an I/O error (a full disk, a failing
    /// device), so that the store works once the cause is gone instead of
    /// refusing everything until the process ends. Only durable commits
    /// survive that, so after a relaxed one (a bulk copy) the store stays
    /// failed rather than forget what it said it had. Fails (and is tried
    /// again by the next call) while a transaction of the old handle is
    /// still open.
    fn reopen(&self) -> StoreResult<()> {
        // Not `write()`: waiting for the lock would hold back every new
        // call behind the longest one running (a sync server streaming
        // packs to a slow client). Short calls are waited out; otherwise
        // the next call tries again.
        let mut tries = 0;
        let mut db = loop {
            match self.db.try_write() {
                Ok(db) => break db,
                Err(std::sync::TryLockError::WouldBlock) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(corrupt("the store is busy being opened again after an I/O error; try again"));
                }
                Err(std::sync::TryLockError::Poisoned(_)) => return Err(corrupt("lock poisoned")),
            }
        };
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.relaxed.pending.load(Ordering::Acquire) {
            return Err(corrupt("an I/O error struck before a relaxed commit was made durable; start again"));
        }
        // Kept packs hold read transactions of the old handle open.
        self.recent.clear();
        drop(db.take());
        *db = Some(self.builder().open(&self.path).map_err(err)?);
        self.failed.store(false, Ordering::Release);
        tracing::warn!("{}: opened again after an I/O error", self.path.display());
        Ok(())
    }

    /// Drops the packs nothing points into, and with `rewrite_sparse`
    /// rewrites those that are mostly garbage, in a commit of its own.
    fn repack(&self, rewrite_sparse: bool) -> StoreResult<()> {
        let mut txn = self.begin_txn()?;
        let repacked = packs::repack(&txn.tx, &mut txn.packs, rewrite_sparse);
        txn.noted(repacked)?;
        Box::new(txn).commit()
    }

    /// A write transaction, whose pack writer checks the disk for room.
    fn begin_txn(&self) -> StoreResult<RedbTxn> {
        let tx = self.with_db(|db| db.begin_write().map_err(err))?;
        let unwritten = self.relaxed.bytes.load(Ordering::Acquire);
        let space = DiskSpace::new(self.path.clone(), (self.cache_bytes / 2) as u64, unwritten);
        Ok(RedbTxn {
            tx,
            packs: PackWriter::new(space),
            recent: self.recent.clone(),
            failed: self.failed.clone(),
            relaxed: self.relaxed.clone(),
            relaxing: false,
        })
    }

    /// Opens an existing database file for reading only.
    pub fn open_read_only(path: &Path) -> StoreResult<ReadOnlyStore> {
        let db = builder().open_read_only(path).map_err(|e| match e {
            redb::DatabaseError::RepairAborted => corrupt(
                "the store file was not closed cleanly and needs a recovery that writes to it: \
                 open the repository once where it can be written",
            ),
            e => err(e),
        })?;
        Ok(ReadOnlyStore { db })
    }
}

/// The stored frame of object `key`, its pack taken from `recent` when
/// there (and kept there once read) if given, with the generation taken
/// before `tx` began. With `share`, a kept pack is redb's page itself (see
/// [`PackPage`]): only for a store no other process shares, as it holds its
/// read transaction open until this store's next commit, and in a shared
/// store that would keep every process from reusing pages freed since. The
/// frame is copied out of the pack either way, so that nothing else holds
/// such a transaction, nor a whole pack for one frame.
fn read_object(
    tx: &ReadTransaction,
    key: &[u8],
    recent: Option<(&RecentPacks, u64)>,
    share: bool,
) -> StoreResult<Option<Bytes>> {
    let index = tx.open_table(def(Table::Objects)).map_err(err)?;
    let Some(loc) = index.get(key).map_err(err)? else {
        return Ok(None);
    };
    let loc = Location::decode(loc.value()).ok_or_else(|| corrupt("bad object location"))?;
    let outside = || corrupt("object outside its pack");
    let packs = tx.open_table(PACKS).map_err(err)?;
    let missing = || corrupt("missing pack");
    let Some((recent, generation)) = recent else {
        let pack = packs.get(loc.pack_key().as_slice()).map_err(err)?.ok_or_else(missing)?;
        return Ok(Some(Bytes::copy_from_slice(loc.slice(pack.value()).ok_or_else(outside)?)));
    };
    let pack = match recent.get(loc.pack) {
        Some(pack) => pack,
        None => recent.flights.load(loc.pack, || {
            let key = loc.pack_key();
            let pack = if share {
                Bytes::from_owner(PackPage(packs.get_owned(key.as_slice()).map_err(err)?.ok_or_else(missing)?))
            } else {
                Bytes::from(packs.get(key.as_slice()).map_err(err)?.ok_or_else(missing)?.value().to_vec())
            };
            recent.put(loc.pack, pack.clone(), generation);
            Ok::<_, StoreError>(pack)
        })?,
    };
    Ok(Some(Bytes::copy_from_slice(loc.slice(&pack).ok_or_else(outside)?)))
}

/// A pack as redb read it: its page, shared with redb's cache, instead of
/// a copy of it (a copy per pack was a tenth of the CPU of a cold read).
/// It holds its read transaction open, so that no commit frees the page
/// under it; redb reuses the pages a commit frees once no reader from
/// before it is left.
struct PackPage(redb::OwnedAccessGuard<&'static [u8]>);

impl AsRef<[u8]> for PackPage {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

fn get_in(db: &impl ReadableDatabase, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
    let tx = db.begin_read().map_err(err)?;
    if table == Table::Objects {
        return Ok(read_object(&tx, key, None, false)?.map(Vec::from));
    }
    let t = tx.open_table(def(table)).map_err(err)?;
    Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
}

fn has_in(db: &impl ReadableDatabase, table: Table, key: &[u8]) -> StoreResult<bool> {
    let tx = db.begin_read().map_err(err)?;
    let t = tx.open_table(def(table)).map_err(err)?;
    Ok(t.get(key).map_err(err)?.is_some())
}

fn scan_in(
    db: &impl ReadableDatabase,
    table: Table,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> StoreResult<()> {
    let tx = db.begin_read().map_err(err)?;
    let t = tx.open_table(def(table)).map_err(err)?;
    for item in t.range(prefix..).map_err(err)? {
        let (k, v) = item.map_err(err)?;
        if !k.value().starts_with(prefix) {
            break;
        }
        let go_on = if table == Table::Objects {
            let value = read_object(&tx, k.value(), None, false)?.ok_or_else(|| corrupt("object vanished"))?;
            f(k.value(), &value)
        } else {
            f(k.value(), v.value())
        };
        if !go_on {
            break;
        }
    }
    Ok(())
}

fn scan_lengths_in(
    db: &impl ReadableDatabase,
    table: Table,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], u64) -> bool,
) -> StoreResult<()> {
    if table != Table::Objects {
        return scan_in(db, table, prefix, &mut |k, v| f(k, v.len() as u64));
    }
    let tx = db.begin_read().map_err(err)?;
    let t = tx.open_table(def(table)).map_err(err)?;
    for item in t.range(prefix..).map_err(err)? {
        let (k, v) = item.map_err(err)?;
        let loc = Location::decode(v.value()).ok_or_else(|| corrupt("bad object location"))?;
        if !k.value().starts_with(prefix) || !f(k.value(), u64::from(loc.len)) {
            break;
        }
    }
    Ok(())
}

fn count_in(db: &impl ReadableDatabase, table: Table) -> StoreResult<u64> {
    let tx = db.begin_read().map_err(err)?;
    // redb keeps each table's length: no scan.
    tx.open_table(def(table)).map_err(err)?.len().map_err(err)
}

/// The objects table's entries with their locations, in pack order.
fn locations(tx: &ReadTransaction) -> StoreResult<Vec<(Vec<u8>, Location)>> {
    let t = tx.open_table(def(Table::Objects)).map_err(err)?;
    let mut out = Vec::new();
    for item in t.iter().map_err(err)? {
        let (k, v) = item.map_err(err)?;
        let loc = Location::decode(v.value()).ok_or_else(|| corrupt("bad object location"))?;
        out.push((k.value().to_vec(), loc));
    }
    out.sort_by_key(|(_, l)| (l.pack, l.offset));
    Ok(out)
}

fn list_objects_in(db: &impl ReadableDatabase) -> StoreResult<Vec<ObjectEntry>> {
    let tx = db.begin_read().map_err(err)?;
    Ok(locations(&tx)?
        .into_iter()
        .map(|(key, loc)| ObjectEntry { key, len: u64::from(loc.len), metadata: loc.pack & METADATA_BIT != 0 })
        .collect())
}

/// Live objects grouped by pack, data packs first (see [`Store::list_packs`]).
fn list_packs_in(db: &impl ReadableDatabase) -> StoreResult<Vec<PackListing>> {
    let tx = db.begin_read().map_err(err)?;
    let mut out: Vec<PackListing> = Vec::new();
    for (key, loc) in locations(&tx)? {
        if out.last().is_none_or(|p| p.id != loc.pack) {
            out.push(PackListing { id: loc.pack, metadata: loc.pack & METADATA_BIT != 0, objects: Vec::new() });
        }
        if let Some(p) = out.last_mut() {
            p.objects.push(PackEntry { key, offset: loc.offset, len: loc.len });
        }
    }
    Ok(out)
}

fn read_packs_in(db: &impl ReadableDatabase, ids: &[u64], f: &mut PackVisitor<'_>) -> StoreResult<()> {
    let tx = db.begin_read().map_err(err)?;
    let packs = tx.open_table(PACKS).map_err(err)?;
    for id in ids {
        let pack = packs.get(id.to_be_bytes().as_slice()).map_err(err)?.ok_or_else(|| corrupt("missing pack"))?;
        if !f(*id, pack.value()) {
            break;
        }
    }
    Ok(())
}

/// Reads each pack once for all the objects asked for in it.
fn get_objects_in(db: &impl ReadableDatabase, keys: &[&[u8]], f: &mut ObjectVisitor<'_>) -> StoreResult<()> {
    let tx = db.begin_read().map_err(err)?;
    let index = tx.open_table(def(Table::Objects)).map_err(err)?;
    let mut found: Vec<(&[u8], Location)> = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(v) = index.get(*key).map_err(err)? {
            found.push((key, Location::decode(v.value()).ok_or_else(|| corrupt("bad object location"))?));
        }
    }
    found.sort_by_key(|(_, l)| (l.pack, l.offset));
    let packs = tx.open_table(PACKS).map_err(err)?;
    let mut i = 0;
    while i < found.len() {
        let pack_id = found[i].1.pack;
        let pack = packs.get(found[i].1.pack_key().as_slice()).map_err(err)?.ok_or_else(|| corrupt("missing pack"))?;
        while i < found.len() && found[i].1.pack == pack_id {
            let (key, loc) = found[i];
            let bytes = loc.slice(pack.value()).ok_or_else(|| corrupt("object outside its pack"))?;
            if !f(key, bytes, pack_id & METADATA_BIT != 0) {
                return Ok(());
            }
            i += 1;
        }
    }
    Ok(())
}

impl Store for ReadOnlyStore {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        get_in(&self.db, table, key)
    }

    fn has(&self, table: Table, key: &[u8]) -> StoreResult<bool> {
        has_in(&self.db, table, key)
    }

    fn scan(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()> {
        scan_in(&self.db, table, prefix, f)
    }

    fn begin(&self) -> StoreResult<Box<dyn Transaction + '_>> {
        Err(StoreError(Box::new(std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem))))
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(0)
    }

    /// redb checks only what it can repair, which needs writing.
    fn check_integrity(&self) -> StoreResult<Integrity> {
        Ok(Integrity::Unchecked("the store file is read-only here".into()))
    }
}

impl Store for RedbStore {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if table == Table::Objects {
            return Ok(self.get_frame(key)?.map(Vec::from));
        }
        self.with_db(|db| get_in(db, table, key))
    }

    fn get_frame(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        let generation = self.recent.generation();
        let recent = Some((&*self.recent, generation));
        self.with_db(|db| read_object(&db.begin_read().map_err(err)?, key, recent, !self.shared))
    }

    fn has(&self, table: Table, key: &[u8]) -> StoreResult<bool> {
        self.with_db(|db| has_in(db, table, key))
    }

    fn scan(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()> {
        self.with_db(|db| scan_in(db, table, prefix, f))
    }

    fn count(&self, table: Table) -> StoreResult<u64> {
        self.with_db(|db| count_in(db, table))
    }

    fn scan_lengths(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], u64) -> bool) -> StoreResult<()> {
        self.with_db(|db| scan_lengths_in(db, table, prefix, f))
    }

    fn list_objects(&self) -> StoreResult<Vec<ObjectEntry>> {
        self.with_db(list_objects_in)
    }

    fn get_objects(&self, keys: &[&[u8]], f: &mut ObjectVisitor<'_>) -> StoreResult<()> {
        self.with_db(|db| get_objects_in(db, keys, f))
    }

    fn list_packs(&self) -> StoreResult<Option<Vec<PackListing>>> {
        self.with_db(|db| list_packs_in(db).map(Some))
    }

    fn read_packs(&self, ids: &[u64], f: &mut PackVisitor<'_>) -> StoreResult<()> {
        self.with_db(|db| read_packs_in(db, ids, f))
    }

    fn begin(&self) -> StoreResult<Box<dyn Transaction + '_>> {
        Ok(Box::new(self.begin_txn()?))
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        // Blocks in use, not the apparent length: redb grows the file ahead
        // of need and the unwritten tail is sparse.
        Ok(std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&self.path).map_err(err)?) * 512)
    }

    fn apparent_size(&self) -> StoreResult<u64> {
        Ok(std::fs::metadata(&self.path).map_err(err)?.len())
    }

    fn close(&self) {
        // Kept packs hold read transactions.
        self.recent.clear();
        // Waits for the call in flight; later ones find no database.
        let Ok(mut db) = self.db.write() else { return };
        if let Some(db) = db.take()
            && let Err(e) = db.close()
        {
            tracing::warn!("closing the store: {e}");
        }
    }

    fn check_integrity(&self) -> StoreResult<Integrity> {
        if self.verified {
            return Ok(Integrity::Sound);
        }
        let mut db = self.db.write().map_err(|_| corrupt("lock poisoned"))?;
        let db = db.as_mut().ok_or_else(|| corrupt("the store is not open"))?;
        // Kept packs hold read transactions, and redb checks with none open.
        self.recent.clear();
        Ok(match db.check_integrity() {
            Ok(true) => Integrity::Sound,
            Ok(false) => Integrity::Repaired,
            Err(redb::DatabaseError::TransactionInProgress) => {
                Integrity::Unchecked("a read of the store was in progress".into())
            }
            Err(e) => Integrity::Damaged(e.to_string()),
        })
    }

    fn compact(&self) -> StoreResult<()> {
        // Packs nothing points into go first, in a commit that adds
        // nothing, so that gc frees them even on a full disk, where
        // rewriting the packs that are mostly garbage may be refused.
        self.repack(false)?;
        match self.repack(true) {
            Err(e) if crate::error::disk_full(&e) => tracing::warn!("packs that are mostly garbage are kept: {e}"),
            other => other?,
        }
        let mut db = self.db.write().map_err(|_| corrupt("lock poisoned"))?;
        let db = db.as_mut().ok_or_else(|| corrupt("the store is not open"))?;
        // Kept packs hold read transactions (see `PackPage`), and redb
        // compacts only with none open.
        self.recent.clear();
        match db.compact() {
            // A reader still holds a page (a reply of a mount in flight):
            // the freed pages stay in the file, reused by later writes.
            Err(redb::CompactionError::TransactionInProgress) => {
                tracing::warn!("the store file was not compacted: a read was in progress");
                Ok(())
            }
            other => note_failure(&self.failed, other.map(drop).map_err(err)),
        }
    }
}

struct RedbTxn {
    tx: redb::WriteTransaction,
    packs: PackWriter,
    recent: Arc<RecentPacks>,
    /// The store's flag for failed I/O (see [`RedbStore::with_db`]).
    failed: Arc<AtomicBool>,
    /// The store's relaxed commits not yet made durable.
    relaxed: Arc<Relaxed>,
    /// Whether this transaction commits relaxed.
    relaxing: bool,
}

impl RedbTxn {
    fn noted<T>(&self, r: StoreResult<T>) -> StoreResult<T> {
        note_failure(&self.failed, r)
    }

    fn get_raw(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if table == Table::Objects {
            return self.packs.read(&self.tx, key);
        }
        let t = self.tx.open_table(def(table)).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    fn put_raw(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        if table == Table::Objects {
            return self.packs.append(&self.tx, key, value, Stream::Data);
        }
        let mut t = self.tx.open_table(def(table)).map_err(err)?;
        t.insert(key, value).map_err(err)?;
        Ok(())
    }

    fn clear_raw(&mut self, table: Table) -> StoreResult<()> {
        if table == Table::Objects {
            return Err(corrupt("the object index cannot be cleared"));
        }
        // Dropping the whole b-tree frees its pages at once; deleting entry
        // by entry would rewrite them.
        self.tx.delete_table(def(table)).map_err(err)?;
        self.tx.open_table(def(table)).map_err(err)?;
        Ok(())
    }

    fn delete_raw(&mut self, table: Table, key: &[u8]) -> StoreResult<()> {
        // Deleting an object only drops its index entry; its bytes stay in
        // the pack until compaction rewrites it.
        let mut t = self.tx.open_table(def(table)).map_err(err)?;
        t.remove(key).map_err(err)?;
        Ok(())
    }

    fn commit_raw(&mut self) -> StoreResult<()> {
        self.packs.space.check()?;
        self.packs.flush(&self.tx)
    }
}

impl Transaction for RedbTxn {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.noted(self.get_raw(table, key))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        let r = self.put_raw(table, key, value);
        self.noted(r)
    }

    fn put_object(&mut self, key: &[u8], value: &[u8], metadata: bool) -> StoreResult<()> {
        let stream = if metadata { Stream::Metadata } else { Stream::Data };
        let r = self.packs.append(&self.tx, key, value, stream);
        self.noted(r)
    }

    fn put_pack(&mut self, pack: &[u8], metadata: bool, objects: &[PackEntry]) -> StoreResult<()> {
        let stream = if metadata { Stream::Metadata } else { Stream::Data };
        let r = self.packs.import(&self.tx, pack, stream, objects);
        self.noted(r)
    }

    fn set_relaxed(&mut self) -> StoreResult<()> {
        match self.tx.set_durability(redb::Durability::None) {
            Ok(()) => {
                self.relaxing = true;
                Ok(())
            }
            // A database shared between processes commits durably only.
            Err(redb::SetDurabilityError::NonDurableCommitUnsupported) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    fn clear(&mut self, table: Table) -> StoreResult<()> {
        let r = self.clear_raw(table);
        self.noted(r)
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<()> {
        let r = self.delete_raw(table, key);
        self.noted(r)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let r = self.commit_raw();
        self.noted(r)?;
        let RedbTxn { tx, packs, recent, failed, relaxed, relaxing } = *self;
        // Set before committing, while this transaction holds the write
        // slot; put back if the commit fails.
        let was = relaxed.pending.swap(relaxing, Ordering::AcqRel);
        let bytes = relaxed.bytes.load(Ordering::Acquire);
        relaxed.bytes.store(if relaxing { bytes + packs.space.added() } else { 0 }, Ordering::Release);
        if let Err(e) = note_failure(&failed, tx.commit().map_err(err)) {
            relaxed.pending.store(was, Ordering::Release);
            relaxed.bytes.store(bytes, Ordering::Release);
            return Err(e);
        }
        recent.clear();
        Ok(())
    }
}

/// Notes in `failed` an error of `r` that leaves redb refusing every call.
fn note_failure<T>(failed: &AtomicBool, r: StoreResult<T>) -> StoreResult<T> {
    if let Err(e) = &r
        && is_failed_io(e)
    {
        failed.store(true, Ordering::Release);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two handles on one shared file stand for two processes.
    fn shared_pair(path: &Path) -> (RedbStore, RedbStore) {
        drop(RedbStore::create(path).expect("create"));
        (RedbStore::open_shared(path).expect("open a"), RedbStore::open_shared(path).expect("open b"))
    }

    fn put_object(store: &RedbStore, key: [u8; 32], value: &[u8]) {
        let mut tx = store.begin().expect("begin");
        tx.put_object(&key, value, false).expect("put");
        tx.commit().expect("commit");
    }

    #[test]
    fn a_shared_reader_does_not_hold_pages_others_free() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let (a, b) = shared_pair(&path);
        put_object(&b, [7; 32], &[7; 100_000]);
        let churn = |n: u8| {
            for i in 0..n {
                let mut tx = b.begin().expect("begin");
                tx.put(Table::Meta, b"churn", &vec![i; 4 << 20]).expect("put");
                tx.commit().expect("commit");
            }
        };
        churn(5);
        let before = std::fs::metadata(&path).expect("stat").len();
        assert_eq!(a.get_frame(&[7; 32]).expect("read").as_deref(), Some(&[7u8; 100_000][..]));
        churn(40);
        let grown = std::fs::metadata(&path).expect("stat").len().saturating_sub(before);
        assert!(grown <= 16 << 20, "the file grew {} MiB while a reader kept a pack", grown >> 20);
    }

    #[test]
    fn a_kept_pack_is_never_another_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = shared_pair(&dir.path().join("s.redb"));
        put_object(&b, [1; 32], &[1; 50_000]);
        assert_eq!(a.get_frame(&[1; 32]).expect("read").as_deref(), Some(&[1u8; 50_000][..]));
        let mut tx = b.begin().expect("begin");
        tx.delete(Table::Objects, &[1; 32]).expect("delete");
        tx.commit().expect("commit");
        b.compact().expect("compaction drops the pack");
        put_object(&b, [2; 32], &[2; 50_000]);
        assert_eq!(a.get_frame(&[2; 32]).expect("read").as_deref(), Some(&[2u8; 50_000][..]));
    }

    #[test]
    fn opening_again_does_not_wait_for_a_long_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(RedbStore::create(&dir.path().join("s.redb")).expect("create"));
        let mut tx = store.begin().expect("begin");
        tx.put(Table::Meta, b"k", b"v").expect("put");
        tx.commit().expect("commit");
        let (started, wait) = std::sync::mpsc::channel();
        let long = std::thread::spawn({
            let store = store.clone();
            move || {
                store.scan(Table::Meta, b"", &mut |_, _| {
                    let _ = started.send(());
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                    false
                })
            }
        });
        wait.recv().expect("the long call runs");
        store.failed.store(true, Ordering::Release);
        let t = std::time::Instant::now();
        assert!(store.get(Table::Meta, b"k").is_err(), "opened again under a running call");
        assert!(t.elapsed() < std::time::Duration::from_millis(700), "waited {:?} for the long call", t.elapsed());
        long.join().expect("join").expect("the long call ends well");
        assert_eq!(store.get(Table::Meta, b"k").expect("opened again").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_full_disk_under_a_redb_error_is_seen() {
        let full = || std::io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let wrapped: [StoreError; 3] = [
            err(redb::StorageError::Io(full())),
            err(redb::CommitError::Storage(redb::StorageError::Io(full()))),
            err(redb::TransactionError::Storage(redb::StorageError::Io(full()))),
        ];
        for e in wrapped {
            assert!(crate::Error::Store(e).is_disk_full());
        }
        let other = err(redb::StorageError::Io(std::io::Error::from_raw_os_error(nix::libc::EIO)));
        assert!(!crate::Error::Store(other).is_disk_full());
        assert!(!crate::Error::Store(err(redb::StorageError::PreviousIo)).is_disk_full());
    }

    #[test]
    fn recent_packs_forget_on_clear_and_refuse_stale_reads() {
        let recent = RecentPacks::default();
        let pack = |b: &[u8]| Bytes::copy_from_slice(b);
        let before = recent.generation();
        recent.put(1, pack(b"one"), before);
        assert_eq!(recent.get(1).as_deref(), Some(&b"one"[..]));
        recent.clear();
        assert!(recent.get(1).is_none(), "a commit empties it");
        recent.put(2, pack(b"read before the commit"), before);
        assert!(recent.get(2).is_none(), "a pack read before a clear is not kept");
        let now = recent.generation();
        for id in 0..(RECENT_PACKS as u64 + 2) {
            recent.put(id, pack(b"p"), now);
        }
        assert!(recent.get(0).is_none() && recent.get(RECENT_PACKS as u64 + 1).is_some(), "oldest dropped first");
    }

    #[test]
    fn relaxed_commits_of_a_shared_database_are_durable_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        drop(RedbStore::create(&path).expect("create"));
        let store = RedbStore::open_shared(&path).expect("open shared");
        let mut tx = store.begin().expect("begin");
        tx.set_relaxed().expect("relaxed is a request, not a failure");
        tx.put(Table::Refs, b"r", b"v").expect("put");
        tx.commit().expect("commit");
        drop(store);
        let again = RedbStore::open(&path).expect("reopen");
        assert_eq!(again.get(Table::Refs, b"r").expect("get").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn reads_after_compaction_see_the_rewritten_packs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::create(&dir.path().join("s.redb")).expect("create");
        let mut tx = store.begin().expect("begin");
        for i in 0..40u8 {
            tx.put_object(&[i; 32], &vec![i; 100_000], false).expect("put");
        }
        tx.commit().expect("commit");
        // Read (and keep) the packs, then drop most objects and compact:
        // packs are rewritten, and their ids may come back.
        for i in 0..40u8 {
            assert_eq!(store.get(Table::Objects, &[i; 32]).expect("get"), Some(vec![i; 100_000]));
        }
        let mut tx = store.begin().expect("begin");
        for i in 0..38u8 {
            tx.delete(Table::Objects, &[i; 32]).expect("delete");
        }
        tx.commit().expect("commit");
        store.compact().expect("compact");
        let mut tx = store.begin().expect("begin");
        tx.put_object(&[99; 32], &vec![99; 100_000], false).expect("put");
        tx.commit().expect("commit");
        for i in [38u8, 39, 99] {
            assert_eq!(store.get(Table::Objects, &[i; 32]).expect("get"), Some(vec![i; 100_000]), "{i}");
        }
    }
}
