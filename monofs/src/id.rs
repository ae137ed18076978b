//! Object ids: 32-byte BLAKE3 digests of an object's kind and plaintext.

use std::fmt;
use std::str::FromStr;

/// Length of an object id in bytes.
pub const ID_LEN: usize = 32;

/// The address of an object: BLAKE3 (keyed in encrypted repositories) of
/// its kind byte followed by its plaintext encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectId(pub [u8; ID_LEN]);

impl ObjectId {
    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Builds an id from a slice that must be exactly [`ID_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<ObjectId> {
        bytes.try_into().ok().map(ObjectId)
    }

    /// Lower-case hex of the full id.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex digits, as shown by `log` and `diff`.
    pub fn short(&self, n: usize) -> String {
        let mut s = self.to_hex();
        s.truncate(n.min(ID_LEN * 2));
        s
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short(16))
    }
}

/// Error returned when a string is not a full hex object id.
#[derive(Debug, thiserror::Error)]
#[error("not a 64-digit hex object id: {0:?}")]
pub struct ParseIdError(String);

impl FromStr for ObjectId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; ID_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_owned()))?;
        Ok(ObjectId(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ObjectId([0xab; ID_LEN]);
        let parsed: ObjectId = id.to_hex().parse().expect("valid hex");
        assert_eq!(parsed, id);
        assert_eq!(id.short(6), "ababab");
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("xyz".parse::<ObjectId>().is_err());
        assert!("ab".parse::<ObjectId>().is_err());
    }
}
