//! Loads in flight, shared: when several threads want the same thing at
//! once (a read-ahead and the read it runs ahead of), one loads it and the
//! others wait for its result instead of loading it again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// One load's outcome, once known: `None` when it failed (waiters then
/// load for themselves, to get their own error).
type Slot<V> = Arc<OnceLock<Option<V>>>;

/// The loads in flight, by key.
pub(crate) struct Flights<K, V> {
    loading: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights { loading: Mutex::new(HashMap::new()) }
    }
}

/// Settles a slot (failed, unless set before) and forgets it, however the
/// load ends.
struct Settle<'a, K: Hash + Eq, V> {
    flights: &'a Flights<K, V>,
    key: K,
    slot: Slot<V>,
}

impl<K: Hash + Eq, V> Drop for Settle<'_, K, V> {
    fn drop(&mut self) {
        let _ = self.slot.set(None);
        self.flights.loading.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// Whether `key` is being loaded.
    pub fn contains(&self, key: &K) -> bool {
        self.loading.lock().unwrap_or_else(PoisonError::into_inner).contains_key(key)
    }

    /// `load()`'s result, or that of the thread already loading `key`.
    /// `load` should also store what it loads where later callers look
    /// first, so that they need not come here.
    pub fn load<E>(&self, key: K, load: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        let theirs = {
            let mut loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
            match loading.get(&key) {
                Some(slot) => Err(slot.clone()),
                None => {
                    let slot = Slot::default();
                    loading.insert(key.clone(), slot.clone());
                    Ok(slot)
                }
            }
        };
        match theirs {
            Ok(mine) => {
                let settle = Settle { flights: self, key, slot: mine };
                let value = load()?;
                let _ = settle.slot.set(Some(value.clone()));
                Ok(value)
            }
            Err(theirs) => match theirs.wait() {
                Some(value) => Ok(value.clone()),
                None => load(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_loads_of_one_key_run_once() {
        let flights = Flights::<u32, Arc<Vec<u8>>>::default();
        let runs = AtomicUsize::new(0);
        let go = std::sync::Barrier::new(8);
        let got: Vec<Arc<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        go.wait();
                        flights
                            .load(7, || -> Result<_, ()> {
                                runs.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(100));
                                Ok(Arc::new(vec![1, 2, 3]))
                            })
                            .expect("load")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("join")).collect()
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one load for eight callers");
        assert!(got.iter().all(|g| Arc::ptr_eq(g, &got[0])));
        assert!(!flights.contains(&7), "forgotten once done");
    }

    #[test]
    fn a_failed_load_is_retried_by_each_waiter() {
        let flights = Flights::<u32, u32>::default();
        let go = std::sync::Barrier::new(4);
        let errors = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    go.wait();
                    let r = flights.load(1, || -> Result<u32, &str> {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Err("broken")
                    });
                    assert_eq!(r, Err("broken"));
                    errors.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(errors.load(Ordering::SeqCst), 4);
        assert!(!flights.contains(&1));
    }
}
