//! The repository master key and its Argon2id-wrapped key file, in the
//! manner of restic's key files (docs/FORMAT.md, "Key file").

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::encoding::{DecodeError, Reader, Writer};

const KEY_FILE_VERSION: u8 = 1;
const WRAP_AAD: &[u8] = b"monofs key file v1";
const CHUNKER_SEED_CONTEXT: &str = "monofs 2026 chunker gear seed v1";

/// The secret keys of an encrypted repository.
#[derive(Clone)]
pub struct Keys {
    /// XChaCha20-Poly1305 key sealing every object.
    pub(crate) data: [u8; 32],
    /// BLAKE3 key that object ids are computed with.
    pub(crate) id: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Fresh random keys from the OS.
    pub fn generate() -> std::io::Result<Keys> {
        let mut raw = [0u8; 64];
        getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
        Ok(Keys::from_bytes(&raw))
    }

    fn from_bytes(raw: &[u8; 64]) -> Keys {
        let mut data = [0u8; 32];
        let mut id = [0u8; 32];
        data.copy_from_slice(&raw[..32]);
        id.copy_from_slice(&raw[32..]);
        Keys { data, id }
    }

    fn to_bytes(&self) -> [u8; 64] {
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&self.data);
        raw[32..].copy_from_slice(&self.id);
        raw
    }

    /// Seed for the chunker's gear table, so chunk boundaries (and with them
    /// chunk sizes) do not fingerprint known files.
    pub fn chunker_seed(&self) -> u64 {
        let k = blake3::derive_key(CHUNKER_SEED_CONTEXT, &self.id);
        u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]])
    }
}

/// Argon2id cost parameters stored with a key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended Argon2id baseline (19 MiB, 2 passes, 1 lane):
    /// about 30 ms here, so every command on an encrypted repository stays
    /// quick, while each guess costs an attacker the same memory-hard work.
    /// The parameters are stored in the key file, so stronger ones can be
    /// used without a format change.
    fn default() -> Self {
        KdfParams { m_cost: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

/// Returned when a passphrase does not unwrap the master key.
#[derive(Debug, thiserror::Error)]
#[error("wrong passphrase")]
pub struct WrongPassphrase;

/// The master key sealed under a key derived from a passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    sealed: Vec<u8>,
}

fn derive(params: KdfParams, passphrase: &[u8], salt: &[u8]) -> Result<[u8; 32], WrongPassphrase> {
    let p = argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32)).map_err(|_| WrongPassphrase)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    argon.hash_password_into(passphrase, salt, &mut out).map_err(|_| WrongPassphrase)?;
    Ok(out)
}

impl KeyFile {
    /// Wraps `keys` under `passphrase` with fresh salt and nonce.
    pub fn create(keys: &Keys, passphrase: &[u8], params: KdfParams) -> std::io::Result<KeyFile> {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        let kek = derive(params, passphrase, &salt).map_err(std::io::Error::other)?;
        let cipher = XChaCha20Poly1305::new(&Key::from(kek));
        let mut sealed = keys.to_bytes().to_vec();
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), WRAP_AAD, sealed.as_mut_slice().into())
            .map_err(|_| std::io::Error::other("key wrap failed"))?;
        sealed.extend_from_slice(&tag);
        Ok(KeyFile { params, salt, nonce, sealed })
    }

    /// Recovers the keys; fails on a wrong passphrase or a damaged key file.
    pub fn unwrap(&self, passphrase: &[u8]) -> Result<Keys, WrongPassphrase> {
        let kek = derive(self.params, passphrase, &self.salt)?;
        let cipher = XChaCha20Poly1305::new(&Key::from(kek));
        if self.sealed.len() != 64 + 16 {
            return Err(WrongPassphrase);
        }
        let (body, tag) = self.sealed.split_at(64);
        let mut raw = [0u8; 64];
        raw.copy_from_slice(body);
        let tag = chacha20poly1305::Tag::try_from(tag).map_err(|_| WrongPassphrase)?;
        cipher
            .decrypt_inout_detached(&XNonce::from(self.nonce), WRAP_AAD, raw.as_mut_slice().into(), &tag)
            .map_err(|_| WrongPassphrase)?;
        Ok(Keys::from_bytes(&raw))
    }

    /// Serialised form stored in the repository's meta table.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(KEY_FILE_VERSION);
        w.varint(u64::from(self.params.m_cost));
        w.varint(u64::from(self.params.t_cost));
        w.varint(u64::from(self.params.p_cost));
        w.bytes(&self.salt);
        w.bytes(&self.nonce);
        w.bytes(&self.sealed);
        w.into_bytes()
    }

    /// Parses [`KeyFile::encode`] output.
    pub fn decode(bytes: &[u8]) -> Result<KeyFile, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u8()?;
        if v != KEY_FILE_VERSION {
            return Err(DecodeError::Invalid { what: "key file version", value: u64::from(v) });
        }
        let params = KdfParams {
            m_cost: r.varint_u32("argon2 memory")?,
            t_cost: r.varint_u32("argon2 iterations")?,
            p_cost: r.varint_u32("argon2 lanes")?,
        };
        // The key file is not authenticated before use: bound the costs so
        // a tampered one cannot make opening allocate or spin without limit.
        if params.m_cost > 4 << 20 || params.t_cost > 64 || params.p_cost > 64 {
            return Err(DecodeError::Invalid { what: "argon2 cost", value: u64::from(params.m_cost) });
        }
        let salt = r.bytes()?.try_into().map_err(|_| DecodeError::Truncated)?;
        let nonce = r.bytes()?.try_into().map_err(|_| DecodeError::Truncated)?;
        let sealed = r.bytes()?.to_vec();
        r.finish()?;
        Ok(KeyFile { params, salt, nonce, sealed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };

    #[test]
    fn wrap_unwrap() {
        let keys = Keys::generate().expect("rng");
        let file = KeyFile::create(&keys, b"pw", FAST).expect("wrap");
        let file = KeyFile::decode(&file.encode()).expect("decode");
        let back = file.unwrap(b"pw").expect("right passphrase");
        assert_eq!(back.to_bytes(), keys.to_bytes());
        assert!(file.unwrap(b"wrong").is_err());
    }

    #[test]
    fn tampered_key_file_is_rejected() {
        let keys = Keys::generate().expect("rng");
        let mut file = KeyFile::create(&keys, b"pw", FAST).expect("wrap");
        file.sealed[3] ^= 1;
        assert!(file.unwrap(b"pw").is_err());
    }
}
