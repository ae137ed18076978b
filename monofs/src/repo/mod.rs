//! A repository: a store, its codec and the refs that give objects meaning.

mod config;
mod dictionaries;
mod lock;
mod raw;
mod refs;
mod revspec;
mod root_meta;
mod sink;
mod synced_head;

use std::path::{Path, PathBuf};

pub use config::{ChunkerParams, Config, DICTIONARY_VERSION, FORMAT_VERSION};
pub(crate) use dictionaries::unusable_records as unusable_dictionaries;
pub use dictionaries::{DictionaryRecord, install as install_dictionaries};
pub use lock::{RepoLock, wait_for_lock};
pub use raw::{RawRepository, RepoMeta};
pub use refs::{HEAD, WORKTREE, WORKTREES_PREFIX, tag_ref, validate_ref_name, validate_tag_name, worktree_ref};
pub use root_meta::{ROOT_META_PREFIX, open_root_record, root_differs, root_meta_key};
pub use sink::{ObjectSink, WriteStats};
pub use synced_head::{META_WORKTREE_BASE, WorktreeBase, decode_worktree_base, note_worktree_base, still_at_base};

use crate::crypto::{Codec, KdfParams, KeyFile, Keys};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{ChunkList, Dir, Kind, Revision};
use crate::store::{MemoryStore, RedbStore, Store, Table, Transaction};

/// File name of the embedded store inside a repository directory.
pub const STORE_FILE: &str = "monofs.redb";
const META_CONFIG: &[u8] = b"config";
/// Meta key of an unfinished clone: its value names the source. Set when
/// a clone that copies objects into the store begins, cleared by the
/// commit that moves its refs (`monofs-sync`).
pub const META_PARTIAL_CLONE: &[u8] = b"sync.partial-clone";
/// The Unix socket in a repository through which its mount (or NFS
/// server) process, which owns the repository while it runs, takes
/// commands from other processes.
pub const CONTROL_SOCKET: &str = "control.sock";
/// The file a clone that copies the store file whole writes before it
/// renames it to [`STORE_FILE`].
pub const PARTIAL_STORE_FILE: &str = "monofs.redb.partial";
const META_KEY: &[u8] = b"key";

/// How a new repository is made.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Encrypt with a master key wrapped under this passphrase.
    pub passphrase: Option<Vec<u8>>,
    /// Argon2id costs for wrapping the key.
    pub kdf: KdfParams,
    /// Chunk size bounds; the defaults when `None`.
    pub chunker: Option<ChunkerParams>,
}

/// An open repository. Holds the repository lock until dropped.
pub struct Repository {
    path: PathBuf,
    store: Box<dyn Store>,
    codec: Codec,
    config: Config,
    _lock: Option<RepoLock>,
    /// Length and id of the chunk runs of zeros are cut into, once known
    /// (see [`Repository::zero_chunk`]).
    pub(crate) zero_chunk: std::sync::OnceLock<(u64, ObjectId)>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository").field("path", &self.path).field("config", &self.config).finish()
    }
}

/// Refuses to write an object that readers would reject as too large.
pub(crate) fn check_size(kind: Kind, plain: &[u8]) -> Result<()> {
    let size = plain.len() as u64;
    if size > crate::crypto::MAX_OBJECT_SIZE {
        return Err(Error::ObjectTooLarge { kind, size });
    }
    Ok(())
}

/// The codec of an opened repository, with its stored dictionaries.
fn codec_for(store: &dyn Store, keys: Option<Keys>, config: &Config) -> Result<Codec> {
    let codec = Codec::new(keys, config.zstd_level);
    dictionaries::install(&codec, &dictionaries::read(store)?);
    Ok(codec)
}

/// Makes `path` ready to hold a new repository (created when missing, else
/// empty) and locks it. What an `init` or clone killed before it stored
/// anything left there (an empty store, the lock file) counts as empty.
fn claim_new(path: &Path) -> Result<RepoLock> {
    let file = path.join(STORE_FILE);
    if file.exists() {
        // Locked first: a creation still under way holds the lock.
        let lock = RepoLock::acquire(path)?;
        if !holds_nothing(&file)? {
            return Err(Error::AlreadyARepository(path.to_owned()));
        }
        if !holds_only(path, &[STORE_FILE])? {
            return Err(Error::NotEmpty(path.to_owned()));
        }
        std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
        tracing::info!("{}: removed the empty store of an interrupted init or clone", path.display());
        return Ok(lock);
    }
    if path.exists() {
        if !is_empty_dir(path)? {
            return Err(Error::NotEmpty(path.to_owned()));
        }
    } else {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    }
    RepoLock::acquire(path)
}

/// Whether the store `file` is one an `init` or clone made and then died
/// (or failed) before writing its config: nothing to lose. A store that
/// cannot be read is not taken for one, nor for a repository.
fn holds_nothing(file: &Path) -> Result<bool> {
    let len = std::fs::metadata(file).map_or(0, |m| m.len());
    if len == 0 {
        return Ok(true);
    }
    match RedbStore::open(file) {
        Ok(store) => Ok(matches!(store.get(Table::Meta, META_CONFIG), Ok(None))),
        // Smaller than any store redb finished making (its first regions
        // take 70 KB): what an init killed at once leaves.
        Err(e) if len < 4096 => {
            let why = format!("not a store monofs can read ({e}): if an interrupted init left it, remove it");
            Err(Error::io(file, std::io::Error::other(why)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the store `file` of a creation that failed, so that the next
/// `init` or clone finds the directory as it was.
fn undo_creation<T>(file: &Path, made: Result<T>) -> Result<T> {
    if made.is_err() {
        let _ = std::fs::remove_file(file);
    }
    made
}

/// Whether `e` says this process cannot write to the repository directory.
fn cannot_write(e: &Error) -> bool {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    matches!(e, Error::Io { source, .. } if matches!(source.kind(), ReadOnlyFilesystem | PermissionDenied))
}

/// Parses the config record of the repository at `path`.
fn decode_config(path: &Path, raw: &[u8]) -> Result<Config> {
    Config::decode(raw).map_err(|(version, source)| match version {
        Some(v) if !config::supported(v) => Error::UnsupportedFormat { path: path.to_owned(), version: v },
        _ => Error::BadMetadata { what: "repository config", source },
    })
}

/// Whether `path` holds nothing but, perhaps, the lock file a failed
/// `init` leaves behind.
fn is_empty_dir(path: &Path) -> Result<bool> {
    holds_only(path, &[])
}

/// Whether `path` holds nothing but the lock file and `names`.
fn holds_only(path: &Path, names: &[&str]) -> Result<bool> {
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let name = entry.map_err(|e| Error::io(path, e))?.file_name();
        if name != lock::LOCK_FILE && !names.iter().any(|n| name == *n) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Repository {
    fn assemble(
        path: PathBuf,
        store: Box<dyn Store>,
        codec: Codec,
        config: Config,
        lock: Option<RepoLock>,
    ) -> Repository {
        Repository { path, store, codec, config, _lock: lock, zero_chunk: Default::default() }
    }

    /// Creates a repository in directory `path` (created if missing; an
    /// existing one must be empty).
    pub fn init(path: &Path, opts: InitOptions) -> Result<Repository> {
        let lock = claim_new(path)?;
        let file = path.join(STORE_FILE);
        let made = RedbStore::create(&file)
            .map_err(Error::from)
            .and_then(|store| Self::init_store(path.to_owned(), Box::new(store), opts, Some(lock)));
        undo_creation(&file, made)
    }

    /// A repository that lives in memory only (tests, `monofs tmp`).
    pub fn in_memory(opts: InitOptions) -> Result<Repository> {
        Self::init_store(PathBuf::from("<memory>"), Box::<MemoryStore>::default(), opts, None)
    }

    fn init_store(
        path: PathBuf,
        store: Box<dyn Store>,
        opts: InitOptions,
        lock: Option<RepoLock>,
    ) -> Result<Repository> {
        let io = |e| Error::io(&path, e);
        let mut config = Config::new(opts.passphrase.is_some()).map_err(io)?;
        if let Some(chunker) = opts.chunker {
            if !chunker.is_valid() {
                return Err(Error::BadMetadata {
                    what: "chunker bounds",
                    source: crate::encoding::DecodeError::Invalid {
                        what: "average chunk size",
                        value: u64::from(chunker.avg),
                    },
                });
            }
            config.chunker = chunker;
        }
        let (keys, keyfile) = match &opts.passphrase {
            Some(pw) => {
                let keys = Keys::generate().map_err(io)?;
                let file = KeyFile::create(&keys, pw, opts.kdf).map_err(io)?;
                (Some(keys), Some(file))
            }
            None => (None, None),
        };
        let codec = Codec::new(keys, config.zstd_level);
        let repo = Repository::assemble(path, store, codec, config, lock);
        let empty = Dir::default().encode();
        let empty_id = repo.codec.id(Kind::Dir, &empty);
        let mut tx = repo.store.begin()?;
        tx.put(Table::Meta, META_CONFIG, &repo.config.encode())?;
        if let Some(file) = keyfile {
            tx.put(Table::Meta, META_KEY, &file.encode())?;
        }
        tx.put_object(empty_id.as_bytes(), &repo.codec.seal(&empty_id, Kind::Dir, &empty), true)?;
        tx.put(Table::Refs, WORKTREE.as_bytes(), empty_id.as_bytes())?;
        tx.commit()?;
        Ok(repo)
    }

    /// Opens the repository in directory `path`, asking `passphrase` for
    /// the passphrase only if it is encrypted.
    pub fn open(path: &Path, passphrase: &mut dyn FnMut() -> std::io::Result<Vec<u8>>) -> Result<Repository> {
        Self::open_store(path, passphrase, false)
    }

    /// [`Repository::open`] with every page of the store file checked
    /// first (see [`RedbStore::open_verified`]): for `fsck`.
    pub fn open_verified(path: &Path, passphrase: &mut dyn FnMut() -> std::io::Result<Vec<u8>>) -> Result<Repository> {
        Self::open_store(path, passphrase, true)
    }

    fn open_store(
        path: &Path,
        passphrase: &mut dyn FnMut() -> std::io::Result<Vec<u8>>,
        verified: bool,
    ) -> Result<Repository> {
        let file = Self::store_file(path)?;
        let lock = match RepoLock::acquire(path) {
            Ok(lock) => lock,
            // Read-only media, or a directory this user may read but not
            // write: nothing can change the store from here, so no lock.
            Err(e) if cannot_write(&e) => return Self::open_read_only(path, &file, passphrase),
            Err(e) => return Err(e),
        };
        // Unlock with a read-only handle first: a wrong passphrase then
        // leaves the store file untouched, byte for byte. A store that needs
        // crash recovery cannot be opened read-only; the writable open below
        // repairs it and the key is checked there.
        // Not before a verified open: the read-only one trusts the file.
        let read_only = if verified { None } else { RedbStore::open_read_only(&file).ok() };
        let (config, keys) = match read_only {
            Some(ro) => Self::unlock(path, &ro, passphrase)?,
            None => (None, None),
        };
        let store = if verified { RedbStore::open_verified(&file)? } else { RedbStore::open(&file)? };
        refuse_unfinished_clone(path, &store)?;
        let (config, keys) = match config {
            Some(config) => (config, keys),
            None => match Self::unlock(path, &store, passphrase)? {
                (Some(config), keys) => (config, keys),
                (None, _) => return Err(Error::NotARepository(path.to_owned())),
            },
        };
        let codec = codec_for(&store, keys, &config)?;
        let repo = Repository::assemble(path.to_owned(), Box::new(store), codec, config, Some(lock));
        // Best effort: a revision that cannot be read (or a full disk) is
        // no reason to refuse the repository, fsck included; the note stays.
        if let Err(e) = repo.follow_synced_head() {
            tracing::warn!(
                "{}: the working tree did not follow HEAD after a sync without the key: {e}",
                path.display()
            );
        }
        Ok(repo)
    }

    /// Opens the repository in directory `path` shared with other processes
    /// that open it this way: each may read and write (write transactions
    /// take turns). For stores that several short-lived processes use at
    /// once, such as monocore's image store; commands that need the
    /// repository to themselves ([`Repository::open`]) are refused while it
    /// is open shared.
    pub fn open_shared(path: &Path, passphrase: &mut dyn FnMut() -> std::io::Result<Vec<u8>>) -> Result<Repository> {
        let file = Self::store_file(path)?;
        let lock = RepoLock::acquire_shared(path)?;
        let store = RedbStore::open_shared(&file)?;
        refuse_unfinished_clone(path, &store)?;
        let (config, keys) = match Self::unlock(path, &store, passphrase)? {
            (Some(config), keys) => (config, keys),
            (None, _) => return Err(Error::NotARepository(path.to_owned())),
        };
        let codec = codec_for(&store, keys, &config)?;
        Ok(Repository::assemble(path.to_owned(), Box::new(store), codec, config, Some(lock)))
    }

    /// The repository at `path` for reading only, without its lock: every
    /// change fails (see [`crate::store::ReadOnlyStore`]). A store that
    /// needs crash recovery cannot be opened so.
    fn open_read_only(
        path: &Path,
        file: &Path,
        passphrase: &mut dyn FnMut() -> std::io::Result<Vec<u8>>,
    ) -> Result<Repository> {
        let store = RedbStore::open_read_only(file)?;
        refuse_unfinished_clone(path, &store)?;
        let (config, keys) = match Self::unlock(path, &store, passphrase)? {
            (Some(config), keys) => (config, keys),
            (None, _) => return Err(Error::NotARepository(path.to_owned())),
        };
        let codec = codec_for(&store, keys, &config)?;
        tracing::info!("{}: opened read-only: it cannot be written here", path.display());
        Ok(Repository::assemble(path.to_owned(), Box::new(store), codec, config, None))
    }

    /// The store file of the repository in `path`, which must be one (an
    /// error like [`Repository::open`]'s otherwise; nothing is opened).
    pub fn store_file(path: &Path) -> Result<std::path::PathBuf> {
        if !path.exists() {
            return Err(Error::NoSuchRepository(path.to_owned()));
        }
        let file = path.join(STORE_FILE);
        if !file.is_file() {
            if path.join(PARTIAL_STORE_FILE).is_file() {
                let origin = "its source (the store file was being copied)".to_owned();
                return Err(Error::UnfinishedClone { path: path.to_owned(), origin });
            }
            return Err(Error::NotARepository(path.to_owned()));
        }
        Ok(file)
    }

    /// Reads the config and, when encrypted, unwraps the keys.
    fn unlock(
        path: &Path,
        store: &dyn Store,
        passphrase: &mut dyn FnMut() -> std::io::Result<Vec<u8>>,
    ) -> Result<(Option<Config>, Option<Keys>)> {
        let Some(raw) = store.get(Table::Meta, META_CONFIG)? else {
            return Ok((None, None));
        };
        let config = decode_config(path, &raw)?;
        let keys = if config.encrypted {
            let raw = store.get(Table::Meta, META_KEY)?.ok_or_else(|| Error::BadMetadata {
                what: "key file",
                source: crate::encoding::DecodeError::Truncated,
            })?;
            let keyfile = KeyFile::decode(&raw).map_err(|source| Error::BadMetadata { what: "key file", source })?;
            let pw = passphrase().map_err(|e| Error::io(path, e))?;
            Some(keyfile.unwrap(&pw).map_err(|_| Error::WrongPassphrase(path.to_owned()))?)
        } else {
            None
        };
        Ok((Some(config), keys))
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Settings fixed at creation.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Id, seal and open functions for this repository.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The storage backend.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Starts a raw write transaction.
    pub fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        Ok(self.store.begin()?)
    }

    /// Gives freed space back to the file system.
    pub fn compact(&self) -> Result<()> {
        Ok(self.store.compact()?)
    }

    /// Compacts when the store file has grown well past what it holds
    /// (redb doubles a small file when it needs room, and pages freed by
    /// copy-on-write stay in the file), so that a repository's size on disk,
    /// apparent or real, follows its content. Returns whether it compacted.
    pub fn compact_if_sparse(&self) -> Result<bool> {
        let (used, length) = (self.store.size_on_disk()?, self.store.apparent_size()?);
        if length <= used + (used / 16).max(4 << 20) {
            return Ok(false);
        }
        self.compact()?;
        Ok(true)
    }

    /// Whether an object is stored.
    pub fn has_object(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.store.has(Table::Objects, id.as_bytes())?)
    }

    /// Reads, verifies and returns an object's plaintext, which must be of
    /// `kind`.
    pub fn read(&self, id: &ObjectId, kind: Kind) -> Result<Vec<u8>> {
        let stored = self.store.get(Table::Objects, id.as_bytes())?.ok_or(Error::MissingObject(*id))?;
        self.open_frame(id, kind, &stored)
    }

    /// Verifies and opens the stored frame of object `id`, which must be
    /// of `kind`; see [`Repository::read`].
    pub fn open_frame(&self, id: &ObjectId, kind: Kind, stored: &[u8]) -> Result<Vec<u8>> {
        let opened = self.codec.open(id, stored);
        Self::expect_kind(id, kind, opened)
    }

    /// [`Repository::read`] that shares the store's buffer where it can (a
    /// raw chunk of an unencrypted repository is not copied).
    pub fn read_shared(&self, id: &ObjectId, kind: Kind) -> Result<bytes::Bytes> {
        let stored = self.store.get_frame(id.as_bytes())?.ok_or(Error::MissingObject(*id))?;
        let opened = self.codec.open_shared(id, stored);
        Self::expect_kind(id, kind, opened)
    }

    fn expect_kind<T>(id: &ObjectId, kind: Kind, opened: Result<(Kind, T), crate::crypto::SealError>) -> Result<T> {
        let (found, plain) = opened.map_err(|source| Error::Corrupt { id: *id, source })?;
        if found != kind {
            return Err(Error::Malformed {
                id: *id,
                kind,
                source: crate::encoding::DecodeError::Invalid { what: "object kind", value: found as u64 },
            });
        }
        Ok(plain)
    }

    /// Reads a directory object.
    pub fn read_dir(&self, id: &ObjectId) -> Result<Dir> {
        let plain = self.read(id, Kind::Dir)?;
        Dir::decode(&plain).map_err(|source| Error::Malformed { id: *id, kind: Kind::Dir, source })
    }

    /// Reads a revision object.
    pub fn read_revision(&self, id: &ObjectId) -> Result<Revision> {
        let plain = self.read(id, Kind::Revision)?;
        Revision::decode(&plain).map_err(|source| Error::Malformed { id: *id, kind: Kind::Revision, source })
    }

    /// Reads a chunk-list node.
    pub fn read_chunk_list(&self, id: &ObjectId) -> Result<ChunkList> {
        let plain = self.read(id, Kind::ChunkList)?;
        ChunkList::decode(&plain).map_err(|source| Error::Malformed { id: *id, kind: Kind::ChunkList, source })
    }

    /// Writes one object in its own transaction (small writes such as a
    /// single revision); bulk writers use [`Repository::write_objects`].
    pub fn put_object(&self, tx: &mut dyn Transaction, kind: Kind, plain: &[u8]) -> Result<ObjectId> {
        check_size(kind, plain)?;
        let id = self.codec.id(kind, plain);
        if tx.get(Table::Objects, id.as_bytes())?.is_none() {
            tx.put_object(id.as_bytes(), &self.codec.seal(&id, kind, plain), kind != Kind::Chunk)?;
        }
        Ok(id)
    }
}

/// What `store` is an unfinished clone of, if it is one: marked (see
/// [`META_PARTIAL_CLONE`]; its source), or without any ref, which only a
/// clone killed before its mark leaves (`init` makes the working tree's
/// ref; "its source").
pub fn unfinished_clone(store: &dyn Store) -> Result<Option<String>> {
    if let Some(origin) = store.get(Table::Meta, META_PARTIAL_CLONE)? {
        return Ok(Some(String::from_utf8_lossy(&origin).into_owned()));
    }
    if store.get(Table::Meta, META_CONFIG)?.is_none() {
        // An interrupted creation: no repository yet, and nothing to
        // resume (`init` or the clone start again in its place).
        return Ok(None);
    }
    let mut any_ref = false;
    store.scan(Table::Refs, b"", &mut |_, _| {
        any_ref = true;
        false
    })?;
    Ok((!any_ref).then(|| "its source".to_owned()))
}

/// Refuses the store of an unfinished clone (see [`unfinished_clone`]).
fn refuse_unfinished_clone(path: &Path, store: &dyn Store) -> Result<()> {
    match unfinished_clone(store)? {
        Some(origin) => Err(Error::UnfinishedClone { path: path.to_owned(), origin }),
        None => Ok(()),
    }
}
