//! Byte formats shared by the HTTP client and server (docs/SYNC.md):
//! id lists, presence bitmaps and checksummed object frames.

use monofs::ObjectId;
use monofs::id::ID_LEN;

use crate::error::{Result, SyncError};

/// An object in transit: its id, its stored (compressed, maybe sealed)
/// frame and whether the store keeps it with metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireObject {
    /// The object id.
    pub id: ObjectId,
    /// Directory, chunk list or revision (rather than a chunk).
    pub metadata: bool,
    /// The stored frame, byte for byte.
    pub bytes: Vec<u8>,
}

const HEADER: usize = ID_LEN + 1 + 4;
const SUM: usize = 32;
/// Largest frame accepted, so a hostile length cannot make us allocate
/// without bound (objects are at most 256 MiB of plaintext).
const MAX_FRAME: usize = 300 << 20;

/// Concatenated 32-byte ids.
pub fn encode_ids(ids: &[ObjectId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * ID_LEN);
    for id in ids {
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// Parses [`encode_ids`].
pub fn decode_ids(bytes: &[u8], from: &str) -> Result<Vec<ObjectId>> {
    if !bytes.len().is_multiple_of(ID_LEN) {
        return Err(SyncError::Protocol { from: from.into(), what: "id list length is not a multiple of 32".into() });
    }
    Ok(bytes.chunks_exact(ID_LEN).filter_map(ObjectId::from_slice).collect())
}

/// Ids with their stored lengths: 32 + 8 bytes (little-endian) each.
pub fn encode_listing(items: &[(ObjectId, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * (ID_LEN + 8));
    for (id, len) in items {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    out
}

/// Parses [`encode_listing`].
pub fn decode_listing(bytes: &[u8], from: &str) -> Result<Vec<(ObjectId, u64)>> {
    const N: usize = ID_LEN + 8;
    if !bytes.len().is_multiple_of(N) {
        return Err(SyncError::Protocol { from: from.into(), what: "listing length is not a multiple of 40".into() });
    }
    Ok(bytes
        .chunks_exact(N)
        .filter_map(|c| {
            let id = ObjectId::from_slice(&c[..ID_LEN])?;
            let len = u64::from_le_bytes(c[ID_LEN..].try_into().ok()?);
            Some((id, len))
        })
        .collect())
}

/// One bit per asked id, least significant bit first: set when present.
pub fn encode_bitmap(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        if *b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Parses [`encode_bitmap`] for `n` ids.
pub fn decode_bitmap(bytes: &[u8], n: usize, from: &str) -> Result<Vec<bool>> {
    if bytes.len() != n.div_ceil(8) {
        return Err(SyncError::Protocol {
            from: from.into(),
            what: format!("bitmap of {} bytes for {n} ids", bytes.len()),
        });
    }
    Ok((0..n).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect())
}

fn checksum(header: &[u8], body: &[u8]) -> [u8; SUM] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(body);
    *h.finalize().as_bytes()
}

/// Appends an object frame: id, flags (bit 0: metadata), length
/// (u32 little-endian), the stored bytes, then BLAKE3 of all of that.
pub fn encode_object(out: &mut Vec<u8>, o: &WireObject) {
    let start = out.len();
    out.extend_from_slice(o.id.as_bytes());
    out.push(u8::from(o.metadata));
    out.extend_from_slice(&(o.bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&o.bytes);
    let sum = checksum(&out[start..start + HEADER], &o.bytes);
    out.extend_from_slice(&sum);
}

/// Frames for a list of objects.
pub fn encode_objects(objects: &[WireObject]) -> Vec<u8> {
    let mut out = Vec::with_capacity(objects.iter().map(|o| o.bytes.len() + HEADER + SUM).sum());
    for o in objects {
        encode_object(&mut out, o);
    }
    out
}

/// Parses concatenated frames, checking each checksum: a truncated or
/// altered frame is an error, never a wrong object.
pub fn decode_objects(mut bytes: &[u8], from: &str) -> Result<Vec<WireObject>> {
    let mut out = Vec::new();
    let truncated = || SyncError::Protocol { from: from.into(), what: "truncated object frame".into() };
    while !bytes.is_empty() {
        if bytes.len() < HEADER {
            return Err(truncated());
        }
        let id = ObjectId::from_slice(&bytes[..ID_LEN]).ok_or_else(truncated)?;
        let flags = bytes[ID_LEN];
        let len = u32::from_le_bytes(bytes[ID_LEN + 1..HEADER].try_into().map_err(|_| truncated())?) as usize;
        if len > MAX_FRAME || flags > 1 {
            return Err(SyncError::Protocol { from: from.into(), what: format!("bad frame header for object {id}") });
        }
        if bytes.len() < HEADER + len + SUM {
            return Err(truncated());
        }
        let body = &bytes[HEADER..HEADER + len];
        let sum = &bytes[HEADER + len..HEADER + len + SUM];
        if checksum(&bytes[..HEADER], body) != sum {
            return Err(SyncError::BadObject { id, why: format!("checksum mismatch in transit from {from}") });
        }
        out.push(WireObject { id, metadata: flags & 1 != 0, bytes: body.to_vec() });
        bytes = &bytes[HEADER + len + SUM..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<WireObject> {
        vec![
            WireObject { id: ObjectId([1; 32]), metadata: false, bytes: b"chunk bytes".to_vec() },
            WireObject { id: ObjectId([2; 32]), metadata: true, bytes: Vec::new() },
        ]
    }

    #[test]
    fn frames_round_trip() {
        let enc = encode_objects(&sample());
        assert_eq!(decode_objects(&enc, "t").expect("decodes"), sample());
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_caught() {
        let enc = encode_objects(&sample());
        for i in 0..enc.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = enc.clone();
                bad[i] ^= bit;
                if let Ok(objs) = decode_objects(&bad, "t") {
                    panic!("flip at {i} accepted: {objs:?}");
                }
            }
        }
        for n in 1..enc.len() {
            let first_len = HEADER + 11 + SUM;
            if n != first_len {
                assert!(decode_objects(&enc[..n], "t").is_err(), "truncation to {n} accepted");
            }
        }
    }

    #[test]
    fn bitmaps_and_lists_round_trip() {
        let bits = [true, false, false, true, true, false, true, false, true];
        assert_eq!(decode_bitmap(&encode_bitmap(&bits), bits.len(), "t").expect("bitmap"), bits);
        assert!(decode_bitmap(&[0], 9, "t").is_err());
        let ids = [ObjectId([3; 32]), ObjectId([4; 32])];
        assert_eq!(decode_ids(&encode_ids(&ids), "t").expect("ids"), ids);
        assert!(decode_ids(&[0; 33], "t").is_err());
        let listing = [(ObjectId([5; 32]), 7u64)];
        assert_eq!(decode_listing(&encode_listing(&listing), "t").expect("listing"), listing);
    }
}
