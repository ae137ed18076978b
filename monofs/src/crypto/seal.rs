//! The stored frame of an object: optional zstd, optional XChaCha20-Poly1305,
//! and verification on the way back (docs/FORMAT.md, "Stored frame").

use bytes::Bytes;
use std::cell::RefCell;
use std::sync::{Arc, PoisonError};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use zstd::zstd_safe::{CCtx, CDict, CParameter, DCtx, DictAttachPref};

use super::Keys;
use super::dictionary::{self, Dictionary, SharedSet};
use crate::id::ObjectId;
use crate::object::Kind;

const FRAME_PLAIN: u8 = 0;
const FRAME_SEALED: u8 = 1;
const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const CODEC_ZSTD_DICT: u8 = 2;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Largest plaintext object accepted on read, so a corrupt or hostile frame
/// cannot make the reader allocate without bound.
pub const MAX_OBJECT_SIZE: u64 = 256 << 20;

/// Why a stored object could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Too short for its frame header.
    #[error("truncated object")]
    Truncated,
    /// The frame byte is unknown, or says plain in an encrypted repository
    /// (or the reverse).
    #[error("unexpected frame type {0}")]
    Frame(u8),
    /// Authentication failed: tampered, truncated or from another repository.
    #[error("authentication failed (tampered or foreign object)")]
    Auth,
    /// The codec byte is unknown or zstd failed.
    #[error("cannot decompress: {0}")]
    Decompress(String),
    /// The kind byte is unknown.
    #[error("unknown object kind {0}")]
    Kind(u8),
    /// The content does not hash to the id it is stored under.
    #[error("content does not match its id")]
    Mismatch,
    /// Compressed with a dictionary this repository does not hold.
    #[error("compressed with dictionary {0:08x}, which this repository lacks")]
    MissingDictionary(u32),
}

thread_local! {
    // One zstd context per thread, reused: creating one per object costs
    // more than compressing a small file.
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    // Bound to the dictionary it last compressed with.
    static DICT_CCTX: RefCell<Option<(*const CDict<'static>, CCtx<'static>)>> = const { RefCell::new(None) };
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

/// Compresses `plain` with `cdict` into `out`, on this thread's context for
/// that dictionary.
fn compress_with(cdict: &'static CDict<'static>, plain: &[u8], out: &mut Vec<u8>) -> Result<usize, usize> {
    DICT_CCTX.with(|slot| {
        let mut slot = slot.borrow_mut();
        let (_, cctx) = match &mut *slot {
            Some(bound) if std::ptr::eq(bound.0, cdict) => bound,
            other => {
                let mut cctx = CCtx::create();
                cctx.ref_cdict(cdict)?;
                // Refer to the dictionary's tables instead of copying them
                // into the context, which costs more than compressing a few KiB.
                cctx.set_parameter(CParameter::ForceAttachDict(DictAttachPref::ForceAttach))?;
                other.insert((std::ptr::from_ref(cdict), cctx))
            }
        };
        cctx.compress2(out, plain)
    })
}

/// Computes ids and seals/opens objects for one repository.
#[derive(Clone)]
pub struct Codec {
    keys: Option<Keys>,
    cipher: Option<XChaCha20Poly1305>,
    level: i32,
    dictionaries: SharedSet,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("encrypted", &self.keys.is_some()).finish()
    }
}

/// Whether `stored` has the shape of a sealed frame: its leading byte,
/// and room for a nonce, a header and a tag. All that can be checked of
/// one without the key.
pub fn looks_sealed(stored: &[u8]) -> bool {
    stored.first() == Some(&FRAME_SEALED) && stored.len() >= 1 + NONCE_LEN + 2 + TAG_LEN
}

impl Codec {
    /// A codec for a plain (`None`) or encrypted repository.
    pub fn new(keys: Option<Keys>, level: i32) -> Codec {
        let cipher = keys.as_ref().map(|k| XChaCha20Poly1305::new(&Key::from(k.data)));
        Codec { keys, cipher, level, dictionaries: SharedSet::default() }
    }

    /// Adds a dictionary (raw zstd dictionary bytes) that frames may name;
    /// returns its id, or `None` when the bytes are not a dictionary. The
    /// lowest-numbered dictionary known compresses new objects.
    pub fn add_dictionary(&self, raw: Vec<u8>) -> Option<u32> {
        let dict = Dictionary::new(raw, self.level)?;
        let id = dict.id();
        self.dictionaries.write().unwrap_or_else(PoisonError::into_inner).add(dict);
        Some(id)
    }

    /// The dictionary with `id`, if known.
    pub fn dictionary(&self, id: u32) -> Option<Arc<Dictionary>> {
        self.dictionaries.read().unwrap_or_else(PoisonError::into_inner).get(id)
    }

    /// Every dictionary known, by id.
    pub fn dictionaries(&self) -> Vec<Arc<Dictionary>> {
        self.dictionaries.read().unwrap_or_else(PoisonError::into_inner).list()
    }

    fn current_dictionary(&self) -> Option<Arc<Dictionary>> {
        self.dictionaries.read().unwrap_or_else(PoisonError::into_inner).current()
    }

    /// Whether objects are encrypted.
    pub fn encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// The repository keys, if encrypted.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// The id of an object: BLAKE3 (keyed when encrypted) of kind byte and
    /// plaintext.
    pub fn id(&self, kind: Kind, plain: &[u8]) -> ObjectId {
        let mut h = match &self.keys {
            Some(k) => blake3::Hasher::new_keyed(&k.id),
            None => blake3::Hasher::new(),
        };
        h.update(&[kind as u8]);
        h.update(plain);
        ObjectId(*h.finalize().as_bytes())
    }

    /// A keyed digest of arbitrary bytes, for index keys (such as paths in the
    /// stat cache) that must not reveal what they index.
    pub fn digest(&self, domain: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = match &self.keys {
            Some(k) => blake3::Hasher::new_keyed(&k.id),
            None => blake3::Hasher::new(),
        };
        h.update(domain);
        h.update(data);
        *h.finalize().as_bytes()
    }

    /// The codec byte and body for `plain`: zstd (with the dictionary when
    /// `dict` allows and one applies) when that is shorter, else raw.
    fn compress(&self, plain: &[u8], dict: bool) -> Option<(u8, Vec<u8>)> {
        if plain.len() < 64 {
            return None;
        }
        let dict = if dict && plain.len() <= dictionary::MAX_INPUT { self.current_dictionary() } else { None };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(plain.len()));
        let done = match &dict {
            Some(d) => compress_with(d.cdict(), plain, &mut out),
            None => CCTX.with(|c| c.borrow_mut().compress(&mut out, plain, self.level)),
        };
        let codec = if dict.is_some() { CODEC_ZSTD_DICT } else { CODEC_ZSTD };
        (done.is_ok() && out.len() < plain.len()).then_some((codec, out))
    }

    /// Compresses (when it shrinks) and encrypts (when keyed) an object
    /// whose id is `id`, producing its stored frame.
    pub fn seal(&self, id: &ObjectId, kind: Kind, plain: &[u8]) -> Vec<u8> {
        self.frame(id.as_bytes(), kind as u8, plain)
    }

    /// Opens a stored frame: authenticates, decompresses and checks that the
    /// plaintext hashes to `id`. Never returns bytes that fail the check.
    pub fn open(&self, id: &ObjectId, stored: &[u8]) -> Result<(Kind, Vec<u8>), SealError> {
        let (kind, plain) = self.unframe(id.as_bytes(), stored)?;
        self.checked(id, kind, plain).map(|(kind, plain)| (kind, plain.into()))
    }

    /// [`Codec::open`] that returns a raw plain frame's body as a part of
    /// `stored` instead of a copy (other frames are decoded as usual).
    pub fn open_shared(&self, id: &ObjectId, stored: bytes::Bytes) -> Result<(Kind, bytes::Bytes), SealError> {
        match stored.get(..3) {
            Some(&[FRAME_PLAIN, kind, CODEC_RAW]) if self.cipher.is_none() => self.checked(id, kind, stored.slice(3..)),
            _ => {
                let (kind, plain) = self.unframe(id.as_bytes(), &stored)?;
                self.checked(id, kind, plain)
            }
        }
    }

    /// `plain` as object `id` of kind byte `kind`, if it hashes to `id`.
    fn checked<T: AsRef<[u8]>>(&self, id: &ObjectId, kind: u8, plain: T) -> Result<(Kind, T), SealError> {
        let kind = Kind::from_u8(kind).ok_or(SealError::Kind(kind))?;
        if self.id(kind, plain.as_ref()) != *id {
            return Err(SealError::Mismatch);
        }
        Ok((kind, plain))
    }

    /// Seals an index record (not an object) bound to `key`, such as a stat
    /// cache entry; same frame, tag byte 0.
    pub fn seal_record(&self, key: &[u8], plain: &[u8]) -> Vec<u8> {
        self.frame(key, 0, plain)
    }

    /// Opens a record sealed by [`Codec::seal_record`] under the same key.
    pub fn open_record(&self, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, SealError> {
        match self.unframe(key, stored)? {
            (0, plain) => Ok(plain.into()),
            (k, _) => Err(SealError::Kind(k)),
        }
    }

    fn frame(&self, aad: &[u8], tag_byte: u8, plain: &[u8]) -> Vec<u8> {
        // Records (stat cache, dictionaries themselves) stay independent of
        // the dictionary, which they may be needed to find.
        let compressed = self.compress(plain, tag_byte != 0);
        let (codec, body) = match &compressed {
            Some((codec, c)) => (*codec, c.as_slice()),
            None => (CODEC_RAW, plain),
        };
        match &self.cipher {
            None => {
                let mut out = Vec::with_capacity(3 + body.len());
                out.extend_from_slice(&[FRAME_PLAIN, tag_byte, codec]);
                out.extend_from_slice(body);
                out
            }
            Some(cipher) => {
                let mut nonce = [0u8; NONCE_LEN];
                // An RNG failure here would repeat nonces; there is no safe
                // fallback, so stop.
                getrandom::fill(&mut nonce).expect("the OS random number generator failed");
                let mut out = Vec::with_capacity(1 + NONCE_LEN + 2 + body.len() + TAG_LEN);
                out.push(FRAME_SEALED);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&[tag_byte, codec]);
                out.extend_from_slice(body);
                let start = 1 + NONCE_LEN;
                let tag = cipher
                    .encrypt_inout_detached(&XNonce::from(nonce), aad, (&mut out[start..]).into())
                    .expect("XChaCha20-Poly1305 accepts any length below 256 GiB");
                out.extend_from_slice(&tag);
                out
            }
        }
    }

    /// The kind byte and plaintext of a frame. A raw body decrypted here is
    /// a part of the decryption buffer, not a copy of it.
    fn unframe(&self, aad: &[u8], stored: &[u8]) -> Result<(u8, Bytes), SealError> {
        let (&frame, rest) = stored.split_first().ok_or(SealError::Truncated)?;
        let decrypted: Option<Bytes> = match (frame, &self.cipher) {
            (FRAME_PLAIN, None) => None,
            (FRAME_SEALED, Some(cipher)) => {
                if rest.len() < NONCE_LEN + 2 + TAG_LEN {
                    return Err(SealError::Truncated);
                }
                let (nonce, rest) = rest.split_at(NONCE_LEN);
                let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
                let mut buf = ct.to_vec();
                let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Truncated)?;
                let tag = Tag::try_from(tag).map_err(|_| SealError::Truncated)?;
                cipher
                    .decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
                    .map_err(|_| SealError::Auth)?;
                Some(buf.into())
            }
            (f, _) => return Err(SealError::Frame(f)),
        };
        let inner: &[u8] = decrypted.as_deref().unwrap_or(rest);
        if inner.len() < 2 {
            return Err(SealError::Truncated);
        }
        let body = &inner[2..];
        let plain = match inner[1] {
            CODEC_RAW => match &decrypted {
                Some(d) => d.slice(2..),
                None => Bytes::copy_from_slice(body),
            },
            CODEC_ZSTD => decompress(body, None)?.into(),
            CODEC_ZSTD_DICT => {
                let id = zstd::zstd_safe::get_dict_id_from_frame(body)
                    .ok_or_else(|| SealError::Decompress("zstd frame names no dictionary".into()))?
                    .get();
                let dict = self.dictionary(id).ok_or(SealError::MissingDictionary(id))?;
                decompress(body, Some(&dict))?.into()
            }
            c => return Err(SealError::Decompress(format!("unknown codec {c}"))),
        };
        Ok((inner[0], plain))
    }
}

fn decompress(body: &[u8], dict: Option<&Dictionary>) -> Result<Vec<u8>, SealError> {
    let size = zstd::zstd_safe::get_frame_content_size(body)
        .map_err(|_| SealError::Decompress("bad zstd frame".into()))?
        .ok_or_else(|| SealError::Decompress("zstd frame without content size".into()))?;
    if size > MAX_OBJECT_SIZE {
        return Err(SealError::Decompress(format!("object of {size} bytes is too large")));
    }
    let mut out = Vec::with_capacity(size as usize);
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        match dict {
            Some(dict) => d.decompress_using_ddict(&mut out, body, dict.ddict()),
            None => d.decompress(&mut out, body),
        }
    })
    .map_err(|code| SealError::Decompress(zstd::zstd_safe::get_error_name(code).to_string()))?;
    if out.len() as u64 != size {
        return Err(SealError::Decompress("zstd frame shorter than declared".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codecs() -> Vec<Codec> {
        vec![Codec::new(None, 3), Codec::new(Some(Keys::generate().expect("rng")), 3)]
    }

    #[test]
    fn open_shared_slices_raw_frames_and_still_verifies() {
        let plain: Vec<u8> = (0..1563u32).flat_map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
        let mut shared = 0;
        for codec in codecs() {
            for body in [plain.clone(), vec![0u8; 50_000]] {
                let id = codec.id(Kind::Chunk, &body);
                let stored = bytes::Bytes::from(codec.seal(&id, Kind::Chunk, &body));
                let (kind, got) = codec.open_shared(&id, stored.clone()).expect("open");
                assert_eq!((kind, &got[..]), (Kind::Chunk, &body[..]));
                let raw_plain = stored[0] == FRAME_PLAIN && stored[2] == CODEC_RAW;
                assert_eq!(raw_plain, got.as_ptr() == stored[3..].as_ptr(), "shared exactly when raw and plain");
                shared += usize::from(raw_plain);
                let mut bad = stored.to_vec();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(codec.open_shared(&id, bad.into()).is_err(), "a flipped byte passes");
            }
        }
        assert_eq!(shared, 1, "only the incompressible body in the plain codec is stored raw");
    }

    #[test]
    fn seal_open_round_trip() {
        for codec in codecs() {
            for plain in [Vec::new(), b"short".to_vec(), vec![7u8; 100_000], (0..=255u8).cycle().take(5000).collect()] {
                let id = codec.id(Kind::Chunk, &plain);
                let stored = codec.seal(&id, Kind::Chunk, &plain);
                let (kind, back) = codec.open(&id, &stored).expect("opens");
                assert_eq!(kind, Kind::Chunk);
                assert_eq!(back, plain);
            }
        }
    }

    #[test]
    fn compression_applies_when_it_helps() {
        let codec = Codec::new(None, 3);
        let plain = vec![0u8; 1 << 20];
        let id = codec.id(Kind::Chunk, &plain);
        assert!(codec.seal(&id, Kind::Chunk, &plain).len() < 1000);
    }

    #[test]
    fn damage_never_yields_wrong_bytes() {
        for codec in codecs() {
            let plain = b"some file content that is long enough to compress, compress, compress".repeat(3);
            let id = codec.id(Kind::Chunk, &plain);
            let stored = codec.seal(&id, Kind::Chunk, &plain);
            for i in 0..stored.len() {
                let mut bad = stored.clone();
                bad[i] ^= 0x10;
                // A plain zstd frame has header bits that do not change the
                // output; the content hash still vouches for it.
                if let Ok((_, back)) = codec.open(&id, &bad) {
                    assert!(!codec.encrypted() && back == plain, "flip at byte {i} accepted");
                }
            }
            for n in 0..stored.len() {
                assert!(codec.open(&id, &stored[..n]).is_err(), "truncation to {n} went unnoticed");
            }
        }
    }

    #[test]
    fn keyed_ids_differ_and_hide_plain_ids() {
        let plain = b"hello";
        let a = Codec::new(None, 3).id(Kind::Chunk, plain);
        let b = Codec::new(Some(Keys::generate().expect("rng")), 3).id(Kind::Chunk, plain);
        assert_ne!(a, b);
        assert_eq!(a, ObjectId(*blake3::hash(b"\x01hello").as_bytes()));
    }

    #[test]
    fn sealed_frame_holds_no_plaintext() {
        let codec = Codec::new(Some(Keys::generate().expect("rng")), 3);
        let plain = b"SECRET-MARKER-42 SECRET-MARKER-42".to_vec();
        let id = codec.id(Kind::Chunk, &plain);
        let stored = codec.seal(&id, Kind::Chunk, &plain);
        assert!(!stored.windows(16).any(|w| w == b"SECRET-MARKER-42"));
    }
}
