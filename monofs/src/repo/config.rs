//! The repository config record (meta table, key `config`).

use crate::encoding::{DecodeError, Reader, Writer};

/// Format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 2;

/// The first format whose objects may be compressed with a dictionary
/// (codec 2); older repositories are read and written as they are.
pub const DICTIONARY_VERSION: u64 = 2;

/// Whether this build reads and writes format `version`.
pub fn supported(version: u64) -> bool {
    (1..=FORMAT_VERSION).contains(&version)
}

/// FastCDC bounds in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk (except a file's last).
    pub min: u32,
    /// Target average.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl ChunkerParams {
    /// Whether FastCDC accepts these bounds (min 64 B..1 MiB, avg 256 B..4
    /// MiB, max 1 KiB..16 MiB, min <= avg <= max).
    pub fn is_valid(&self) -> bool {
        (64..=1 << 20).contains(&self.min)
            && (256..=4 << 20).contains(&self.avg)
            && (1024..=16 << 20).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min: 16 << 10, avg: 64 << 10, max: 256 << 10 }
    }
}

/// Settings fixed when a repository is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// On-disk format version.
    pub version: u64,
    /// Whether objects are encrypted (a key file exists).
    pub encrypted: bool,
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// zstd level for new objects.
    pub zstd_level: i32,
    /// Random id of this repository.
    pub repo_id: [u8; 16],
}

impl Config {
    /// A config for a new repository.
    pub fn new(encrypted: bool) -> std::io::Result<Config> {
        let mut repo_id = [0u8; 16];
        getrandom::fill(&mut repo_id).map_err(std::io::Error::other)?;
        Ok(Config { version: FORMAT_VERSION, encrypted, chunker: ChunkerParams::default(), zstd_level: 3, repo_id })
    }

    /// The stored record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.varint(self.version);
        w.u8(u8::from(self.encrypted));
        w.varint(u64::from(self.chunker.min));
        w.varint(u64::from(self.chunker.avg));
        w.varint(u64::from(self.chunker.max));
        w.signed(i64::from(self.zstd_level));
        w.bytes(&self.repo_id);
        w.into_bytes()
    }

    /// Parses the record; the version is returned even when the rest is
    /// unknown to this build, so callers can say so.
    pub fn decode(bytes: &[u8]) -> Result<Config, (Option<u64>, DecodeError)> {
        let mut r = Reader::new(bytes);
        let version = r.varint().map_err(|e| (None, e))?;
        if !supported(version) {
            return Err((Some(version), DecodeError::Invalid { what: "format version", value: version }));
        }
        let rest = || -> Result<Config, DecodeError> {
            let encrypted = match r.u8()? {
                0 => false,
                1 => true,
                v => {
                    return Err(DecodeError::Invalid { what: "encryption flag", value: u64::from(v) });
                }
            };
            let chunker = ChunkerParams {
                min: r.varint_u32("chunk min")?,
                avg: r.varint_u32("chunk avg")?,
                max: r.varint_u32("chunk max")?,
            };
            if !chunker.is_valid() {
                return Err(DecodeError::Invalid { what: "chunker bounds", value: u64::from(chunker.avg) });
            }
            let level = r.signed()?;
            let zstd_level =
                i32::try_from(level).map_err(|_| DecodeError::Invalid { what: "zstd level", value: level as u64 })?;
            let repo_id = r.bytes()?.try_into().map_err(|_| DecodeError::Truncated)?;
            r.finish()?;
            Ok(Config { version, encrypted, chunker, zstd_level, repo_id })
        };
        rest().map_err(|e| (Some(version), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = Config::new(true).expect("rng");
        assert_eq!(Config::decode(&c.encode()).expect("decodes"), c);
    }

    #[test]
    fn future_version_is_reported() {
        let mut c = Config::new(false).expect("rng");
        c.version = 9;
        assert_eq!(Config::decode(&c.encode()).err().map(|e| e.0), Some(Some(9)));
    }

    #[test]
    fn format_one_still_opens() {
        let mut c = Config::new(false).expect("rng");
        c.version = 1;
        assert_eq!(Config::decode(&c.encode()).expect("format 1").version, 1);
        c.version = 0;
        assert!(Config::decode(&c.encode()).is_err());
    }
}
