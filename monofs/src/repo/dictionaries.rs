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
        match open(codec, key, record) {
            Ok(raw) => {
                codec.add_dictionary(raw);
            }
            Err(why) => tracing::warn!(key = %String::from_utf8_lossy(key), "unusable dictionary record: {why}"),
        }
    }
}

/// The dictionary the record under `key` holds, or why it holds none that
/// objects could use: it does not open, it holds another dictionary than
/// its key names, or zstd cannot load it.
pub(crate) fn open(codec: &Codec, key: &[u8], record: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let raw = codec.open_record(key, record).map_err(|e| format!("it does not open: {e}"))?;
    match dictionary::check(&raw) {
        Some(id) if dictionary::meta_key(id) == *key => Ok(raw),
        Some(_) => Err("it holds another dictionary than its key names".into()),
        None => Err("zstd cannot load it as a dictionary".into()),
    }
}

/// Why the record under `key` cannot be a dictionary of a repository
/// whose objects `codec` opens, or, without the key (`None`), of a sealed
/// one (then only its shape can be checked).
pub(crate) fn unusable(codec: Option<&Codec>, key: &[u8], record: &[u8]) -> Option<String> {
    if !is_key(key) {
        return Some("its key cannot name a dictionary".into());
    }
    match codec {
        Some(codec) => open(codec, key, record).err(),
        None => (!crate::crypto::looks_sealed(record)).then(|| "it is not a sealed record".into()),
    }
}

/// The keys of the stored dictionary records that no object can use
/// ([`open`] fails), with the reason; `fsck` reports them, `gc` drops them.
pub(crate) fn unusable_records(codec: &Codec, store: &dyn Store) -> Result<Vec<(Vec<u8>, String)>> {
    Ok(read(store)?.into_iter().filter_map(|(k, v)| open(codec, &k, &v).err().map(|why| (k, why))).collect())
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

    /// A repository's sound dictionary record (trained from samples).
    fn trained(path: &std::path::Path, opts: InitOptions) -> DictionaryRecord {
        let repo = Repository::init(path, opts).expect("init");
        assert!(repo.train_dictionary(&samples()).expect("train"));
        read(repo.store()).expect("read").pop().expect("a record")
    }

    fn put_record(repo: &Repository, (key, record): &DictionaryRecord) {
        let mut tx = repo.begin().expect("begin");
        tx.put(Table::Meta, key, record).expect("put");
        tx.commit().expect("commit");
    }

    #[test]
    fn records_no_object_can_use_are_left_out_reported_and_collected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = trained(&dir.path().join("a"), InitOptions::default());
        let junk: DictionaryRecord = (b"dict/00000001".to_vec(), b"junk".to_vec());
        let other = Repository::init(&dir.path().join("b"), InitOptions::default()).expect("init");
        let raw = super::super::RawRepository::in_memory(&other.meta().expect("meta")).expect("raw");
        // A record that opens and names its id, and that zstd cannot load.
        let mut broken_raw = vec![0x37, 0xA4, 0x30, 0xEC, 2, 0, 0, 0];
        broken_raw.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let broken_key = dictionary::meta_key(2);
        let broken = (broken_key.clone(), Codec::new(None, 3).seal_record(&broken_key, &broken_raw));
        raw.add_dictionaries(&[junk.clone(), broken, good.clone()]).expect("add");
        assert_eq!(raw.meta().expect("meta").dictionaries, vec![good.clone()], "a bad record was stored");
        assert_eq!(read(raw.store()).expect("read"), vec![good.clone()], "a bad record was stored");

        // A record stored unchecked (by an older version) is reported by
        // fsck, replaced by a sound one under its key, and collected by gc.
        let unusable = (good.0.clone(), b"junk".to_vec());
        put_record(&other, &unusable);
        put_record(&other, &junk);
        assert!(other.meta().expect("meta").dictionaries.is_empty(), "unusable records listed to replicas");
        let report = other.fsck().expect("fsck");
        assert!(!report.is_sound());
        assert_eq!(report.records.len(), 2, "{:?}", report.records);
        let raw = other.into_raw();
        raw.add_dictionaries(std::slice::from_ref(&good)).expect("add");
        assert!(raw.meta().expect("meta").dictionaries.contains(&good), "the sound record did not replace it");
        drop(raw);
        let other = Repository::open(&dir.path().join("b"), &mut || Ok(Vec::new())).expect("open");
        assert_eq!(other.codec().dictionaries().len(), 1);
        assert_eq!(other.gc().expect("gc").dictionaries_removed, 1);
        let report = other.fsck().expect("fsck");
        assert!(report.is_sound(), "{:?}", report.records);
        assert_eq!(read(other.store()).expect("read"), vec![good]);
    }

    #[test]
    fn without_the_key_only_sealed_records_are_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = || InitOptions {
            passphrase: Some(b"pw".to_vec()),
            kdf: crate::crypto::KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 },
            chunker: None,
        };
        let sealed = trained(&dir.path().join("a"), opts());
        let plain = (b"dict/00000002".to_vec(), b"\0\0\0not sealed".to_vec());
        let meta = Repository::init(&dir.path().join("b"), opts()).expect("init").meta().expect("meta");
        let raw = super::super::RawRepository::in_memory(&meta).expect("raw");
        assert!(raw.codec().is_none());
        raw.add_dictionaries(&[plain, sealed.clone()]).expect("add");
        assert_eq!(raw.meta().expect("meta").dictionaries, vec![sealed]);
    }

    #[test]
    fn record_keys_are_recognised() {
        assert!(is_key(b"dict/0123abcd"));
        assert!(!is_key(b"dict/0123ABCD"));
        assert!(!is_key(b"dict/0123abc"));
        assert!(!is_key(b"config"));
    }
}
