//! Writeback while a copy arrives: a file being filled is flushed to disk
//! every [`FLUSH_EVERY`] on a thread of its own, so that the durable flush
//! at the end finds little left to write and the disk works alongside the
//! transfer rather than after it. An extra flush never changes what is
//! stored.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the file is flushed (25-200 ms measured alike; see
/// docs/BENCHMARKS.md, "Sync").
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Flushes a file until dropped.
pub(crate) struct Flusher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    /// Flushes `file` (through a handle of its own).
    pub fn start(file: &File) -> Flusher {
        Flusher::run(file.try_clone().ok())
    }

    /// Flushes the file at `path`, when it can be opened.
    pub fn start_path(path: &Path) -> Flusher {
        Flusher::run(File::open(path).ok())
    }

    fn run(file: Option<File>) -> Flusher {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = file.map(|f| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(FLUSH_EVERY);
                    let _ = f.sync_data();
                }
            })
        });
        Flusher { stop, thread }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
