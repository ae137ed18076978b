//! Content digests: parsing, hashing readers that verify blobs as they are
//! read, and OCI ChainIDs.

use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Checks that `digest` is `sha256:` followed by 64 lower-case hex digits
/// and returns the hex part.
pub fn sha256_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex)
        }
        _ => Err(Error::BadDigest(digest.to_owned())),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_of(Sha256::digest(bytes).as_slice()))
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Verifies a fully read blob against its descriptor.
pub fn verify_bytes(what: &str, bytes: &[u8], digest: &str, size: Option<u64>) -> Result<()> {
    sha256_hex(digest)?;
    if let Some(size) = size {
        check_size(what, size, bytes.len() as u64)?;
    }
    let actual = sha256_of(bytes);
    if actual != digest {
        return Err(Error::DigestMismatch { what: what.to_owned(), expected: digest.to_owned(), actual });
    }
    Ok(())
}

/// Compares a blob's length with its descriptor's size.
pub fn check_size(what: &str, expected: u64, got: u64) -> Result<()> {
    if got < expected {
        return Err(Error::Truncated { what: what.to_owned(), expected, got });
    }
    if got > expected {
        return Err(Error::SizeMismatch { what: what.to_owned(), expected, got });
    }
    Ok(())
}

/// The OCI ChainID of a stack of layers given by their DiffIDs:
/// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A running SHA-256 and byte count, shared between a [`HashReader`] and
/// whoever checks the result.
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<(Sha256, u64)>>);

impl Tally {
    /// The digest and length of everything read so far.
    pub fn result(&self) -> (String, u64) {
        match self.0.lock() {
            Ok(g) => (format!("sha256:{}", hex_of(g.0.clone().finalize().as_slice())), g.1),
            Err(_) => (String::new(), 0),
        }
    }
}

/// Hashes and counts the bytes that pass through it.
pub struct HashReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> HashReader<R> {
    /// Wraps `inner`; `tally` accumulates what is read.
    pub fn new(inner: R, tally: Tally) -> HashReader<R> {
        HashReader { inner, tally }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut g) = self.tally.0.lock() {
            g.0.update(&buf[..n]);
            g.1 += n as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256_of(b"a");
        let b = sha256_of(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn digests_are_validated() {
        assert!(sha256_hex("sha256:abc").is_err());
        assert!(sha256_hex("md5:00").is_err());
        assert!(sha256_hex(&sha256_of(b"")).is_ok());
        assert!(matches!(verify_bytes("x", b"abc", &sha256_of(b"abd"), None), Err(Error::DigestMismatch { .. })));
        assert!(matches!(verify_bytes("x", b"ab", &sha256_of(b"ab"), Some(3)), Err(Error::Truncated { .. })));
    }
}
