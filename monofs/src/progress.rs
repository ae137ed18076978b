//! Progress reporting hooks; the CLI draws them, the library only counts.

/// Receives progress of long operations. Every method has a no-op default.
pub trait Progress: Sync {
    /// The amount of work is known: files and bytes to look at.
    fn start(&self, _files: u64, _bytes: u64) {}
    /// Bytes of file content processed.
    fn bytes(&self, _n: u64) {}
    /// One more file done.
    fn file(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
