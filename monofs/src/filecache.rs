//! Whole-file copies of stored contents, keyed by content id, in a plain
//! directory: what the FUSE adapter passes reads of unchanged files through
//! to (see [`crate::fuse::FuseFs::with_file_cache`]), so the kernel reads
//! them as local files and keeps them in its page cache across mounts. The
//! copies are plaintext: only for repositories that are not encrypted.
//!
//! A copy is written once, to a temporary name, and renamed into place, so
//! a reader never sees half of one and two writers cannot clash. The
//! directory is kept under a size limit by removing the least recently
//! filled copies when a new one is written.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::id::ObjectId;

/// Bytes read per step while filling a copy.
const FILL_STEP: usize = 1 << 20;

/// A directory of whole-file copies.
#[derive(Debug)]
pub struct FileCache {
    dir: PathBuf,
    limit: u64,
    fills: AtomicU64,
}

impl FileCache {
    /// The cache in `dir` (created when first filled), holding at most
    /// about `limit` bytes.
    pub fn new(dir: &Path, limit: u64) -> FileCache {
        FileCache { dir: dir.to_owned(), limit, fills: AtomicU64::new(0) }
    }

    /// The path of the complete copy of content `id` (`size` bytes long),
    /// made on a miss from `read(offset, len)`.
    pub fn get_or_fill(
        &self,
        id: &ObjectId,
        size: u64,
        read: &mut dyn FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
    ) -> std::io::Result<PathBuf> {
        let path = self.dir.join(id.to_hex());
        if fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            return Ok(path);
        }
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let n = self.fills.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".fill-{}-{}-{n}", id.to_hex(), std::process::id()));
        let filled = (|| {
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            let mut offset = 0u64;
            while offset < size {
                let want = FILL_STEP.min((size - offset) as usize);
                let bytes = read(offset, want)?;
                if bytes.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "content shorter than its size",
                    ));
                }
                f.write_all(&bytes)?;
                offset += bytes.len() as u64;
            }
            f.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = filled {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.prune()?;
        Ok(path)
    }

    /// Removes the oldest copies (and leftovers of interrupted fills)
    /// until the directory holds at most the limit.
    pub fn prune(&self) -> std::io::Result<()> {
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
        let mut total = 0;
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let stale_fill = entry.file_name().to_string_lossy().starts_with(".fill-")
                && meta.modified().is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
            if stale_fill {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            total += meta.len();
            entries.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), entry.path()));
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.limit {
                break;
            }
            // A copy still open elsewhere stays readable through its open file.
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; crate::id::ID_LEN])
    }

    #[test]
    fn fills_once_and_stays_under_its_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(&dir.path().join("files"), 3 << 20);
        let data: Vec<u8> = (0..(2u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
        let reads = std::cell::Cell::new(0);
        let mut read = |off: u64, len: usize| {
            reads.set(reads.get() + 1);
            Ok(data[off as usize..(off as usize + len).min(data.len())].to_vec())
        };
        let path = cache.get_or_fill(&id(1), data.len() as u64, &mut read).expect("fill");
        assert_eq!(fs::read(&path).expect("read back"), data);
        let again = cache.get_or_fill(&id(1), data.len() as u64, &mut |_, _| panic!("no second fill")).expect("hit");
        assert_eq!(again, path);
        assert_eq!(reads.get(), 3, "1 MiB steps");
        // A second 2 MiB copy exceeds the 3 MiB limit: the older one goes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let other = cache.get_or_fill(&id(2), data.len() as u64, &mut read).expect("fill other");
        assert!(other.exists() && !path.exists());
        // A short read is an error and leaves nothing behind.
        assert!(cache.get_or_fill(&id(3), 10, &mut |_, _| Ok(Vec::new())).is_err());
        let names: Vec<String> = fs::read_dir(dir.path().join("files"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![id(2).to_hex()]);
    }
}
