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

/// Where the stream is, as the parser sees it.
#[derive(Default)]
struct Walk {
    /// The header (or sparse extension) block being assembled.
    block: Vec<u8>,
    /// Bytes of entry data and padding before the next block.
    data_left: u64,
    /// Data of a PAX header under way, for its `size` record.
    pax: Option<Vec<u8>>,
    /// The `size` record of the last PAX header, which replaces the size
    /// of the next entry that is not itself an extension header.
    pax_size: Option<u64>,
    /// GNU sparse extension blocks follow; then this much data.
    sparse_then: Option<u64>,
    /// A header this guard cannot read: the parser rejects it, and past
    /// it the guard no longer knows where blocks start.
    lost: bool,
}

impl Walk {
    fn pass(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() && !self.lost {
            if self.data_left > 0 {
                let k = bytes.len().min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                if let Some(pax) = &mut self.pax {
                    pax.extend_from_slice(&bytes[..k]);
                }
                self.data_left -= k as u64;
                bytes = &bytes[k..];
                if self.data_left == 0
                    && let Some(pax) = self.pax.take()
                {
                    self.pax_size = pax_size(&pax);
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
            if b[504] == 0 {
                self.sparse_then = None;
                self.data_left = then;
            }
            return Ok(());
        }
        if b.iter().all(|&x| x == 0) {
            return Ok(());
        }
        let Some(mut size) = octal_or_binary(&b[124..136]) else {
            self.lost = true;
            return Ok(());
        };
        let kind = b[156];
        let ustar = &b[257..262] == b"ustar";
        let gnu = &b[257..265] == b"ustar  \0";
        if ustar && matches!(kind, b'x' | b'L' | b'K') && size > MAX_EXTENSION {
            let what = if kind == b'x' { "PAX header" } else { "GNU long name" };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {what} of {size} bytes (at most {MAX_EXTENSION} are accepted)"),
            ));
        }
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            if ustar && kind == b'x' {
                self.pax = Some(Vec::with_capacity(size as usize));
            }
        } else if let Some(replaced) = self.pax_size.take() {
            size = replaced;
        }
        let Some(data) = size.checked_next_multiple_of(BLOCK as u64) else {
            self.lost = true;
            return Ok(());
        };
        if kind == b'S' && gnu && b[482] != 0 {
            self.sparse_then = Some(data);
        } else {
            self.data_left = data;
        }
        if data == 0
            && let Some(pax) = self.pax.take()
        {
            self.pax_size = pax_size(&pax);
        }
        Ok(())
    }
}

/// A numeric header field: octal digits (spaces and NULs around them), or
/// base-256 when its first byte has the high bit set.
fn octal_or_binary(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return None;
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let digits = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `size` record of PAX data (`LEN KEY=VALUE\n` records, then the
/// block's padding), if any.
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut data = &data[..data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
    let mut size = None;
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        let record = data.get(space + 1..len)?;
        if let Some(value) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(value.strip_suffix(b"\n")?).ok()?.parse().ok();
        }
        data = &data[len..];
    }
    size
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
        let mut data = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        data
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
        let mut guard = archive.into_inner();
        io::copy(&mut guard, &mut io::sink())?;
        assert!(!guard.walk.lost, "the guard lost track of the blocks");
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
}
