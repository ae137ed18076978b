//! An in-memory store for tests and throwaway repositories.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use super::{Store, StoreError, StoreResult, Table, Transaction};

type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; Table::ALL.len()];

fn index(t: Table) -> usize {
    Table::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// Tables in `BTreeMap`s; transactions buffer writes until commit.
#[derive(Default)]
pub struct MemoryStore {
    tables: RwLock<Tables>,
    writer: Mutex<()>,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError(Box::new(std::io::Error::other("memory store lock poisoned")))
}

impl Store for MemoryStore {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.tables.read().map_err(poisoned)?[index(table)].get(key).cloned())
    }

    fn scan(&self, table: Table, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()> {
        let tables = self.tables.read().map_err(poisoned)?;
        for (k, v) in tables[index(table)].range(prefix.to_vec()..) {
            if !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn begin(&self) -> StoreResult<Box<dyn Transaction + '_>> {
        let guard = self.writer.lock().map_err(poisoned)?;
        Ok(Box::new(MemoryTxn { store: self, _guard: guard, changes: Default::default() }))
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        let tables = self.tables.read().map_err(poisoned)?;
        Ok(tables.iter().flat_map(|t| t.iter()).map(|(k, v)| (k.len() + v.len()) as u64).sum())
    }
}

struct MemoryTxn<'a> {
    store: &'a MemoryStore,
    _guard: std::sync::MutexGuard<'a, ()>,
    changes: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; Table::ALL.len()],
}

impl Transaction for MemoryTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        match self.changes[index(table)].get(key) {
            Some(change) => Ok(change.clone()),
            None => self.store.get(table, key),
        }
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.changes[index(table)].insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<()> {
        self.changes[index(table)].insert(key.to_vec(), None);
        Ok(())
    }

    fn clear(&mut self, table: Table) -> StoreResult<()> {
        let keys: Vec<Vec<u8>> = self.store.tables.read().map_err(poisoned)?[index(table)].keys().cloned().collect();
        let changes = &mut self.changes[index(table)];
        changes.retain(|_, v| v.is_none());
        for k in keys {
            changes.insert(k, None);
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> StoreResult<()> {
        let mut tables = self.store.tables.write().map_err(poisoned)?;
        let MemoryTxn { changes, .. } = *self;
        for (i, table) in changes.into_iter().enumerate() {
            for (k, v) in table {
                match v {
                    Some(v) => tables[i].insert(k, v),
                    None => tables[i].remove(&k),
                };
            }
        }
        Ok(())
    }
}
