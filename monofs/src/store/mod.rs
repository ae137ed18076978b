//! Storage backends: ordered byte-key tables with atomic transactions.
//!
//! A backend knows nothing of objects or encryption; the [`crate::Repository`]
//! layer above gives the tables their meaning (docs/FORMAT.md, "Store").

mod memory;
mod redb;

pub use self::redb::{ReadOnlyStore, RedbStore};
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

    /// Calls `f` with each (key, value) whose key starts with `prefix`, in
    /// key order, until it returns `false`.
    fn scan(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()>;

    /// Like [`Store::scan`], but gives only each value's length, which some
    /// backends know without reading the value.
    fn scan_lengths(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], u64) -> bool) -> StoreResult<()> {
        self.scan(table, prefix, &mut |k, v| f(k, v.len() as u64))
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
    fn compact(&mut self) -> StoreResult<()> {
        Ok(())
    }
}

/// Changes that land atomically.
pub trait Transaction {
    /// Reads through the transaction (sees its own writes).
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// Inserts or replaces.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()>;
    /// Inserts an object's stored frame. `metadata` marks directories, chunk
    /// lists and revisions, which a backend may keep apart from file data
    /// so that walking trees reads little.
    fn put_object(&mut self, key: &[u8], value: &[u8], metadata: bool) -> StoreResult<()> {
        let _ = metadata;
        self.put(Table::Objects, key, value)
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
    fn redb_store_semantics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::create(&dir.path().join("s.redb")).expect("create");
        exercise(&store);
        drop(store);
        let store = RedbStore::open(&dir.path().join("s.redb")).expect("reopen");
        assert!(store.has(Table::Refs, b"a1").expect("has"), "data survives reopen");
    }
}
