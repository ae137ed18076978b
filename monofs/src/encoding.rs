//! The primitive encoding shared by every structured object: unsigned
//! LEB128 varints, zig-zag signed varints, length-prefixed byte strings and
//! raw 32-byte ids. See docs/FORMAT.md, "Primitives".

use crate::id::{ID_LEN, ObjectId};

/// Why a byte string could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated input")]
    Truncated,
    /// A varint ran past 10 bytes, overflowed 64 bits or was not minimal.
    #[error("malformed varint")]
    BadVarint,
    /// A field held a value the format does not define.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// Bytes were left after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// Directory entries or xattrs were not strictly sorted by name.
    #[error("entries out of order")]
    Unsorted,
    /// An entry name was empty, `.`, `..`, or held `/` or NUL.
    #[error("invalid entry name {0:?}")]
    BadName(String),
}

/// Appends encoded values to a byte buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// One raw byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Unsigned LEB128.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// Zig-zag then LEB128, for signed values such as seconds before 1970.
    pub fn signed(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Length (varint) then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// The 32 raw bytes of an id.
    pub fn id(&mut self, id: &ObjectId) {
        self.buf.extend_from_slice(id.as_bytes());
    }
}

/// Reads values in the order a [`Writer`] wrote them.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// One raw byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Unsigned LEB128; rejects non-minimal encodings so that one value has
    /// exactly one encoding (ids depend on it).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.u8()?;
            let part = u64::from(byte & 0x7f);
            if i == 9 && part > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= part << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(DecodeError::BadVarint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A varint that must fit in 32 bits.
    pub fn varint_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| DecodeError::Invalid { what, value: v })
    }

    /// A varint used as a length or count, bounded by the bytes left so a
    /// corrupt count cannot trigger a huge allocation.
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        match usize::try_from(v) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(DecodeError::Truncated),
        }
    }

    /// Zig-zag signed varint.
    pub fn signed(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.count()?;
        self.take(n)
    }

    /// 32 raw id bytes.
    pub fn id(&mut self) -> Result<ObjectId, DecodeError> {
        let raw = self.take(ID_LEN)?;
        ObjectId::from_slice(raw).ok_or(DecodeError::Truncated)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() { Ok(()) } else { Err(DecodeError::Trailing(self.buf.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trip(v: u64, s: i64, b: Vec<u8>) {
            let mut w = Writer::new();
            w.varint(v);
            w.signed(s);
            w.bytes(&b);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.varint().expect("varint"), v);
            prop_assert_eq!(r.signed().expect("signed"), s);
            prop_assert_eq!(r.bytes().expect("bytes"), &b[..]);
            r.finish().expect("all consumed");
        }
    }

    #[test]
    fn rejects_overlong_varint() {
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err(DecodeError::BadVarint));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(DecodeError::BadVarint));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::Truncated));
    }

    #[test]
    fn huge_length_is_truncation_not_allocation() {
        let mut w = Writer::new();
        w.varint(u64::MAX);
        let bytes = w.into_bytes();
        assert_eq!(Reader::new(&bytes).bytes(), Err(DecodeError::Truncated));
    }
}
