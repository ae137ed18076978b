//! Reading a sparse file for a snapshot: its holes, which the file system
//! tells of (`lseek` SEEK_DATA), are chunked without being read or cut
//! (see [`crate::content::Source`]), so a 100 GiB disk image holding a few
//! GiB of data costs about its data.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};

use nix::unistd::{Whence, lseek};

use crate::content::{INLINE_MAX, Source};

/// A file read from `pos` on, which knows where its holes are.
pub(super) struct SparseFile {
    file: File,
    pos: u64,
}

impl SparseFile {
    /// `file` if it looks sparse (fewer blocks than its size needs) and is
    /// too large to be stored inline, handed back otherwise.
    pub fn of(file: File) -> Result<SparseFile, File> {
        match file.metadata() {
            Ok(m) if m.len() > INLINE_MAX as u64 && m.blocks() * 512 < m.len() => Ok(SparseFile { file, pos: 0 }),
            _ => Err(file),
        }
    }
}

impl Read for SparseFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Source for SparseFile {
    fn zeros_ahead(&self) -> u64 {
        let Ok(at) = i64::try_from(self.pos) else { return 0 };
        match lseek(&self.file, at, Whence::SeekData) {
            Ok(data) => (data as u64).saturating_sub(self.pos),
            // No data at or after `pos`: a hole to the end.
            Err(nix::errno::Errno::ENXIO) => self.file.metadata().map_or(0, |m| m.len().saturating_sub(self.pos)),
            // A file system without SEEK_DATA: no holes known.
            Err(_) => 0,
        }
    }

    fn skip(&mut self, n: u64) {
        self.pos += n;
    }
}
