//! File content: cutting bytes into chunks (FastCDC) and reading them back.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{ChunkList, ChunkRef, Content, Kind, MAX_FANOUT};
use crate::repo::{ChunkerParams, ObjectSink, Repository};

/// Files up to this size are stored inside their directory entry.
pub const INLINE_MAX: usize = 256;

/// Bytes read from a file per round; chunks inside a round are sealed in
/// parallel.
const SEGMENT: usize = 8 << 20;

/// How files are cut, for one repository.
#[derive(Clone, Copy, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
}

impl Chunker {
    /// The chunker of `repo` (seeded from the key when encrypted).
    pub fn for_repo(repo: &Repository) -> Chunker {
        Chunker { params: repo.config().chunker, seed: repo.codec().keys().map_or(0, |k| k.chunker_seed()) }
    }

    fn cut<'a>(&self, data: &'a [u8]) -> FastCDC<'a> {
        FastCDC::with_level_and_seed(
            data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            Normalization::Level1,
            self.seed,
        )
    }

    /// Reads `reader` to its end and stores its bytes; returns the content
    /// reference and the number of bytes read. `io_path` names errors.
    pub fn store(
        &self,
        sink: &ObjectSink<'_>,
        reader: &mut dyn Read,
        io_path: &std::path::Path,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<(Content, u64)> {
        let mut buf = Vec::with_capacity(INLINE_MAX + 1);
        reader.take(INLINE_MAX as u64 + 1).read_to_end(&mut buf).map_err(|e| Error::io(io_path, e))?;
        if buf.is_empty() {
            return Ok((Content::Empty, 0));
        }
        if buf.len() <= INLINE_MAX {
            let len = buf.len() as u64;
            on_bytes(len);
            return Ok((Content::Inline(buf), len));
        }
        let (refs, total) = self.store_chunks(sink, &mut Dense(reader), buf, Edit::default(), io_path, on_bytes)?;
        Ok((build_list(sink, refs)?, total))
    }

    /// Stores a new version of a file whose old version, cut by this
    /// chunker into `edit.old`, changed only at or after `edit.start` (an
    /// old chunk boundary) and, when `edit.resync_after` is set, only
    /// before that offset with the length kept (with no old version,
    /// `edit.old` is empty and `edit.start` 0). `source` gives the new
    /// bytes from `edit.start`. The old chunks before the change are kept
    /// without reading them, and so are those after it from the first cut
    /// that meets an old boundary again; long runs of zeros the source
    /// knows of (holes) are not read at all. The result is the same as
    /// [`Chunker::store`] of the whole new file (if longer than
    /// [`INLINE_MAX`]), at the cost of the changed part only; the new
    /// version's [`Layout`] comes with it.
    pub fn store_edit(
        &self,
        sink: &ObjectSink<'_>,
        reader: &mut dyn Source,
        edit: Edit<'_>,
        io_path: &std::path::Path,
    ) -> Result<(Content, u64, Layout)> {
        let (refs, total) = self.store_chunks(sink, reader, Vec::new(), edit, io_path, |_| {})?;
        let mut offset = 0;
        let layout = refs
            .iter()
            .map(|r| {
                offset += r.size;
                (offset - r.size, r.id, r.size)
            })
            .collect();
        Ok((build_list(sink, refs)?, total, layout))
    }

    /// The largest chunk this chunker cuts.
    pub fn max_chunk(&self) -> u64 {
        u64::from(self.params.max)
    }

    /// The first chunk a long run of zeros is cut into.
    fn zeros(&self) -> Vec<u8> {
        let mut zeros = vec![0u8; 2 * self.params.max as usize];
        let len = self.cut(&zeros).next().map_or(zeros.len(), |c| c.length);
        zeros.truncate(len);
        zeros
    }

    /// Cuts and stores what `reader` gives after `buf`, as `edit` allows;
    /// returns the file's chunks and length (the callers make the list).
    fn store_chunks(
        &self,
        sink: &ObjectSink<'_>,
        reader: &mut dyn Source,
        mut buf: Vec<u8>,
        edit: Edit<'_>,
        io_path: &std::path::Path,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<(Vec<ChunkRef>, u64)> {
        let io = |e| Error::io(io_path, e);
        let kept = edit.old.iter().take_while(|(off, _, _)| *off < edit.start);
        let mut refs: Vec<ChunkRef> = kept.map(|&(_, id, size)| ChunkRef { id, size }).collect();
        let mut total = edit.start;
        let mut eof = false;
        let mut zero_chunk = None;
        while !eof {
            // `buf` holds the bytes from `total`, a chunk boundary. Where a
            // run of zeros follows, its chunks are known without cutting or
            // reading it: each is `zero_len` long while at least `max`
            // bytes of the run remain (FastCDC cuts a zero run alike
            // wherever it starts, and a file end closer than `max` changes
            // the cut, so the last `max` bytes go the usual way).
            let ahead = reader.zeros_ahead();
            if ahead > 0 && buf.iter().all(|b| *b == 0) {
                let (zero_len, zero_id) = match zero_chunk {
                    Some(z) => z,
                    None => {
                        let zeros = self.zeros();
                        *zero_chunk.insert((zeros.len() as u64, sink.put(Kind::Chunk, &zeros)?))
                    }
                };
                let run = buf.len() as u64 + ahead;
                let n = run.saturating_sub(u64::from(self.params.max)) / zero_len;
                for _ in 0..n {
                    refs.push(ChunkRef { id: zero_id, size: zero_len });
                    on_bytes(zero_len);
                }
                let skip = n * zero_len;
                total += skip;
                if skip <= buf.len() as u64 {
                    buf.drain(..skip as usize);
                } else {
                    reader.skip(skip - buf.len() as u64);
                    buf.clear();
                }
            }
            // An edit that may end reads little more than its changes: a
            // few chunks past them usually meet an old boundary.
            let segment = edit.resync_after.map_or(SEGMENT, |after| {
                let max = self.params.max as usize;
                (after.saturating_sub(total) as usize).saturating_add(4 * max).min(SEGMENT)
            });
            let want = segment.saturating_sub(buf.len());
            let got = reader.take(want as u64).read_to_end(&mut buf).map_err(io)?;
            eof = got < want;
            let mut cuts: Vec<(usize, usize)> = self.cut(&buf).map(|c| (c.offset, c.length)).collect();
            // FastCDC cuts differently when less than `max` bytes remain, so
            // a chunk starting that close to the buffer edge is carried into
            // the next round: cut points then equal those of one pass over
            // the whole file, whatever the buffer size.
            let mut carry_from = if eof {
                buf.len()
            } else {
                let keep = cuts.iter().take_while(|c| c.0 + self.params.max as usize <= buf.len()).count();
                cuts.truncate(keep);
                cuts.last().map_or(0, |c| c.0 + c.1)
            };
            let resync = edit.resync_after.and_then(|after| {
                cuts.iter().enumerate().find_map(|(i, &(off, len))| {
                    let end = total + (off + len) as u64;
                    let at = edit.old.binary_search_by_key(&end, |c| c.0).ok()?;
                    (end >= after).then_some((i + 1, at))
                })
            });
            if let Some((upto, _)) = resync {
                cuts.truncate(upto);
                carry_from = cuts.last().map_or(0, |c| c.0 + c.1);
            }
            let ids: Vec<Result<ObjectId>> = crate::parallel::io_pool()
                .install(|| cuts.par_iter().map(|&(off, len)| sink.put(Kind::Chunk, &buf[off..off + len])).collect());
            for ((_, len), id) in cuts.iter().zip(ids) {
                refs.push(ChunkRef { id: id?, size: *len as u64 });
                total += *len as u64;
                on_bytes(*len as u64);
            }
            if let Some((_, at)) = resync {
                // The same bytes from an old boundary on: the same chunks.
                for &(_, id, size) in &edit.old[at..] {
                    refs.push(ChunkRef { id, size });
                    total += size;
                }
                break;
            }
            buf.drain(..carry_from);
        }
        Ok((refs, total))
    }
}

/// What [`Chunker::store_edit`] needs to know of a file's old version.
#[derive(Clone, Copy, Default)]
pub struct Edit<'a> {
    /// The old version's chunks (its [`Layout`]).
    pub old: &'a [(u64, ObjectId, u64)],
    /// Where the new bytes are read from: the old chunks before it are kept.
    pub start: u64,
    /// The end of the last change, when the length is unchanged: from the
    /// first cut at or after it that falls on an old boundary, the old
    /// chunks are kept.
    pub resync_after: Option<u64>,
}

/// The bytes of a file for [`Chunker::store_edit`]: read in order, and
/// able to tell of runs of zeros ahead that need not be read.
pub trait Source: Read {
    /// How many of the bytes from the next one read are known to be zeros
    /// (a hole of a sparse file, or stored chunks of zeros); 0 when unknown.
    fn zeros_ahead(&self) -> u64 {
        0
    }

    /// Moves past `n` bytes, all within what [`Source::zeros_ahead`] told.
    fn skip(&mut self, n: u64);
}

/// A reader that knows of no holes.
struct Dense<'a>(&'a mut dyn Read);

impl Read for Dense<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Source for Dense<'_> {
    /// Never called: a dense reader tells of no zeros ahead.
    fn skip(&mut self, n: u64) {
        let _ = std::io::copy(&mut (&mut *self.0).take(n), &mut std::io::sink());
    }
}

/// Turns a file's chunk references into its content reference, adding list
/// levels until the top node fits [`MAX_FANOUT`].
fn build_list(sink: &ObjectSink<'_>, mut refs: Vec<ChunkRef>) -> Result<Content> {
    if let [one] = refs.as_slice() {
        return Ok(Content::Chunk(one.id));
    }
    let mut level = 0u8;
    loop {
        if refs.len() <= MAX_FANOUT {
            let node = ChunkList { level, entries: refs };
            return Ok(Content::List(sink.put(Kind::ChunkList, &node.encode())?));
        }
        let mut upper = Vec::with_capacity(refs.len() / MAX_FANOUT + 1);
        for group in refs.chunks(MAX_FANOUT) {
            let node = ChunkList { level, entries: group.to_vec() };
            upper.push(ChunkRef { id: sink.put(Kind::ChunkList, &node.encode())?, size: node.size() });
        }
        refs = upper;
        level += 1;
    }
}

/// A piece of a file's content, as [`Repository::read_content`] gives it.
pub enum Piece<'a> {
    /// These bytes.
    Data(&'a [u8]),
    /// This many zeros.
    Zeros(u64),
}

impl Piece<'_> {
    /// How many bytes it stands for.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Data(bytes) => bytes.len() as u64,
            Piece::Zeros(n) => *n,
        }
    }

    /// Whether it stands for no byte at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Repository {
    /// Calls `out` with the bytes of a file of `size` bytes in order, one
    /// verified chunk at a time (a chunk of zeros as their count, known by
    /// its id without reading it); fails if the content does not add up to
    /// `size`.
    pub fn read_content(
        &self,
        content: &Content,
        size: u64,
        out: &mut dyn FnMut(Piece<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut total = 0u64;
        let mut counted = |piece: Piece<'_>| {
            total += piece.len();
            out(piece)
        };
        let id = match content {
            Content::Empty => None,
            Content::Inline(data) => {
                counted(Piece::Data(data))?;
                None
            }
            Content::Chunk(id) => {
                counted(Piece::Data(&self.read(id, Kind::Chunk)?))?;
                Some((*id, Kind::Chunk))
            }
            Content::List(id) => {
                self.read_list(id, &mut counted)?;
                Some((*id, Kind::ChunkList))
            }
        };
        if total != size {
            let (id, kind) = id.unwrap_or((ObjectId::default(), Kind::Dir));
            return Err(Error::Malformed {
                id,
                kind,
                source: crate::encoding::DecodeError::Invalid { what: "file size", value: size },
            });
        }
        Ok(())
    }

    fn read_list(&self, id: &ObjectId, out: &mut dyn FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        let list = self.read_chunk_list(id)?;
        for entry in &list.entries {
            if list.level == 0 {
                let (zero_len, zero_id) = self.zero_chunk();
                if entry.id == zero_id && entry.size == zero_len {
                    // Its id says what it holds: a run of a sparse file,
                    // given without reading (or hashing) it again.
                    out(Piece::Zeros(zero_len))?;
                    continue;
                }
                let chunk = self.read(&entry.id, Kind::Chunk)?;
                if chunk.len() as u64 != entry.size {
                    return Err(Error::Malformed {
                        id: *id,
                        kind: Kind::ChunkList,
                        source: crate::encoding::DecodeError::Invalid { what: "chunk size", value: entry.size },
                    });
                }
                out(Piece::Data(&chunk))?;
            } else {
                self.read_list(&entry.id, out)?;
            }
        }
        Ok(())
    }

    /// Visits every chunk and list node below the content of a file of
    /// `size` bytes: `f(id, kind, bytes covered)`. Lists are read, chunks are
    /// not; a list node for which `f` returns `false` is not descended into.
    pub fn content_objects(
        &self,
        content: &Content,
        size: u64,
        f: &mut dyn FnMut(ObjectId, Kind, u64) -> bool,
    ) -> Result<()> {
        match content {
            Content::Empty | Content::Inline(_) => Ok(()),
            Content::Chunk(id) => {
                f(*id, Kind::Chunk, size);
                Ok(())
            }
            Content::List(id) => self.list_objects(id, size, f),
        }
    }

    fn list_objects(&self, id: &ObjectId, size: u64, f: &mut dyn FnMut(ObjectId, Kind, u64) -> bool) -> Result<()> {
        if !f(*id, Kind::ChunkList, size) {
            return Ok(());
        }
        let list = self.read_chunk_list(id)?;
        for e in &list.entries {
            if list.level == 0 {
                f(e.id, Kind::Chunk, e.size);
            } else {
                self.list_objects(&e.id, e.size, f)?;
            }
        }
        Ok(())
    }
}

/// Where each chunk of a file lies: (file offset, chunk id, length), in order.
pub type Layout = Vec<(u64, ObjectId, u64)>;

/// A bounded cache of verified, decompressed chunks, shared by readers.
pub struct ChunkCache {
    inner: std::sync::Mutex<CacheInner>,
    capacity: usize,
    /// Chunks being read: a read-ahead and the read it runs ahead of wait
    /// for one another instead of reading a chunk twice.
    flights: crate::flights::Flights<ObjectId, bytes::Bytes>,
}

#[derive(Default)]
struct CacheInner {
    map: std::collections::HashMap<ObjectId, bytes::Bytes>,
    order: std::collections::VecDeque<ObjectId>,
    bytes: usize,
}

impl ChunkCache {
    /// A cache holding up to `capacity` bytes of chunks.
    pub fn new(capacity: usize) -> ChunkCache {
        ChunkCache { inner: std::sync::Mutex::new(CacheInner::default()), capacity, flights: Default::default() }
    }

    /// Whether the chunk is cached or being read.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.inner.lock().is_ok_and(|inner| inner.map.contains_key(id)) || self.flights.contains(id)
    }

    /// The chunk, from the cache or read (and verified) from `repo`; a
    /// chunk another thread is reading is waited for, not read twice.
    pub fn get(&self, repo: &Repository, id: &ObjectId) -> Result<bytes::Bytes> {
        if let Some(hit) = self.inner.lock().map_err(|_| Error::Aborted)?.map.get(id) {
            return Ok(hit.clone());
        }
        self.flights.load(*id, || {
            let data = repo.read_shared(id, Kind::Chunk)?;
            self.insert(*id, data.clone())?;
            Ok(data)
        })
    }

    fn insert(&self, id: ObjectId, data: bytes::Bytes) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| Error::Aborted)?;
        if inner.map.insert(id, data.clone()).is_none() {
            inner.order.push_back(id);
            inner.bytes += data.len();
        }
        while inner.bytes > self.capacity {
            let Some(old) = inner.order.pop_front() else { break };
            if let Some(gone) = inner.map.remove(&old) {
                inner.bytes -= gone.len();
            }
        }
        Ok(())
    }
}

impl Repository {
    /// The chunk layout of a file's content (list nodes are read, chunks
    /// are not).
    pub fn layout(&self, content: &Content, size: u64) -> Result<Layout> {
        let mut out = Vec::new();
        let mut offset = 0;
        self.content_objects(content, size, &mut |id, kind, len| {
            if kind == Kind::Chunk {
                out.push((offset, id, len));
                offset += len;
            }
            true
        })?;
        Ok(out)
    }

    /// The length of the chunks a long run of zeros is cut into (every
    /// chunk but the last few), and the id of such a chunk here.
    pub fn zero_chunk(&self) -> (u64, ObjectId) {
        *self.zero_chunk.get_or_init(|| {
            let zeros = Chunker::for_repo(self).zeros();
            (zeros.len() as u64, self.codec().id(Kind::Chunk, &zeros))
        })
    }

    /// Up to `len` bytes at `offset` of a file with `layout` (or inline
    /// `content`), built from the chunks without zero-filling a buffer
    /// first (the hot path of mounted reads).
    pub fn read_range(
        &self,
        content: &Content,
        layout: &Layout,
        cache: &ChunkCache,
        offset: u64,
        len: usize,
    ) -> Result<bytes::Bytes> {
        if let Content::Inline(data) = content {
            let start = (offset as usize).min(data.len());
            return Ok(bytes::Bytes::copy_from_slice(&data[start..(start + len).min(data.len())]));
        }
        let first = layout.partition_point(|(off, _, len)| off + len <= offset);
        let mut out = Vec::new();
        for (off, id, size) in &layout[first..] {
            if out.len() == len {
                break;
            }
            let chunk = cache.get(self, id)?;
            if chunk.len() as u64 != *size {
                return Err(Error::Malformed {
                    id: *id,
                    kind: Kind::Chunk,
                    source: crate::encoding::DecodeError::Invalid { what: "chunk size", value: *size },
                });
            }
            let at = (offset + out.len() as u64 - off) as usize;
            let n = (chunk.len() - at).min(len - out.len());
            if out.is_empty() && n == len {
                // Within one chunk (most requests): a part of it, no copy.
                return Ok(chunk.slice(at..at + n));
            }
            if out.is_empty() {
                // Once: `reserve` counts from the length, so a reserve per
                // chunk would grow (and copy) the buffer again each time.
                out.reserve_exact(len);
            }
            out.extend_from_slice(&chunk[at..at + n]);
        }
        Ok(out.into())
    }

    /// Reads up to `buf.len()` bytes at `offset` of a file with `layout`
    /// into `buf`; returns the bytes read (short only at the end of the
    /// content).
    pub fn read_at(
        &self,
        content: &Content,
        layout: &Layout,
        cache: &ChunkCache,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let bytes = self.read_range(content, layout, cache, offset, buf.len())?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InitOptions;

    #[test]
    fn a_chunk_read_by_many_threads_at_once_is_read_once() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo");
        let mut tx = repo.begin().expect("begin");
        let id = repo.put_object(tx.as_mut(), Kind::Chunk, &vec![7u8; 1 << 20]).expect("put");
        tx.commit().expect("commit");
        let cache = ChunkCache::new(8 << 20);
        let got: Vec<bytes::Bytes> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| cache.get(&repo, &id).expect("get"))).collect();
            handles.into_iter().map(|h| h.join().expect("join")).collect()
        });
        // One read: every thread holds the very same buffer.
        assert!(got.iter().all(|g| g.as_ptr() == got[0].as_ptr() && g.len() == 1 << 20));
        assert!(cache.contains(&id));
    }

    #[test]
    fn a_failed_read_is_reported_to_every_waiter_and_forgotten() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo");
        let missing = ObjectId([9; 32]);
        let cache = ChunkCache::new(1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert!(matches!(cache.get(&repo, &missing), Err(Error::MissingObject(_)))));
            }
        });
        assert!(!cache.contains(&missing), "nothing left loading");
    }
}
