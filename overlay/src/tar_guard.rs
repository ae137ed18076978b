//! A guard in front of the tar parser. The `tar` crate reads a PAX header
//! or a GNU long name into memory whole, however long its header says it
//! is: a 6.5 MB gzip layer whose PAX header claimed 1.5 GB took 4.4 GB of
//! memory before anything checked it. [`GuardedTar`] follows the archive's
//! blocks as the parser will read them and refuses such a header over
//! [`MAX_EXTENSION`] bytes (Go's `archive/tar` limit) as it passes, before
//! the parser asks for its bytes.

use std::io::{self, Read};

/// The longest PAX header or GNU long name or link accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: usize = 512;

/// A reader of a tar stream that fails on an oversized extension header.
pub struct GuardedTar<R> {
    inner: R,
    walk: Walk,
}

impl<R: Read> GuardedTar<R> {
    /// Guards the tar stream `inner`.
    pub fn new(inner: R) -> GuardedTar<R> {
        GuardedTar { inner, walk: Walk::default() }
    }
}

impl<R: Read> Read for GuardedTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.walk.pass(&buf[..n])?;
        Ok(n)
    }
}

/// Where the stream is, as the parser sees it. Headers are read with the
/// parser's own code (`tar::Header`, `tar::PaxExtensions`), so that both
/// take every size the same way; a header the parser would refuse fails
/// here first (closed: past it, no one knows where blocks start).
#[derive(Default)]
struct Walk {
    /// The header (or sparse extension) block being assembled.
    block: Vec<u8>,
    /// Bytes of entry data and padding before the next block.
    data_left: u64,
    /// Data of a PAX header under way, for its `size` record.
    pax: Option<Vec<u8>>,
    /// The last PAX header's data, waiting for the entry it describes.
    pending: Option<Vec<u8>>,
    /// GNU sparse extension blocks follow; then this much data.
    sparse_then: Option<u64>,
    /// Past the end-of-archive block, which the parser stops at: what
    /// follows is not read as tar.
    ended: bool,
}

fn refuse(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl Walk {
    fn pass(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() && !self.ended {
            if self.data_left > 0 {
                let k = bytes.len().min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                if let Some(pax) = &mut self.pax {
                    pax.extend_from_slice(&bytes[..k]);
                }
                self.data_left -= k as u64;
                bytes = &bytes[k..];
                if self.data_left == 0 {
                    self.pending = self.pax.take();
                }
                continue;
            }
            let k = bytes.len().min(BLOCK - self.block.len());
            self.block.extend_from_slice(&bytes[..k]);
            bytes = &bytes[k..];
            if self.block.len() == BLOCK {
                let block = std::mem::take(&mut self.block);
                self.block_done(&block)?;
            }
        }
        Ok(())
    }

    fn block_done(&mut self, b: &[u8]) -> io::Result<()> {
        if let Some(then) = self.sparse_then {
            // `isextended` of a sparse extension block: another follows.
            if b[504] != 1 {
                self.sparse_then = None;
                self.data_left = then;
            }
            return Ok(());
        }
        if b.iter().all(|&x| x == 0) {
            self.ended = true;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(b);
        let size = header.entry_size().map_err(|e| refuse(format!("a tar header the parser cannot read: {e}")))?;
        let kind = header.entry_type();
        let extension = kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink();
        // Capped whatever their magic: one the parser does not take for an
        // extension is an entry, which reading its metadata reads whole.
        if extension && size > MAX_EXTENSION {
            let what = if kind.is_gnu_longname() || kind.is_gnu_longlink() { "GNU long name" } else { "PAX header" };
            return Err(refuse(format!("a {what} of {size} bytes (at most {MAX_EXTENSION} are accepted)")));
        }
        let recognized = header.as_ustar().is_some() || header.as_gnu().is_some();
        let consumed =
            recognized && (kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink());
        // The PAX data applies to the entry the parser returns next (its
        // size only if that is not an extension header itself), then goes.
        let pax = if consumed { None } else { self.pending.take() };
        let size = match pax.as_deref().filter(|_| !extension).and_then(pax_size) {
            Some(replaced) => replaced,
            None => size,
        };
        if recognized && kind.is_pax_local_extensions() {
            if self.pending.is_some() {
                return Err(refuse("two PAX headers for one entry".into()));
            }
            self.pax = Some(Vec::with_capacity(size as usize));
        }
        let data =
            size.checked_next_multiple_of(BLOCK as u64).ok_or_else(|| refuse("an entry size overflows".into()))?;
        if kind.is_gnu_sparse() && header.as_gnu().is_some_and(tar::GnuHeader::is_extended) {
            self.sparse_then = Some(data);
        } else {
            self.data_left = data;
        }
        if data == 0
            && let Some(pax) = self.pax.take()
        {
            self.pending = Some(pax);
        }
        Ok(())
    }
}

/// The `size` record of PAX data as the parser takes it: the first one,
/// nothing when a record before it is malformed.
fn pax_size(data: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).expect("path");
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        monofs_fixtures::oci::pax_records(records)
    }

    /// Reads `tar` through the guard, in reads of `step` bytes, and lists
    /// its entries as the parser does.
    fn entries(tar: &[u8], step: usize) -> io::Result<Vec<(String, Vec<u8>)>> {
        struct Steps<'a>(&'a [u8], usize);
        impl Read for Steps<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut archive = tar::Archive::new(GuardedTar::new(Steps(tar, step)));
        let mut out = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            out.push((path, data));
        }
        // The rest (end blocks) too: a guard that lost its place fails.
        io::copy(&mut archive.into_inner(), &mut io::sink())?;
        Ok(out)
    }

    #[test]
    fn ordinary_archives_pass_unchanged() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("dir/{}", "n".repeat(300));
        for (path, data) in [("a", &b"first"[..]), (&long, b"under a GNU long name"), ("empty", b"")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, data).expect("append");
        }
        // A PAX size record overrides the size field of the next entry.
        let records = pax(&[("size", b"600"), ("SCHILY.xattr.user.k", b"v")]);
        b.append(&header("PaxHeaders/b", tar::EntryType::XHeader, records.len() as u64), &records[..]).expect("pax");
        b.append(&header("b", tar::EntryType::Regular, 0), &[7u8; 600][..]).expect("append");
        b.append(&header("c", tar::EntryType::Regular, 3), &b"end"[..]).expect("append");
        let tar = b.into_inner().expect("tar");
        for step in [1, 100, 512, 4096, usize::MAX] {
            let got = entries(&tar, step).expect("read through the guard");
            let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(names, ["a", long.as_str(), "empty", "b", "c"], "step {step}");
            assert_eq!(got[3].1, vec![7u8; 600]);
            assert_eq!(got[4].1, b"end");
        }
    }

    #[test]
    fn oversized_pax_headers_and_long_names_are_refused_as_they_pass() {
        for kind in [tar::EntryType::XHeader, tar::EntryType::GNULongName] {
            let mut b = tar::Builder::new(Vec::new());
            let records = pax(&[("SCHILY.xattr.user.big", &vec![b'a'; (MAX_EXTENSION + 1) as usize])]);
            b.append(&header("big", kind, records.len() as u64), &records[..]).expect("append");
            b.append(&header("f", tar::EntryType::Regular, 1), &b"x"[..]).expect("append");
            let tar = b.into_inner().expect("tar");
            // The parser asks for the header block first: refused there.
            let mut guard = GuardedTar::new(&tar[..]);
            let err = guard.read(&mut [0u8; BLOCK]).expect_err("an oversized header passed");
            assert!(err.to_string().contains("at most 1048576"), "{err}");
            assert!(entries(&tar, 4096).is_err());
        }
        // After an entry whose PAX size moved the blocks: still found.
        let mut b = tar::Builder::new(Vec::new());
        let records = pax(&[("size", b"2048")]);
        b.append(&header("PaxHeaders/b", tar::EntryType::XHeader, records.len() as u64), &records[..]).expect("pax");
        b.append(&header("b", tar::EntryType::Regular, 0), &[1u8; 2048][..]).expect("append");
        let big = pax(&[("path", &vec![b'p'; (MAX_EXTENSION + 10) as usize])]);
        b.append(&header("PaxHeaders/c", tar::EntryType::XHeader, big.len() as u64), &big[..]).expect("pax");
        let tar = b.into_inner().expect("tar");
        let err = entries(&tar, 4096).expect_err("the second PAX header passed");
        assert!(err.to_string().contains("PAX header"), "{err}");
    }

    /// A header block by hand: `size` is the raw 12-byte field.
    fn raw(name: &str, kind: u8, size: [u8; 12], ustar: bool) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..107].copy_from_slice(b"0000644");
        b[124..136].copy_from_slice(&size);
        b[156] = kind;
        if ustar {
            b[257..265].copy_from_slice(b"ustar\x0000");
        }
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        b
    }

    fn octal(n: u64) -> [u8; 12] {
        let mut f = [0u8; 12];
        f[..11].copy_from_slice(format!("{n:011o}").as_bytes());
        f
    }

    /// Ways around a guard that parses sizes its own way (a review found
    /// each): global and magic-less PAX headers, size fields the parser
    /// reads differently (text after a NUL, tabs, base-256 wider than 8
    /// bytes), several PAX size records. Each is followed by an oversized
    /// PAX header, which must still be refused.
    #[test]
    fn the_guard_reads_headers_as_the_parser_does() {
        let big_claim = octal(400 << 20);
        for (what, header) in [
            ("global PAX header", raw("g", b'g', big_claim, true)),
            ("PAX header without magic", raw("x", b'x', big_claim, false)),
        ] {
            let mut tar = header;
            tar.extend(vec![0u8; 4096]);
            let err = GuardedTar::new(&tar[..]).read(&mut [0u8; BLOCK]).expect_err(what);
            assert!(err.to_string().contains("PAX header of"), "{what}: {err}");
        }
        let oversized = {
            let mut t = raw("x", b'x', octal(2 << 20), true);
            t.extend(vec![b'a'; 2 << 20]);
            t
        };
        let mut base256 = [0u8; 12];
        base256[0] = 0x80;
        base256[3] = 1;
        base256[11] = 1;
        for (what, size) in [
            ("text after a NUL", *b"0000001\0\xff\xff\xff\xff"),
            ("tabs", *b"\t0000000001\t"),
            ("wide base-256", base256),
        ] {
            let mut tar = raw("f", b'0', size, true);
            tar.extend(vec![b'd'; BLOCK]);
            tar.extend(&oversized);
            assert!(entries(&tar, 4096).is_err(), "{what}: the oversized header passed");
        }
        // Two size records: the parser takes the first.
        let records = pax(&[("size", b"1"), ("size", b"10485760")]);
        let mut tar = raw("x", b'x', octal(records.len() as u64), true);
        tar.extend(&records);
        tar.resize(tar.len().next_multiple_of(BLOCK), 0);
        tar.extend(raw("f", b'0', octal(0), true));
        tar.extend(vec![b'd'; BLOCK]);
        tar.extend(&oversized);
        let err = entries(&tar, 4096).expect_err("the oversized header passed");
        assert!(err.to_string().contains("PAX header of"), "{err}");
        // What follows the end of the archive is not read as tar.
        let mut tar = raw("f", b'0', octal(3), true);
        tar.extend(b"abc");
        tar.resize(BLOCK * 4, 0);
        tar.extend(vec![0xffu8; BLOCK]);
        assert_eq!(entries(&tar, 100).expect("trailing bytes").len(), 1);
    }
}
