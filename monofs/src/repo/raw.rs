//! A repository opened without unwrapping its key: stored frames, refs and
//! settings as bytes. Replication copies encrypted repositories this way,
//! so their objects stay sealed and no passphrase is needed.

use std::path::{Path, PathBuf};

use super::dictionaries::{self, DictionaryRecord};
use super::{META_CONFIG, META_KEY, Repository, STORE_FILE, claim_new, codec_for, decode_config, undo_creation};
use crate::crypto::{Codec, KeyFile};
use crate::error::{Error, Result};
use crate::repo::{Config, RepoLock};
use crate::store::{MemoryStore, RedbStore, Store, Table, Transaction};

/// What a copy of a repository needs besides objects and refs: the config
/// record, the wrapped key file and the compression dictionaries, as
/// stored. The first two make two stores the same repository (same
/// passphrase, same object ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoMeta {
    /// The encoded [`Config`].
    pub config: Vec<u8>,
    /// The encoded key file, for an encrypted repository.
    pub key: Option<Vec<u8>>,
    /// The dictionary records (sealed in an encrypted repository).
    pub dictionaries: Vec<DictionaryRecord>,
}

impl RepoMeta {
    /// Reads it from a store.
    pub fn read(store: &dyn Store) -> Result<RepoMeta> {
        let config = store
            .get(Table::Meta, META_CONFIG)?
            .ok_or(Error::BadMetadata { what: "repository config", source: crate::encoding::DecodeError::Truncated })?;
        Ok(RepoMeta { config, key: store.get(Table::Meta, META_KEY)?, dictionaries: dictionaries::read(store)? })
    }

    /// Without the dictionary records that cannot be dictionaries of a
    /// repository whose objects `codec` opens (`None`: sealed, without the
    /// key; see [`dictionaries::unusable`]). A replica lists only those it
    /// can use: the other side then sends a sound record in place of an
    /// unusable one, and never sends its own unusable records.
    pub fn usable(mut self, codec: Option<&Codec>) -> RepoMeta {
        self.dictionaries.retain(|(key, record)| dictionaries::unusable(codec, key, record).is_none());
        self
    }

    /// Whether `key` of the meta table belongs to a [`RepoMeta`]; a clone
    /// that copies a whole store file keeps these entries and drops the
    /// others (remotes, marks), which belong to the source.
    pub fn holds(key: &[u8]) -> bool {
        key == META_CONFIG || key == META_KEY || dictionaries::is_key(key)
    }

    /// Whether `other` is the same repository (config and key file).
    pub fn same_repository(&self, other: &RepoMeta) -> bool {
        self.config == other.config && self.key == other.key
    }

    /// The codec that verifies this repository's objects without a key:
    /// `Some` for an unencrypted repository, `None` for an encrypted one
    /// (its frames can then only be checked for shape).
    pub fn keyless_codec(&self) -> Result<Option<Codec>> {
        let config = decode_config(Path::new("<repository meta>"), &self.config)?;
        if config.encrypted {
            return Ok(None);
        }
        let codec = Codec::new(None, config.zstd_level);
        dictionaries::install(&codec, &self.dictionaries);
        Ok(Some(codec))
    }
}

/// The records of `records` that can be dictionaries of a repository whose
/// objects `codec` opens (`None`: a sealed one, without its key; see
/// [`dictionaries::unusable`]). The others are left out with a warning: no
/// object can use them, and stored they would make every command warn,
/// spread to replicas, and keep a sound record under their key out.
fn usable_dictionaries(records: &[DictionaryRecord], codec: Option<&Codec>) -> Vec<DictionaryRecord> {
    let usable = |(key, record): &&DictionaryRecord| match dictionaries::unusable(codec, key, record) {
        None => true,
        Some(why) => {
            tracing::warn!(key = %String::from_utf8_lossy(key), "dictionary record left out: {why}");
            false
        }
    };
    records.iter().filter(usable).cloned().collect()
}

fn put_dictionaries(tx: &mut dyn Transaction, records: &[DictionaryRecord]) -> Result<()> {
    for (key, record) in records {
        tx.put(Table::Meta, key, record)?;
    }
    Ok(())
}

/// Page cache of a store created by [`RawRepository::create_for_import`].
pub const IMPORT_CACHE_BYTES: usize = 32 << 20;

/// A repository whose objects are handled as stored frames. It has a
/// [`Codec`] (to verify and read objects) only when the repository is
/// unencrypted or after [`RawRepository::unlock`]. Holds the repository lock
/// until dropped.
pub struct RawRepository {
    path: PathBuf,
    store: Box<dyn Store>,
    config: Config,
    codec: Option<Codec>,
    _lock: Option<RepoLock>,
}

impl std::fmt::Debug for RawRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRepository").field("path", &self.path).field("keyed", &self.codec.is_some()).finish()
    }
}

impl RawRepository {
    /// Opens the repository at `path` without asking for a passphrase.
    pub fn open(path: &Path) -> Result<RawRepository> {
        if !path.exists() {
            return Err(Error::NoSuchRepository(path.to_owned()));
        }
        let file = path.join(STORE_FILE);
        if !file.is_file() {
            return Err(Error::NotARepository(path.to_owned()));
        }
        let lock = RepoLock::acquire(path)?;
        let store = RedbStore::open(&file)?;
        let raw = store.get(Table::Meta, META_CONFIG)?.ok_or_else(|| Error::NotARepository(path.to_owned()))?;
        let config = decode_config(path, &raw)?;
        Self::assemble(path.to_owned(), Box::new(store), config, Some(lock))
    }

    /// Creates a repository at `path` (absent or an empty directory) with
    /// the settings and key file of another one, and nothing else: no
    /// objects, no refs. Objects and refs are copied in afterwards.
    pub fn create(path: &Path, meta: &RepoMeta) -> Result<RawRepository> {
        Self::create_with_cache(path, meta, None)
    }

    /// [`RawRepository::create`] for a store about to be filled by a bulk
    /// copy: its page cache holds `IMPORT_CACHE_BYTES` rather than the
    /// default (see [`RedbStore::create_with_cache`]).
    pub fn create_for_import(path: &Path, meta: &RepoMeta) -> Result<RawRepository> {
        Self::create_with_cache(path, meta, Some(IMPORT_CACHE_BYTES))
    }

    fn create_with_cache(path: &Path, meta: &RepoMeta, cache: Option<usize>) -> Result<RawRepository> {
        let lock = claim_new(path)?;
        let file = path.join(STORE_FILE);
        let store = match cache {
            Some(bytes) => RedbStore::create_with_cache(&file, bytes),
            None => RedbStore::create(&file),
        };
        let made =
            store.map_err(Error::from).and_then(|s| Self::create_in(path.to_owned(), Box::new(s), meta, Some(lock)));
        undo_creation(&file, made)
    }

    /// [`RawRepository::create`] in memory, for tests.
    pub fn in_memory(meta: &RepoMeta) -> Result<RawRepository> {
        Self::create_in(PathBuf::from("<memory>"), Box::<MemoryStore>::default(), meta, None)
    }

    fn create_in(path: PathBuf, store: Box<dyn Store>, meta: &RepoMeta, lock: Option<RepoLock>) -> Result<Self> {
        let config = decode_config(&path, &meta.config)?;
        if config.encrypted {
            let key = meta
                .key
                .as_deref()
                .ok_or(Error::BadMetadata { what: "key file", source: crate::encoding::DecodeError::Truncated })?;
            KeyFile::decode(key).map_err(|source| Error::BadMetadata { what: "key file", source })?;
        }
        let mut tx = store.begin()?;
        tx.put(Table::Meta, META_CONFIG, &meta.config)?;
        if let Some(key) = &meta.key {
            tx.put(Table::Meta, META_KEY, key)?;
        }
        let keyless = (!config.encrypted).then(|| Codec::new(None, config.zstd_level));
        put_dictionaries(tx.as_mut(), &usable_dictionaries(&meta.dictionaries, keyless.as_ref()))?;
        tx.commit()?;
        Self::assemble(path, store, config, lock)
    }

    fn assemble(path: PathBuf, store: Box<dyn Store>, config: Config, lock: Option<RepoLock>) -> Result<RawRepository> {
        let codec = if config.encrypted { None } else { Some(codec_for(store.as_ref(), None, &config)?) };
        Ok(RawRepository { path, store, config, codec, _lock: lock })
    }

    /// Stores the dictionaries of `records` that this repository lacks (a
    /// replica needs them before objects compressed with them arrive), or
    /// has only as a record no object can use, and teaches them to the
    /// codec. Records that cannot be dictionaries of this repository are
    /// left out (see [`dictionaries::unusable`]; only their shape can be
    /// checked without the key).
    pub fn add_dictionaries(&self, records: &[DictionaryRecord]) -> Result<()> {
        let codec = self.codec.as_ref();
        let have = dictionaries::read(self.store.as_ref())?;
        let sound = |k: &[u8]| have.iter().any(|(h, v)| h == k && dictionaries::unusable(codec, h, v).is_none());
        let new: Vec<DictionaryRecord> =
            usable_dictionaries(records, codec).into_iter().filter(|(k, _)| !sound(k)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin()?;
        put_dictionaries(tx.as_mut(), &new)?;
        tx.commit()?;
        if let Some(codec) = &self.codec {
            dictionaries::install(codec, &new);
        }
        Ok(())
    }

    /// Unwraps the key with `passphrase` so that objects can be verified
    /// and read; a no-op for an unencrypted repository.
    pub fn unlock(&mut self, passphrase: &[u8]) -> Result<()> {
        if self.codec.is_some() {
            return Ok(());
        }
        let raw = self
            .store
            .get(Table::Meta, META_KEY)?
            .ok_or(Error::BadMetadata { what: "key file", source: crate::encoding::DecodeError::Truncated })?;
        let keyfile = KeyFile::decode(&raw).map_err(|source| Error::BadMetadata { what: "key file", source })?;
        let keys = keyfile.unwrap(passphrase).map_err(|_| Error::WrongPassphrase(self.path.clone()))?;
        self.codec = Some(codec_for(self.store.as_ref(), Some(keys), &self.config)?);
        Ok(())
    }

    /// The config record, key file and dictionaries, as stored; without
    /// dictionary records that no object can use (see
    /// [`RepoMeta::usable`]).
    pub fn meta(&self) -> Result<RepoMeta> {
        Ok(RepoMeta::read(self.store.as_ref())?.usable(self.codec.as_ref()))
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Settings fixed at creation.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage backend.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The codec, when objects can be opened: unencrypted, or unlocked.
    pub fn codec(&self) -> Option<&Codec> {
        self.codec.as_ref()
    }
}

impl Repository {
    /// The same open repository, handled as stored frames (keeps the lock
    /// and the key).
    pub fn into_raw(self) -> RawRepository {
        let Repository { path, store, codec, config, _lock, zero_chunk: _ } = self;
        RawRepository { path, store, config, codec: Some(codec), _lock }
    }

    /// The config record, key file and dictionaries, as stored; without
    /// dictionary records that no object can use (see
    /// [`RepoMeta::usable`]).
    pub fn meta(&self) -> Result<RepoMeta> {
        Ok(RepoMeta::read(self.store())?.usable(Some(self.codec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InitOptions;
    use crate::crypto::KdfParams;

    fn encrypted_opts() -> InitOptions {
        InitOptions {
            passphrase: Some(b"pw".to_vec()),
            kdf: KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 },
            chunker: None,
        }
    }

    #[test]
    fn a_copy_of_the_meta_opens_with_the_same_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Repository::init(&dir.path().join("src"), encrypted_opts()).expect("init");
        let meta = src.meta().expect("meta");
        let src_codec = src.codec().clone();
        drop(src);
        let mut raw = RawRepository::open(&dir.path().join("src")).expect("open raw");
        assert!(raw.codec().is_none(), "no key without the passphrase");
        assert_eq!(raw.meta().expect("meta"), meta);
        assert!(matches!(raw.unlock(b"wrong"), Err(Error::WrongPassphrase(_))));
        raw.unlock(b"pw").expect("unlock");
        let plain = b"x";
        let kind = crate::object::Kind::Chunk;
        assert_eq!(raw.codec().expect("codec").id(kind, plain), src_codec.id(kind, plain));
        drop(raw);
        let copy = RawRepository::create(&dir.path().join("copy"), &meta).expect("create");
        assert!(copy.config().encrypted);
        drop(copy);
        assert!(RawRepository::create(&dir.path().join("copy"), &meta).is_err(), "never over a repository");
        // Without refs yet, it is an unfinished clone to every other command.
        let refused = Repository::open(&dir.path().join("copy"), &mut || Ok(b"pw".to_vec()));
        assert!(matches!(refused, Err(Error::UnfinishedClone { .. })), "{refused:?}");
        let mut opened = RawRepository::open(&dir.path().join("copy")).expect("open raw");
        opened.unlock(b"pw").expect("unlock the copy");
        assert_eq!(opened.codec().expect("codec").id(kind, plain), src_codec.id(kind, plain));
    }

    #[test]
    fn plain_repositories_have_a_codec_without_unlocking() {
        let src = Repository::in_memory(InitOptions::default()).expect("init");
        let raw = RawRepository::in_memory(&src.meta().expect("meta")).expect("raw");
        assert!(raw.codec().is_some());
        assert!(src.into_raw().codec().is_some());
    }
}
