//! Parallel object writing: many threads hash, compress and seal; one
//! thread owns the write transaction and stores what they send.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Sender, bounded};

use super::Repository;
use crate::crypto::Codec;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::Kind;
use crate::store::{Store, Table, Transaction};

/// Objects in flight between the sealing threads and the writer.
const QUEUE_DEPTH: usize = 256;

/// Where sealing threads put objects; shared by reference across threads.
pub struct ObjectSink<'a> {
    codec: &'a Codec,
    store: &'a dyn Store,
    seen: Mutex<HashSet<ObjectId>>,
    out: Sender<(ObjectId, Vec<u8>, Kind)>,
    new_objects: AtomicU64,
    new_bytes: AtomicU64,
}

impl ObjectSink<'_> {
    /// Stores an object unless it already exists; returns its id.
    pub fn put(&self, kind: Kind, plain: &[u8]) -> Result<ObjectId> {
        super::check_size(kind, plain)?;
        let id = self.codec.id(kind, plain);
        let fresh = self.seen.lock().map_err(|_| Error::Aborted)?.insert(id);
        if !fresh || self.store.has(Table::Objects, id.as_bytes())? {
            return Ok(id);
        }
        let sealed = self.codec.seal(&id, kind, plain);
        self.new_objects.fetch_add(1, Ordering::Relaxed);
        self.new_bytes.fetch_add(sealed.len() as u64, Ordering::Relaxed);
        self.out.send((id, sealed, kind)).map_err(|_| Error::Aborted)?;
        Ok(id)
    }

    /// Objects sent that the store did not have yet.
    pub fn new_objects(&self) -> u64 {
        self.new_objects.load(Ordering::Relaxed)
    }

    /// Stored bytes of those objects.
    pub fn new_bytes(&self) -> u64 {
        self.new_bytes.load(Ordering::Relaxed)
    }
}

/// Counts from a finished write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Objects added to the store.
    pub new_objects: u64,
    /// Their stored (compressed, sealed) bytes.
    pub new_bytes: u64,
}

impl Repository {
    /// Runs `produce` on a helper thread with an [`ObjectSink`] while this
    /// thread writes what it sends into a new transaction. Returns the
    /// producer's value and the still-open transaction, so the caller can
    /// add refs and commit everything atomically.
    pub fn write_objects<T: Send>(
        &self,
        produce: impl FnOnce(&ObjectSink<'_>) -> Result<T> + Send,
    ) -> Result<(T, Box<dyn Transaction + '_>, WriteStats)> {
        let mut tx = self.begin()?;
        let (send, recv) = bounded::<(ObjectId, Vec<u8>, Kind)>(QUEUE_DEPTH);
        let codec = self.codec();
        let store = self.store();
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                let sink = ObjectSink {
                    codec,
                    store,
                    seen: Mutex::new(HashSet::new()),
                    out: send,
                    new_objects: AtomicU64::new(0),
                    new_bytes: AtomicU64::new(0),
                };
                let value = produce(&sink);
                (value, WriteStats { new_objects: sink.new_objects(), new_bytes: sink.new_bytes() })
            });
            let mut write_error = None;
            for (id, sealed, kind) in recv.iter() {
                if let Err(e) = tx.put_object(id.as_bytes(), &sealed, kind != Kind::Chunk) {
                    write_error = Some(e);
                    break;
                }
            }
            // Dropping the receiver makes every further send fail, which
            // stops the producer promptly after a write error.
            drop(recv);
            let (value, stats) = worker.join().map_err(|_| Error::Aborted)?;
            if let Some(e) = write_error {
                return Err(e.into());
            }
            Ok((value?, stats))
        })
        .map(|(value, stats)| (value, tx, stats))
    }
}
