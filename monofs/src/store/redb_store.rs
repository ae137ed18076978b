//! The embedded default: one `redb` file per repository (ACID, crash-safe).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, StoreResult, Table, Transaction};

fn def(t: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(t.name())
}

fn err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError(Box::new(e))
}

/// A [`Store`] over one redb database file.
pub struct RedbStore {
    db: Database,
    path: std::path::PathBuf,
}

impl RedbStore {
    /// Creates a new database file with every table.
    pub fn create(path: &Path) -> StoreResult<RedbStore> {
        let db = Database::builder().create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        for t in Table::ALL {
            tx.open_table(def(t)).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(RedbStore { db, path: path.to_owned() })
    }

    /// Opens an existing database file.
    pub fn open(path: &Path) -> StoreResult<RedbStore> {
        let db = Database::builder().open(path).map_err(err)?;
        Ok(RedbStore { db, path: path.to_owned() })
    }
}

impl Store for RedbStore {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(def(table)).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(def(table)).map_err(err)?;
        for item in t.range(prefix..).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            if !k.value().starts_with(prefix) || !f(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }

    fn begin(&self) -> StoreResult<Box<dyn Transaction + '_>> {
        Ok(Box::new(RedbTxn { tx: self.db.begin_write().map_err(err)? }))
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(std::fs::metadata(&self.path).map_err(err)?.len())
    }

    fn compact(&mut self) -> StoreResult<()> {
        self.db.compact().map_err(err)?;
        Ok(())
    }
}

struct RedbTxn {
    tx: redb::WriteTransaction,
}

impl Transaction for RedbTxn {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let t = self.tx.open_table(def(table)).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        let mut t = self.tx.open_table(def(table)).map_err(err)?;
        t.insert(key, value).map_err(err)?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<()> {
        let mut t = self.tx.open_table(def(table)).map_err(err)?;
        t.remove(key).map_err(err)?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().map_err(err)
    }
}
