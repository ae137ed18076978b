//! Storage backends: ordered byte-key tables with atomic transactions.
//!
//! A backend knows nothing of objects or encryption; the [`crate::Repository`]
//! layer above gives the tables their meaning (docs/FORMAT.md, "Store").

mod memory;
mod redb;

pub use self::redb::{ReadOnlyStore, RedbStore, free_bytes};
pub use memory::MemoryStore;

/// The tables every backend holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// object id (32 bytes) -> stored frame.
    Objects,
    /// ref name (UTF-8) -> object id.
    Refs,
    /// revision id -> nothing; every revision ever made, so none is lost.
    Revisions,
    /// setting name -> value (config, key file).
    Meta,
    /// keyed digest of a source path -> sealed stat record.
    StatCache,
    /// parent inode (u64 big-endian) + name -> inode number (u64
    /// little-endian): the working tree's persistent inode numbers.
    Inodes,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 6] =
        [Table::Objects, Table::Refs, Table::Revisions, Table::Meta, Table::StatCache, Table::Inodes];

    /// The table's name inside the backend.
    pub fn name(self) -> &'static str {
        match self {
            Table::Objects => "objects",
            Table::Refs => "refs",
            Table::Revisions => "revisions",
            Table::Meta => "meta",
            Table::StatCache => "statcache",
            Table::Inodes => "inodes",
        }
    }
}

/// A backend failure, carrying the backend's own error.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

/// Short alias for backend results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A store file whose check on open found damage the backend cannot
/// repair (see `RedbStore::open_verified`).
#[derive(Debug, thiserror::Error)]
#[error("the store file is damaged beyond repair: {0}")]
pub struct Damaged(pub String);

impl StoreError {
    /// Why the store file is damaged beyond repair, if that is this error.
    pub fn damage(&self) -> Option<&str> {
        self.0.downcast_ref::<Damaged>().map(|d| d.0.as_str())
    }
}

/// One entry of the objects table, as listed by [`Store::list_objects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The object id.
    pub key: Vec<u8>,
    /// Length of its stored frame.
    pub len: u64,
    /// Whether it was stored as metadata (see [`Transaction::put_object`]);
    /// `false` from backends that do not keep the distinction.
    pub metadata: bool,
}

/// One object's place in a pack, as listed by [`Store::list_packs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The object id.
    pub key: Vec<u8>,
    /// Where its stored frame starts in the pack.
    pub offset: u32,
    /// Length of its stored frame.
    pub len: u32,
}

/// A pack and the live objects in it (replication copies whole packs into
/// an empty store instead of re-inserting object by object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackListing {
    /// The pack id in this store (another store gives it its own id).
    pub id: u64,
    /// A metadata pack (directories, chunk lists, revisions).
    pub metadata: bool,
    /// Its live objects, in pack order; bytes between them are garbage.
    pub objects: Vec<PackEntry>,
}

/// Receives packs read in a batch: pack id, pack bytes; returns whether to go on.
pub type PackVisitor<'a> = dyn FnMut(u64, &[u8]) -> bool + 'a;

/// Receives objects read in a batch: key, stored frame, metadata flag;
/// returns whether to go on.
pub type ObjectVisitor<'a> = dyn FnMut(&[u8], &[u8], bool) -> bool + 'a;

/// An ordered key-value store with a fixed set of tables.
pub trait Store: Send + Sync {
    /// The value under `key`, as of the last committed transaction.
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;

    /// Whether `key` exists.
    fn has(&self, table: Table, key: &[u8]) -> StoreResult<bool> {
        Ok(self.get(table, key)?.is_some())
    }

    /// The stored frame of object `key`, sharing the backend's buffer where
    /// it can instead of copying (the hot path of reading file content).
    fn get_frame(&self, key: &[u8]) -> StoreResult<Option<bytes::Bytes>> {
        Ok(self.get(Table::Objects, key)?.map(bytes::Bytes::from))
    }

    /// Calls `f` with each (key, value) whose key starts with `prefix`, in
    /// key order, until it returns `false`.
    fn scan(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()>;

    /// Like [`Store::scan`], but gives only each value's length, which some
    /// backends know without reading the value.
    fn scan_lengths(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], u64) -> bool) -> StoreResult<()> {
        self.scan(table, prefix, &mut |k, v| f(k, v.len() as u64))
    }

    /// How many entries `table` holds.
    fn count(&self, table: Table) -> StoreResult<u64> {
        let mut n = 0;
        self.scan_lengths(table, b"", &mut |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// Every object, in the order the backend stores them (so that reading
    /// them in this order reads the store sequentially). Used to copy a
    /// whole repository.
    fn list_objects(&self) -> StoreResult<Vec<ObjectEntry>> {
        let mut out = Vec::new();
        self.scan_lengths(Table::Objects, b"", &mut |k, len| {
            out.push(ObjectEntry { key: k.to_vec(), len, metadata: false });
            true
        })?;
        Ok(out)
    }

    /// Reads several objects at once: calls `f(key, stored frame, metadata)`
    /// for each of `keys` that exists, in storage order rather than the
    /// order given, until it returns `false`. Absent keys are skipped.
    fn get_objects(&self, keys: &[&[u8]], f: &mut ObjectVisitor<'_>) -> StoreResult<()> {
        for key in keys {
            if let Some(v) = self.get(Table::Objects, key)?
                && !f(key, &v, false)
            {
                break;
            }
        }
        Ok(())
    }

    /// The packs holding live objects, data packs first, each with its
    /// live objects; `None` from a backend that does not keep packs.
    fn list_packs(&self) -> StoreResult<Option<Vec<PackListing>>> {
        Ok(None)
    }

    /// Reads whole packs by id, in the order given, calling `f` with each
    /// until it returns `false`. A missing pack is an error.
    fn read_packs(&self, ids: &[u64], f: &mut PackVisitor<'_>) -> StoreResult<()> {
        let _ = (ids, f);
        Err(StoreError(Box::new(std::io::Error::new(std::io::ErrorKind::Unsupported, "this store keeps no packs"))))
    }

    /// Starts the one write transaction; changes become visible at once and
    /// all together on [`Transaction::commit`], or not at all.
    fn begin(&self) -> StoreResult<Box<dyn Transaction + '_>>;

    /// Bytes the store occupies on disk (or in memory).
    fn size_on_disk(&self) -> StoreResult<u64>;

    /// Length of the store's files, counting space reserved ahead of need.
    fn apparent_size(&self) -> StoreResult<u64> {
        self.size_on_disk()
    }

    /// Gives freed space back to the file system, where the backend can.
    fn compact(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Closes the backend cleanly, so that its files need no recovery at
    /// the next open; every later call fails. For a process about to exit
    /// while other threads still hold the store.
    fn close(&self) {}

    /// Checks the backend's own structures (pages, checksums), repairing
    /// what it can. A backend with none to check is sound.
    fn check_integrity(&self) -> StoreResult<Integrity> {
        Ok(Integrity::Sound)
    }
}

/// What a check of a store's own structures found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Nothing wrong.
    Sound,
    /// Damaged, and repaired by going back to the last sound commit: the
    /// changes after it are lost.
    Repaired,
    /// Damaged beyond repair; what the backend said.
    Damaged(String),
    /// Not checked; why (the store was in use).
    Unchecked(String),
}

/// Changes that land atomically.
pub trait Transaction {
    /// Reads through the transaction (sees its own writes).
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// Inserts or replaces.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()>;
    /// Removes every entry of `table` (not [`Table::Objects`], whose
    /// entries point into packs).
    fn clear(&mut self, table: Table) -> StoreResult<()>;
    /// Inserts an object's stored frame. `metadata` marks directories, chunk
    /// lists and revisions, which a backend may keep apart from file data
    /// so that walking trees reads little.
    fn put_object(&mut self, key: &[u8], value: &[u8], metadata: bool) -> StoreResult<()> {
        let _ = metadata;
        self.put(Table::Objects, key, value)
    }
    /// Stores a pack copied from another store: the bytes as they are
    /// (under a pack id of this store's choosing) and an index entry for
    /// each of `objects`, which must lie inside `pack`. Backends without
    /// packs store each object on its own.
    fn put_pack(&mut self, pack: &[u8], metadata: bool, objects: &[PackEntry]) -> StoreResult<()> {
        for e in objects {
            let start = e.offset as usize;
            let frame = start
                .checked_add(e.len as usize)
                .and_then(|end| pack.get(start..end))
                .ok_or_else(|| StoreError(Box::new(std::io::Error::from(std::io::ErrorKind::InvalidData))))?;
            self.put_object(&e.key, frame, metadata)?;
        }
        Ok(())
    }
    /// Asks that [`Transaction::commit`] not wait for the disk: the commit
    /// is visible at once but only persisted by the next durable commit
    /// (lost if the process dies first). For bulk copies that commit often
    /// to bound memory and durably now and then. Backends that cannot
    /// relax durability ignore it.
    fn set_relaxed(&mut self) -> StoreResult<()> {
        Ok(())
    }
    /// Removes; absent keys are fine.
    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<()>;
    /// Makes every change durable at once.
    fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn Store) {
        let mut tx = store.begin().expect("begin");
        tx.put(Table::Refs, b"b", b"2").expect("put");
        tx.put(Table::Refs, b"a1", b"1").expect("put");
        tx.put(Table::Refs, b"a2", b"3").expect("put");
        assert_eq!(tx.get(Table::Refs, b"b").expect("get"), Some(b"2".to_vec()));
        assert_eq!(store.get(Table::Refs, b"b").expect("get"), None, "uncommitted write visible");
        tx.commit().expect("commit");
        assert!(store.has(Table::Refs, b"b").expect("has"));
        assert!(!store.has(Table::Objects, b"b").expect("has"), "tables are separate");
        let mut seen = Vec::new();
        store
            .scan(Table::Refs, b"a", &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                true
            })
            .expect("scan");
        assert_eq!(seen, vec![(b"a1".to_vec(), b"1".to_vec()), (b"a2".to_vec(), b"3".to_vec())]);
        let mut tx = store.begin().expect("begin");
        tx.delete(Table::Refs, b"b").expect("delete");
        tx.put(Table::Refs, b"c", b"4").expect("put");
        drop(tx);
        assert!(store.has(Table::Refs, b"b").expect("has"), "dropped transaction applied");
        assert!(!store.has(Table::Refs, b"c").expect("has"));
        let mut tx = store.begin().expect("begin");
        tx.delete(Table::Refs, b"b").expect("delete");
        tx.commit().expect("commit");
        assert!(!store.has(Table::Refs, b"b").expect("has"));

        // clear drops what was committed and what the transaction added,
        // and nothing of other tables; the table stays usable.
        let mut tx = store.begin().expect("begin");
        tx.put(Table::StatCache, b"s1", b"x").expect("put");
        tx.put(Table::StatCache, b"s2", b"y").expect("put");
        tx.commit().expect("commit");
        assert_eq!(store.count(Table::StatCache).expect("count"), 2);
        let refs = store.count(Table::Refs).expect("count");
        let mut tx = store.begin().expect("begin");
        tx.put(Table::StatCache, b"s3", b"z").expect("put");
        tx.clear(Table::StatCache).expect("clear");
        tx.commit().expect("commit");
        assert_eq!(store.count(Table::StatCache).expect("count"), 0);
        assert_eq!(store.count(Table::Refs).expect("count"), refs);
        let mut tx = store.begin().expect("begin");
        tx.put(Table::StatCache, b"s4", b"w").expect("put");
        tx.commit().expect("commit");
        assert_eq!(store.get(Table::StatCache, b"s4").expect("get"), Some(b"w".to_vec()));
    }

    fn batch_reads(store: &dyn Store) {
        let mut tx = store.begin().expect("begin");
        tx.put_object(b"k1", b"data one", false).expect("put");
        tx.put_object(b"k2", b"meta two", true).expect("put");
        tx.put_object(b"k3", b"data three", false).expect("put");
        tx.commit().expect("commit");
        let listed = store.list_objects().expect("list");
        let mut keys: Vec<&[u8]> = listed.iter().map(|e| e.key.as_slice()).collect();
        keys.sort();
        assert_eq!(keys, [b"k1".as_slice(), b"k2", b"k3"]);
        assert!(
            listed
                .iter()
                .all(|e| e.len == store.get(Table::Objects, &e.key).expect("get").expect("present").len() as u64)
        );
        let mut got = Vec::new();
        store
            .get_objects(&[b"k3", b"absent", b"k2"], &mut |k, v, _| {
                got.push((k.to_vec(), v.to_vec()));
                true
            })
            .expect("get_objects");
        got.sort();
        assert_eq!(got, [(b"k2".to_vec(), b"meta two".to_vec()), (b"k3".to_vec(), b"data three".to_vec())]);
    }

    #[test]
    fn memory_store_semantics() {
        exercise(&MemoryStore::default());
        batch_reads(&MemoryStore::default());
    }

    #[test]
    fn redb_batch_reads_keep_the_metadata_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::create(&dir.path().join("s.redb")).expect("create");
        batch_reads(&store);
        let meta: Vec<bool> =
            store.list_objects().expect("list").iter().filter(|e| e.key == b"k2").map(|e| e.metadata).collect();
        assert_eq!(meta, [true]);
        let mut flags = Vec::new();
        store
            .get_objects(&[b"k1", b"k2"], &mut |k, _, m| {
                flags.push((k.to_vec(), m));
                true
            })
            .expect("get_objects");
        flags.sort();
        assert_eq!(flags, [(b"k1".to_vec(), false), (b"k2".to_vec(), true)]);
    }

    #[test]
    fn packs_copy_whole_into_redb_and_object_by_object_elsewhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = RedbStore::create(&dir.path().join("src.redb")).expect("create");
        batch_reads(&src);
        assert_eq!(MemoryStore::default().list_packs().expect("list"), None, "the memory store keeps no packs");
        let packs = src.list_packs().expect("list").expect("redb keeps packs");
        assert_eq!(packs.iter().map(|p| p.metadata).collect::<Vec<_>>(), [false, true], "data packs first");
        let ids: Vec<u64> = packs.iter().map(|p| p.id).collect();
        let mut bytes = Vec::new();
        src.read_packs(&ids, &mut |id, b| {
            bytes.push((id, b.to_vec()));
            true
        })
        .expect("read packs");
        assert!(src.read_packs(&[12345], &mut |_, _| true).is_err(), "a missing pack is an error");
        let dst = RedbStore::create(&dir.path().join("dst.redb")).expect("create");
        let mem = MemoryStore::default();
        for store in [&dst as &dyn Store, &mem] {
            let mut tx = store.begin().expect("begin");
            for (p, (_, b)) in packs.iter().zip(&bytes) {
                tx.put_pack(b, p.metadata, &p.objects).expect("put pack");
            }
            let outside = [PackEntry { key: b"bad".to_vec(), offset: 1, len: u32::MAX }];
            assert!(tx.put_pack(b"short", false, &outside).is_err(), "an object outside its pack");
            tx.commit().expect("commit");
            for e in src.list_objects().expect("list") {
                assert_eq!(
                    store.get(Table::Objects, &e.key).expect("get"),
                    src.get(Table::Objects, &e.key).expect("get")
                );
            }
        }
        let copied = dst.list_packs().expect("list").expect("packs");
        assert_eq!(copied.iter().map(|p| p.objects.len()).collect::<Vec<_>>(), [2, 1]);
        let mut tx = dst.begin().expect("begin");
        tx.put_object(b"k4", b"after a copied pack", false).expect("put");
        tx.commit().expect("commit");
        assert_eq!(dst.get(Table::Objects, b"k4").expect("get").as_deref(), Some(b"after a copied pack".as_slice()));
        assert_eq!(dst.get(Table::Objects, b"k1").expect("get").as_deref(), Some(b"data one".as_slice()));
    }

    #[test]
    fn redb_store_semantics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::create(&dir.path().join("s.redb")).expect("create");
        exercise(&store);
        drop(store);
        let store = RedbStore::open(&dir.path().join("s.redb")).expect("reopen");
        assert!(store.has(Table::Refs, b"a1").expect("has"), "data survives reopen");
    }
}
