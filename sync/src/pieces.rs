//! The store file sent whole, piece by piece (docs/SYNC.md, "clone"): a
//! client resuming an interrupted copy names the pieces it has by their
//! sums, and the server sends only the pieces that differ.
//!
//! Pieces rather than an offset, because the file a server sends after
//! reopening its repository is not byte for byte the file it sent before:
//! redb rewrites its header and saves its allocator state on every open
//! and close. Those few pages are sent again; the rest of a partial copy
//! is kept, whatever happened in between (a restarted server, a push).

use crate::error::{Result, SyncError};

/// Bytes per piece; the last piece of a file may be shorter.
pub const PIECE: u64 = 1 << 20;

/// Bytes of a piece's sum in a client's list of what it has: the leading
/// bytes of the piece's BLAKE3. Truncation costs nothing in safety: a
/// piece kept on a false match fails the check of the whole file, which
/// uses the full hashes.
pub const HAVE_SUM: usize = 16;

/// Reply tag before each piece: the client's copy of it is kept.
pub const KEPT: u8 = 0;
/// Reply tag before each piece: the piece's bytes follow.
pub const DATA: u8 = 1;

/// One piece of the reply, as the client receives it.
#[derive(Debug)]
pub enum Piece<'a> {
    /// The file's whole length, before any piece.
    Length(u64),
    /// Piece `n`, which the client has: keep it.
    Kept(u64),
    /// Piece `n`'s bytes.
    Data(u64, &'a [u8]),
}

/// The number of pieces of a file of `len` bytes.
pub fn count(len: u64) -> u64 {
    len.div_ceil(PIECE)
}

/// The length of piece `n` of a file of `len` bytes.
pub fn len_of(n: u64, len: u64) -> u64 {
    len.saturating_sub(n * PIECE).min(PIECE)
}

/// BLAKE3 of a piece.
pub fn sum(piece: &[u8]) -> blake3::Hash {
    blake3::hash(piece)
}

/// The checksum of the whole file: BLAKE3 of its pieces' hashes in order.
/// It covers every byte, and a client can compute it without reading the
/// pieces it kept again.
pub fn whole(sums: &[blake3::Hash]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for s in sums {
        h.update(s.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// A client's list of what it has: [`HAVE_SUM`] bytes per piece, from the
/// first.
pub fn encode_have(sums: &[blake3::Hash]) -> Vec<u8> {
    sums.iter().flat_map(|s| s.as_bytes()[..HAVE_SUM].iter().copied()).collect()
}

/// A client's list of what it has ([`encode_have`]), checked, read in
/// place (a list may be tens of MiB).
pub struct Have<T>(T);

impl<T: AsRef<[u8]>> Have<T> {
    /// Checks the list's length.
    pub fn parse(bytes: T, from: &str) -> Result<Have<T>> {
        if !bytes.as_ref().len().is_multiple_of(HAVE_SUM) {
            let what = format!("piece list length is not a multiple of {HAVE_SUM}");
            return Err(SyncError::Protocol { from: from.into(), what });
        }
        Ok(Have(bytes))
    }

    /// Whether the list holds piece `n` with sum `s`.
    pub fn has(&self, n: u64, s: &blake3::Hash) -> bool {
        let at = usize::try_from(n).ok().and_then(|n| n.checked_mul(HAVE_SUM));
        at.and_then(|at| self.0.as_ref().get(at..at + HAVE_SUM)).is_some_and(|h| *h == s.as_bytes()[..HAVE_SUM])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_a_file_exactly() {
        assert_eq!(count(0), 0);
        assert_eq!(count(1), 1);
        assert_eq!(count(PIECE), 1);
        assert_eq!(count(PIECE + 1), 2);
        assert_eq!((len_of(0, PIECE + 5), len_of(1, PIECE + 5), len_of(2, PIECE + 5)), (PIECE, 5, 0));
    }

    #[test]
    fn a_have_list_round_trips_and_matches_only_its_own_pieces() {
        let sums = [sum(b"a"), sum(b"b")];
        let have = Have::parse(encode_have(&sums), "test").expect("parse");
        assert!(have.has(0, &sum(b"a")) && have.has(1, &sum(b"b")));
        assert!(!have.has(0, &sum(b"b")) && !have.has(2, &sum(b"a")) && !have.has(u64::MAX, &sum(b"a")));
        assert!(Have::parse([0; HAVE_SUM + 1], "test").is_err());
    }
}
