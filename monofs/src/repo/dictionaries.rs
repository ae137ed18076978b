//! The repository's zstd dictionaries: stored as records in the `meta`
//! table under `dict/<id>`, loaded into the codec when the repository
//! opens, trained by the first large snapshot (docs/FORMAT.md,
//! "Dictionaries").

use super::Repository;
use crate::crypto::Codec;
use crate::crypto::dictionary::{self, META_PREFIX};
use crate::error::Result;
use crate::store::{Store, Table};

/// A stored dictionary: its `meta` key and its record frame.
pub type DictionaryRecord = (Vec<u8>, Vec<u8>);

/// Every stored dictionary record, as stored.
pub(crate) fn read(store: &dyn Store) -> Result<Vec<DictionaryRecord>> {
    let mut out = Vec::new();
    store.scan(Table::Meta, META_PREFIX, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        true
    })?;
    Ok(out)
}

/// Teaches `codec` the dictionaries in `records`. A record that does not
/// open, or whose dictionary is not the one its key names, is skipped with
/// a warning: the objects compressed with it then fail to open, loudly,
/// and `fsck` names them.
pub fn install(codec: &Codec, records: &[DictionaryRecord]) {
    for (key, record) in records {
        let raw = match codec.open_record(key, record) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(key = %String::from_utf8_lossy(key), "dictionary record does not open: {e}");
                continue;
            }
        };
        match dictionary::id_of(&raw) {
            Some(id) if dictionary::meta_key(id) == *key => {
                codec.add_dictionary(raw);
            }
            _ => tracing::warn!(key = %String::from_utf8_lossy(key), "dictionary record holds another dictionary"),
        }
    }
}

/// Whether `key` can name a dictionary record.
pub(crate) fn is_key(key: &[u8]) -> bool {
    key.len() == META_PREFIX.len() + 8
        && key.starts_with(META_PREFIX)
        && key[META_PREFIX.len()..].iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Repository {
    /// Whether a snapshot should offer samples to [`Repository::train_dictionary`]:
    /// the format has dictionaries and the repository has none yet.
    pub fn wants_dictionary(&self) -> bool {
        self.config.version >= super::DICTIONARY_VERSION && self.codec.dictionaries().is_empty()
    }

    /// Trains a dictionary from `samples` (contents of small files) when
    /// the repository has none yet and its format has them, stores it, and
    /// compresses new objects with it from then on. Returns whether it did.
    ///
    /// The dictionary is committed in a transaction of its own before any
    /// object uses it, so no crash can leave an object whose dictionary is
    /// not stored.
    pub fn train_dictionary(&self, samples: &[Vec<u8>]) -> Result<bool> {
        if !self.wants_dictionary() {
            return Ok(false);
        }
        let Some(raw) = dictionary::train(samples) else {
            return Ok(false);
        };
        let Some(id) = dictionary::id_of(&raw) else {
            return Ok(false);
        };
        let key = dictionary::meta_key(id);
        let mut tx = self.store.begin()?;
        tx.put(Table::Meta, &key, &self.codec.seal_record(&key, &raw))?;
        tx.commit()?;
        self.codec.add_dictionary(raw);
        tracing::debug!(id = format_args!("{id:08x}"), "dictionary trained");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InitOptions;
    use crate::object::Kind;

    fn samples() -> Vec<Vec<u8>> {
        (0..300u32)
            .map(|i| {
                (0..800u32)
                    .flat_map(|j| format!("fn item_{}(x: u32) -> u32 {{ x + {} }}\n", (i + j) % 50, j % 7).into_bytes())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_trained_dictionary_survives_reopening_and_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r");
        let repo = Repository::init(&path, InitOptions::default()).expect("init");
        assert!(repo.train_dictionary(&samples()).expect("train"));
        assert!(!repo.train_dictionary(&samples()).expect("second"), "one dictionary per repository");
        let plain = samples()[7][..4000].to_vec();
        let mut tx = repo.begin().expect("begin");
        let id = repo.put_object(tx.as_mut(), Kind::Chunk, &plain).expect("write");
        tx.commit().expect("commit");
        drop(repo);
        let repo = Repository::open(&path, &mut || Ok(Vec::new())).expect("open");
        assert_eq!(repo.codec().dictionaries().len(), 1);
        assert_eq!(repo.read(&id, Kind::Chunk).expect("read"), plain);
        let stored = repo.store().get(Table::Objects, id.as_bytes()).expect("get").expect("stored");
        assert_eq!(stored[2], 2, "compressed with the dictionary");
    }

    #[test]
    fn format_one_repositories_stay_without() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r");
        let repo = Repository::init(&path, InitOptions::default()).expect("init");
        let mut old = repo.config().clone();
        old.version = 1;
        let mut tx = repo.begin().expect("begin");
        tx.put(Table::Meta, super::super::META_CONFIG, &old.encode()).expect("put");
        tx.commit().expect("commit");
        drop(repo);
        let repo = Repository::open(&path, &mut || Ok(Vec::new())).expect("open");
        assert!(!repo.wants_dictionary());
        assert!(!repo.train_dictionary(&samples()).expect("train"));
    }

    #[test]
    fn record_keys_are_recognised() {
        assert!(is_key(b"dict/0123abcd"));
        assert!(!is_key(b"dict/0123ABCD"));
        assert!(!is_key(b"dict/0123abc"));
        assert!(!is_key(b"config"));
    }
}
