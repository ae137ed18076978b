//! File bytes in a mounted tree: reads through dirty blocks to stored
//! content, writes into blocks, truncation.

use std::sync::Arc;

use super::node::{BLOCK, FileData};
use crate::content::ChunkCache;
use crate::error::Result;
use crate::repo::Repository;

pub(crate) fn ensure_layout(repo: &Repository, f: &mut FileData) -> Result<Arc<crate::content::Layout>> {
    if f.layout.is_none() {
        f.set_layout(Arc::new(repo.layout(&f.base, f.base_len)?), repo.zero_chunk().1);
    }
    Ok(f.layout.clone().unwrap_or_default())
}

/// Fills `buf` with stored bytes at `offset` (zeros past `base_size`).
fn read_base(repo: &Repository, cache: &ChunkCache, f: &mut FileData, offset: u64, buf: &mut [u8]) -> Result<()> {
    buf.fill(0);
    if offset >= f.base_size {
        return Ok(());
    }
    let n = ((f.base_size - offset) as usize).min(buf.len());
    let layout = ensure_layout(repo, f)?;
    repo.read_at(&f.base, &layout, cache, offset, &mut buf[..n])?;
    Ok(())
}

/// Reads up to `len` bytes at `offset`.
pub(crate) fn read(
    repo: &Repository,
    cache: &ChunkCache,
    f: &mut FileData,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>> {
    if offset >= f.size {
        return Ok(Vec::new());
    }
    let len = (len as u64).min(f.size - offset) as usize;
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let pos = offset + done as u64;
        let (index, within) = (pos / BLOCK, (pos % BLOCK) as usize);
        let n = (BLOCK as usize - within).min(len - done);
        match f.blocks.get(&index) {
            Some(block) => out[done..done + n].copy_from_slice(&block[within..within + n]),
            None => {
                // Runs of clean blocks are read in one go.
                let mut end = done + n;
                while end < len && !f.blocks.contains_key(&((offset + end as u64) / BLOCK)) {
                    end = (end + BLOCK as usize).min(len);
                }
                read_base(repo, cache, f, pos, &mut out[done..end])?;
                done = end;
                continue;
            }
        }
        done += n;
    }
    Ok(out)
}

/// Writes `data` at `offset`, growing the file as needed.
pub(crate) fn write(repo: &Repository, cache: &ChunkCache, f: &mut FileData, offset: u64, data: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        let pos = offset + done as u64;
        let (index, within) = (pos / BLOCK, (pos % BLOCK) as usize);
        let n = (BLOCK as usize - within).min(data.len() - done);
        if !f.blocks.contains_key(&index) {
            let mut block = vec![0u8; BLOCK as usize];
            // A block written in full needs no old bytes.
            if n < BLOCK as usize && index * BLOCK < f.base_size.min(f.size) {
                read_base(repo, cache, f, index * BLOCK, &mut block)?;
                let valid = f.size.saturating_sub(index * BLOCK).min(BLOCK) as usize;
                block[valid..].fill(0);
            }
            f.blocks.insert(index, Arc::new(block));
        }
        if let Some(block) = f.blocks.get_mut(&index) {
            Arc::make_mut(block)[within..within + n].copy_from_slice(&data[done..done + n]);
        }
        done += n;
    }
    f.size = f.size.max(offset + data.len() as u64);
    f.dirty = true;
    f.version += 1;
    Ok(())
}

/// Sets the size; bytes past a shrink are gone (a later grow reads zeros).
pub(crate) fn truncate(f: &mut FileData, size: u64) {
    if size < f.size {
        f.blocks.retain(|&i, _| i * BLOCK < size);
        if let Some(block) = f.blocks.get_mut(&(size / BLOCK)) {
            Arc::make_mut(block)[(size % BLOCK) as usize..].fill(0);
        }
        f.base_size = f.base_size.min(size);
        f.floor = f.floor.min(size);
    }
    f.size = size;
    f.dirty = true;
    f.version += 1;
}

/// Reads a whole file sequentially (for storing it), block by block.
pub(crate) struct Merged<'a> {
    pub repo: &'a Repository,
    pub cache: &'a ChunkCache,
    pub file: &'a mut FileData,
    pub pos: u64,
    /// The id of the chunks a run of zeros is cut into: stored ones in the
    /// file's layout are zeros that need not be read.
    pub zero_chunk: Option<crate::id::ObjectId>,
}

impl std::io::Read for Merged<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(4 << 20);
        let bytes = read(self.repo, self.cache, self.file, self.pos, want).map_err(std::io::Error::other)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.pos += bytes.len() as u64;
        Ok(bytes.len())
    }
}

impl crate::content::Source for Merged<'_> {
    /// Stored chunks of zeros (see [`Merged::zero_chunk`]), then bytes past
    /// the stored ones, up to the next written block.
    fn zeros_ahead(&self) -> u64 {
        let f = &self.file;
        let mut end = self.pos;
        if let (Some(zero), Some(layout)) = (self.zero_chunk, &f.layout) {
            let at = layout.partition_point(|(off, _, len)| off + len <= end);
            for (off, id, len) in &layout[at..] {
                if *id != zero || off + len > f.base_size {
                    break;
                }
                end = off + len;
            }
        }
        if end >= f.base_size {
            end = end.max(f.size);
        }
        let written = f.blocks.range(self.pos / BLOCK..).next().map_or(u64::MAX, |(i, _)| (i * BLOCK).max(self.pos));
        end.min(written).min(f.size).saturating_sub(self.pos)
    }

    fn skip(&mut self, n: u64) {
        self.pos += n;
    }
}

/// The runs of a file known to be zeros, in order: stored chunks of zeros
/// (`zero` is their id) and bytes past the stored ones, less the blocks
/// written since (which count as data whatever they hold).
pub(crate) fn holes(repo: &Repository, f: &mut FileData, zero: crate::id::ObjectId) -> Result<Vec<(u64, u64)>> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut add = |start: u64, end: u64| match runs.last_mut() {
        Some(last) if last.1 == start => last.1 = end,
        _ => runs.push((start, end)),
    };
    if f.base_size > 0 && !matches!(f.base, crate::object::Content::Inline(_)) {
        for (off, id, len) in ensure_layout(repo, f)?.iter() {
            if *off >= f.base_size {
                break;
            }
            if *id == zero {
                add(*off, (off + len).min(f.base_size));
            }
        }
    }
    if f.base_size < f.size {
        add(f.base_size, f.size);
    }
    // Written blocks split the runs.
    let mut out = Vec::with_capacity(runs.len());
    for (start, end) in runs {
        let mut from = start;
        for (i, _) in f.blocks.range(start / BLOCK..=(end - 1) / BLOCK) {
            let (b0, b1) = (i * BLOCK, (i + 1) * BLOCK);
            if b0 > from {
                out.push((from, b0.min(end)));
            }
            from = from.max(b1);
        }
        if from < end {
            out.push((from, end));
        }
    }
    Ok(out)
}

/// What a read of stored bytes needs, taken under the state lock so the
/// chunk I/O can run without it.
pub(crate) struct CleanRead {
    pub base: crate::object::Content,
    pub layout: Arc<crate::content::Layout>,
    /// Bytes to read (clamped to the file and to stored bytes).
    pub len: usize,
}

/// A plan for reading `len` bytes at `offset` when no dirty block overlaps
/// the range and it lies within the stored bytes; `None` otherwise.
pub(crate) fn clean_read(repo: &Repository, f: &mut FileData, offset: u64, len: usize) -> Result<Option<CleanRead>> {
    if offset >= f.size {
        return Ok(Some(CleanRead { base: f.base.clone(), layout: Arc::default(), len: 0 }));
    }
    let end = offset + (len as u64).min(f.size - offset);
    if end > f.base_size || f.blocks.range(offset / BLOCK..=(end - 1) / BLOCK).next().is_some() {
        return Ok(None);
    }
    let layout = ensure_layout(repo, f)?;
    Ok(Some(CleanRead { base: f.base.clone(), layout, len: (end - offset) as usize }))
}

/// Chunks of `layout` that start within `ahead` bytes after `end`.
pub(crate) fn following_chunks(layout: &crate::content::Layout, end: u64, ahead: u64) -> Vec<crate::id::ObjectId> {
    let first = layout.partition_point(|(off, _, len)| off + len <= end);
    layout[first..].iter().take_while(|(off, _, _)| *off < end + ahead).map(|(_, id, _)| *id).collect()
}
