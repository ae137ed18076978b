//! One side of a transfer: a repository on a local path, or one behind
//! `monofs serve --http`. The transfer logic only talks to this trait.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use monofs::ObjectId;
use monofs::crypto::Codec;
use monofs::object::Kind;
use monofs::repo::{DictionaryRecord, HEAD, RawRepository, RepoMeta, WORKTREE};
use monofs::store::{PackEntry, PackListing, Table, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SyncError};
use crate::pieces::Piece;
use crate::wire::WireObject;

/// Meta key marking a clone that has not finished (value: the source).
pub use monofs::repo::META_PARTIAL_CLONE as PARTIAL_CLONE;

/// The refs of a repository and its index of revisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefState {
    /// Every ref (HEAD, WORKTREE, tags/..., worktrees/..., ...).
    pub refs: BTreeMap<String, ObjectId>,
    /// Every revision ever made there.
    pub revisions: BTreeSet<ObjectId>,
    /// What the working tree was based on when a sync without the key
    /// moved HEAD under it: the HEAD then and the working tree then (see
    /// [`monofs::repo::META_WORKTREE_BASE`]).
    pub worktree_base: Option<monofs::repo::WorktreeBase>,
    /// How many collections have removed objects there (see
    /// [`monofs::gc::META_GC_EPOCH`]).
    pub gc_epoch: u64,
    /// Whether its working tree's root has metadata of its own, not
    /// committed (see [`monofs::repo::root_meta_key`]). Without a HEAD a
    /// record is no change to commit (see `Repository::worktree_dirty`):
    /// the first commit takes it.
    pub worktree_root_meta: bool,
    /// The root records of its working trees by tree ref, as stored
    /// (sealed in an encrypted repository): a clone copies them.
    pub root_records: BTreeMap<String, Vec<u8>>,
}

/// One ref move, applied only if the ref still has its `old` value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefChange {
    /// The ref.
    pub name: String,
    /// The value it must have now (`None`: absent).
    #[serde(with = "opt_hex")]
    pub old: Option<ObjectId>,
    /// The value it gets.
    #[serde(with = "hex_id")]
    pub new: ObjectId,
}

/// Ref moves and new revision index entries, applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Ref moves.
    pub refs: Vec<RefChange>,
    /// Revisions to add to the index.
    #[serde(with = "hex_ids")]
    pub revisions: Vec<ObjectId>,
    /// The receiver's [`RefState::gc_epoch`] when the sender read its
    /// state: the update is refused if a collection ran there since, as it
    /// may have removed objects the sender sent or found there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_epoch: Option<u64>,
    /// The receiver's working-tree root record (hex) that the sender found
    /// committed already (the new HEAD gives the root the same metadata):
    /// the working tree may move while the record is still that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_root_record: Option<String>,
}

/// What makes a replica the same repository, and which dictionaries it
/// has; see [`Endpoint::identity`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Config record and key file; no dictionary records.
    pub meta: RepoMeta,
    /// Keys of the dictionaries it holds.
    pub dictionaries: BTreeSet<Vec<u8>>,
}

impl Identity {
    /// The identity of a full meta.
    pub fn of(mut meta: RepoMeta) -> Identity {
        let dictionaries = meta.dictionaries.drain(..).map(|(k, _)| k).collect();
        Identity { meta, dictionaries }
    }
}

/// A repository that objects and refs can be read from and written to.
pub trait Endpoint: Send + Sync {
    /// Path or URL, for messages.
    fn describe(&self) -> String;
    /// Config record, key file and dictionaries.
    fn meta(&self) -> Result<RepoMeta>;
    /// [`Endpoint::meta`] without the dictionaries' records, only their
    /// keys: what a sync compares (the records travel only when missing).
    fn identity(&self) -> Result<Identity> {
        Ok(Identity::of(self.meta()?))
    }
    /// Stores the dictionaries this side lacks, before objects compressed
    /// with them arrive.
    fn add_dictionaries(&self, records: &[DictionaryRecord]) -> Result<()>;
    /// Refs and revision index.
    fn state(&self) -> Result<RefState>;
    /// Which of `ids` are stored.
    fn has(&self, ids: &[ObjectId]) -> Result<Vec<bool>>;
    /// Every stored object with its stored length, in storage order.
    fn list(&self) -> Result<Vec<(ObjectId, u64)>>;
    /// The stored frames of `ids` (in storage order); every one must exist.
    fn get(&self, ids: &[ObjectId]) -> Result<Vec<WireObject>>;
    /// Verifies and stores objects, all in one transaction; refused if a
    /// collection ran since this side's state was read with `gc_epoch`
    /// ([`RefState::gc_epoch`]): it may have removed objects the ones sent
    /// now refer to, and a directory must never be stored without what is
    /// below it (later syncs stop at directories the receiver has).
    fn put(&self, objects: &[WireObject], gc_epoch: Option<u64>) -> Result<()>;
    /// Moves refs (compare-and-swap) and indexes revisions, atomically,
    /// after checking that every object they name is stored.
    fn update(&self, update: &Update) -> Result<()>;
    /// Live objects grouped by the packs holding them (data packs first),
    /// or `None` when this side cannot send whole packs.
    fn packs(&self) -> Result<Option<Vec<PackListing>>> {
        Ok(None)
    }
    /// Streams the packs `ids` to `f` one at a time, in the order given.
    fn get_packs(&self, ids: &[u64], f: &mut PackSender<'_>) -> Result<()> {
        let _ = (ids, f);
        Err(SyncError::Invalid(format!("{} cannot send whole packs", self.describe())))
    }
    /// The store file of a repository on this machine that is kept in one
    /// file and held open here (so nothing writes it): a clone into an
    /// empty directory copies it whole.
    fn store_file(&self) -> Option<PathBuf> {
        None
    }
    /// Streams the store file to `out`: its length, then each piece in
    /// order, as [`Piece::Kept`] where `have` (a [`crate::pieces::encode_have`]
    /// list) holds it and as [`Piece::Data`] otherwise; returns the
    /// checksum of the whole file ([`crate::pieces::whole`]), which the caller
    /// checks. `None` when this side cannot send its store file whole (a
    /// server without the endpoint); a server storing a push answers `503`.
    fn read_store(&self, have: &[u8], out: &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> {
        let _ = (have, out);
        Ok(None)
    }
}

/// Receives a store file sent whole, piece by piece.
pub type StoreSender<'a> = dyn FnMut(Piece<'_>) -> Result<()> + 'a;

/// Receives packs: id, bytes (checked in transit, not yet verified).
pub type PackSender<'a> = dyn FnMut(u64, Vec<u8>) -> Result<()> + 'a;

/// Packs being stored on a local receiver in one transaction; see
/// [`Local::begin_packs`].
pub struct PackSink<'a> {
    local: &'a Local,
    tx: Box<dyn Transaction + 'a>,
}

impl PackSink<'_> {
    /// Verifies every object of `objects` inside `pack`, then stores the
    /// pack and indexes them. Nothing is visible before [`PackSink::commit`].
    pub fn add(&mut self, metadata: bool, pack: &[u8], objects: &[PackEntry]) -> Result<()> {
        for e in objects {
            let id = ObjectId::from_slice(&e.key)
                .ok_or_else(|| SyncError::Protocol { from: self.local.describe(), what: "bad id in a pack".into() })?;
            let start = e.offset as usize;
            let frame = start
                .checked_add(e.len as usize)
                .and_then(|end| pack.get(start..end))
                .ok_or_else(|| SyncError::BadObject { id, why: "outside its pack".into() })?;
            self.local.verify_frame(&id, frame, metadata)?;
        }
        Ok(self.tx.put_pack(pack, metadata, objects)?)
    }

    /// Commits what was added, durably.
    pub fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }

    /// Commits what was added without waiting for the disk: visible now,
    /// persisted by the next durable commit (lost if the process dies
    /// before it).
    pub fn commit_relaxed(mut self) -> Result<()> {
        self.tx.set_relaxed()?;
        Ok(self.tx.commit()?)
    }
}

/// A repository opened in this process.
pub struct Local {
    repo: RawRepository,
    codec: Option<Codec>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("repo", &self.repo).finish()
    }
}

/// How long to wait for another process to release a repository.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

impl Local {
    /// Wraps an open repository.
    pub fn new(repo: RawRepository) -> Local {
        let codec = repo.codec().cloned();
        Local { repo, codec }
    }

    /// Opens the repository at `path` without its key, waiting up to
    /// `wait` while another process (a concurrent sync) holds it. An
    /// unfinished clone is refused, as every command refuses it: it is
    /// neither a source nor a receiver until its clone finishes.
    pub fn open(path: &Path, wait: Duration) -> Result<Local> {
        let local = Local::open_unfinished(path, wait)?;
        if let Some(origin) = monofs::repo::unfinished_clone(local.repo.store())? {
            return Err(monofs::Error::UnfinishedClone { path: path.to_owned(), origin }.into());
        }
        Ok(local)
    }

    /// [`Local::open`], for the clone that finishes an unfinished one.
    pub(crate) fn open_unfinished(path: &Path, wait: Duration) -> Result<Local> {
        let mut told = false;
        let repo = monofs::repo::wait_for_lock(
            wait,
            || RawRepository::open(path),
            |pid| {
                // A mount keeps the repository until it is detached: no use
                // waiting for it.
                if std::os::unix::net::UnixStream::connect(path.join(monofs::repo::CONTROL_SOCKET)).is_ok() {
                    return Err(SyncError::Mounted { path: path.to_owned(), pid: pid.to_owned() });
                }
                if !told {
                    tracing::debug!("{}: waiting for process {pid} to release the repository", path.display());
                    eprintln!("waiting for process {pid} to release {}", path.display());
                    told = true;
                }
                Ok(())
            },
        )?;
        Ok(Local::new(repo))
    }

    /// Sets the codec objects are verified with (the key of a replica,
    /// which is the same key).
    pub fn set_codec(&mut self, codec: Option<Codec>) {
        if self.codec.is_none() {
            self.codec = codec;
        }
    }

    /// The codec, when objects can be opened here.
    pub fn codec(&self) -> Option<&Codec> {
        self.codec.as_ref()
    }

    /// The repository.
    pub fn repo(&self) -> &RawRepository {
        &self.repo
    }

    /// Unwraps the repository key so objects can be read and verified.
    pub fn unlock(&mut self, passphrase: &[u8]) -> Result<()> {
        self.repo.unlock(passphrase)?;
        self.codec = self.repo.codec().cloned();
        Ok(())
    }

    /// Checks an arriving object and returns whether it is metadata.
    fn verify(&self, o: &WireObject) -> Result<bool> {
        self.verify_frame(&o.id, &o.bytes, o.metadata)
    }

    /// Checks a stored frame for object `id`; `claimed` is the sender's
    /// word on whether it is metadata, used when the frame cannot be opened.
    fn verify_frame(&self, id: &ObjectId, bytes: &[u8], claimed: bool) -> Result<bool> {
        verify_frame(self.codec.as_ref(), id, bytes, claimed)
    }

    /// Starts storing whole packs (a clone into this repository).
    pub fn begin_packs(&self) -> Result<PackSink<'_>> {
        Ok(PackSink { local: self, tx: self.repo.store().begin()? })
    }

    /// Records `source` as the origin of an unfinished clone.
    pub fn mark_partial_clone(&self, source: &str) -> Result<()> {
        let mut tx = self.repo.store().begin()?;
        tx.put(Table::Meta, PARTIAL_CLONE, source.as_bytes())?;
        Ok(tx.commit()?)
    }

    /// Whether this is an unfinished clone (see
    /// [`monofs::repo::unfinished_clone`]).
    pub fn is_partial_clone(&self) -> Result<bool> {
        Ok(monofs::repo::unfinished_clone(self.repo.store())?.is_some())
    }

    /// Applies `update` and clears the unfinished-clone mark, atomically;
    /// notes what the copied refs need of the `source`'s state: its
    /// working-tree base, if it had one (see [`RefState::worktree_base`]),
    /// and its trees' root records.
    pub fn finish_clone(&self, update: &Update, source: &RefState) -> Result<()> {
        self.apply(update, Some(source))
    }

    /// Fails if the gc epoch is no longer `seen` (see [`Endpoint::put`]).
    fn check_gc_epoch(&self, seen: Option<u64>) -> Result<()> {
        match seen {
            Some(seen) if seen != monofs::gc::gc_epoch(self.repo.store())? => {
                Err(SyncError::GcDuringSync { side: self.describe() })
            }
            _ => Ok(()),
        }
    }

    /// Applies `update`; `clone`: it finishes a clone of a source with
    /// that state (see [`Local::finish_clone`]).
    fn apply(&self, update: &Update, clone: Option<&RefState>) -> Result<()> {
        let store = self.repo.store();
        let side = self.describe();
        for c in &update.refs {
            monofs::repo::validate_ref_name(&c.name)?;
        }
        self.check_gc_epoch(update.gc_epoch)?;
        for c in &update.refs {
            if !store.has(Table::Objects, c.new.as_bytes())? {
                return Err(SyncError::RefTargetMissing { side, name: c.name.clone(), id: c.new });
            }
        }
        for r in &update.revisions {
            if !store.has(Table::Objects, r.as_bytes())? {
                return Err(SyncError::RefTargetMissing { side, name: "(revision index)".into(), id: *r });
            }
        }
        // Refs other than working trees name revisions: one of the index
        // or one this update adds to it (a client could set HEAD to any
        // stored object, and log, fsck and checkout then failed).
        for c in update.refs.iter().filter(|c| !crate::transfer::is_tree_ref(&c.name)) {
            if !update.revisions.contains(&c.new) && !store.has(Table::Revisions, c.new.as_bytes())? {
                return Err(SyncError::Invalid(format!(
                    "{side}: {} would name {}, which is not a revision there",
                    c.name,
                    c.new.short(12)
                )));
            }
        }
        let mut tx = store.begin()?;
        // A working tree's root record is a change to keep only once there
        // is a revision to differ from (see `Repository::worktree_dirty`).
        let had_head = tx.get(Table::Refs, HEAD.as_bytes())?.is_some();
        for c in &update.refs {
            let now = tx.get(Table::Refs, c.name.as_bytes())?.and_then(|v| ObjectId::from_slice(&v));
            if now != c.old {
                return Err(SyncError::RefChanged { side, name: c.name.clone() });
            }
            tx.put(Table::Refs, c.name.as_bytes(), c.new.as_bytes())?;
            if crate::transfer::is_tree_ref(&c.name) {
                let record = monofs::repo::root_meta_key(&c.name);
                // A change of the working tree's root made since the sync
                // looked (a mount, between two requests) is not lost.
                if c.name == WORKTREE
                    && had_head
                    && let Some(now) = tx.get(Table::Meta, &record)?
                    && update.committed_root_record.as_deref() != Some(hex::encode(&now).as_str())
                {
                    return Err(SyncError::dirty_receiver(side));
                }
                // Another tree's root takes the revision's, as on a checkout.
                tx.delete(Table::Meta, &record)?;
            }
        }
        for r in &update.revisions {
            tx.put(Table::Revisions, r.as_bytes(), &[])?;
        }
        // HEAD moved and the working tree did not: a sync without the key,
        // which cannot tell where it should go (the next open with the key
        // settles it).
        let moves = |name: &str| update.refs.iter().find(|c| c.name == name);
        match (moves(HEAD), moves(WORKTREE)) {
            (Some(head), None) => {
                if let Some(tree) = tx.get(Table::Refs, WORKTREE.as_bytes())?.and_then(|v| ObjectId::from_slice(&v)) {
                    monofs::repo::note_worktree_base(&mut *tx, head.old.as_ref(), &tree)?;
                }
            }
            (_, Some(_)) => tx.delete(Table::Meta, monofs::repo::META_WORKTREE_BASE)?,
            (None, None) => {}
        }
        if let Some(source) = clone {
            tx.delete(Table::Meta, PARTIAL_CLONE)?;
            if let Some((head, tree)) = &source.worktree_base {
                monofs::repo::note_worktree_base(&mut *tx, head.as_ref(), tree)?;
            }
            // The trees' uncommitted root changes go with them: records
            // that name the tree's root (or, without the key, look sealed).
            for c in update.refs.iter().filter(|c| crate::transfer::is_tree_ref(&c.name)) {
                let Some(record) = source.root_records.get(&c.name) else { continue };
                let fits = match &self.codec {
                    Some(codec) => {
                        monofs::repo::open_root_record(codec, &c.name, record).is_some_and(|(root, _)| root == c.new)
                    }
                    None => monofs::crypto::looks_sealed(record),
                };
                if fits {
                    tx.put(Table::Meta, &monofs::repo::root_meta_key(&c.name), record)?;
                } else {
                    tracing::warn!("{side}: the root record of {} does not belong to its tree; left out", c.name);
                }
            }
        }
        Ok(tx.commit()?)
    }
}

impl Endpoint for Local {
    fn describe(&self) -> String {
        self.repo.path().display().to_string()
    }

    fn meta(&self) -> Result<RepoMeta> {
        Ok(self.repo.meta()?)
    }

    fn add_dictionaries(&self, records: &[DictionaryRecord]) -> Result<()> {
        self.repo.add_dictionaries(records)?;
        // A codec borrowed from the other replica learns them too.
        if let Some(codec) = &self.codec {
            monofs::repo::install_dictionaries(codec, records);
        }
        Ok(())
    }

    fn state(&self) -> Result<RefState> {
        let store = self.repo.store();
        let mut state = RefState::default();
        store.scan(Table::Refs, b"", &mut |k, v| {
            if let (Ok(name), Some(id)) = (std::str::from_utf8(k), ObjectId::from_slice(v)) {
                state.refs.insert(name.to_owned(), id);
            }
            true
        })?;
        store.scan(Table::Revisions, b"", &mut |k, _| {
            state.revisions.extend(ObjectId::from_slice(k));
            true
        })?;
        state.worktree_base = store
            .get(Table::Meta, monofs::repo::META_WORKTREE_BASE)?
            .and_then(|n| monofs::repo::decode_worktree_base(&n));
        state.gc_epoch = monofs::gc::gc_epoch(store)?;
        let prefix = monofs::repo::ROOT_META_PREFIX;
        store.scan(Table::Meta, prefix, &mut |k, v| {
            if let Ok(name) = std::str::from_utf8(&k[prefix.len()..]) {
                state.root_records.insert(name.to_owned(), v.to_vec());
            }
            true
        })?;
        state.worktree_root_meta = state.refs.contains_key(HEAD) && state.root_records.contains_key(WORKTREE);
        Ok(state)
    }

    fn has(&self, ids: &[ObjectId]) -> Result<Vec<bool>> {
        let store = self.repo.store();
        ids.iter().map(|id| Ok(store.has(Table::Objects, id.as_bytes())?)).collect()
    }

    fn list(&self) -> Result<Vec<(ObjectId, u64)>> {
        Ok(self
            .repo
            .store()
            .list_objects()?
            .into_iter()
            .filter_map(|e| Some((ObjectId::from_slice(&e.key)?, e.len)))
            .collect())
    }

    fn get(&self, ids: &[ObjectId]) -> Result<Vec<WireObject>> {
        let keys: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
        let mut out = Vec::with_capacity(ids.len());
        self.repo.store().get_objects(&keys, &mut |k, v, metadata| {
            if let Some(id) = ObjectId::from_slice(k) {
                out.push(WireObject { id, metadata, bytes: v.to_vec() });
            }
            true
        })?;
        if out.len() != ids.len() {
            let found: BTreeSet<ObjectId> = out.iter().map(|o| o.id).collect();
            let id = ids.iter().find(|id| !found.contains(id)).copied().unwrap_or_default();
            return Err(SyncError::MissingObject { from: self.describe(), id });
        }
        Ok(out)
    }

    fn put(&self, objects: &[WireObject], gc_epoch: Option<u64>) -> Result<()> {
        // No collection can start before the commit: this side holds the
        // repository's lock.
        self.check_gc_epoch(gc_epoch)?;
        let store = self.repo.store();
        let fresh: Vec<&WireObject> = objects.iter().collect();
        let flags = verify_all(self, &fresh)?;
        let mut tx = store.begin()?;
        for (o, metadata) in fresh.iter().zip(flags) {
            if tx.get(Table::Objects, o.id.as_bytes())?.is_none() {
                tx.put_object(o.id.as_bytes(), &o.bytes, metadata)?;
            }
        }
        Ok(tx.commit()?)
    }

    fn update(&self, update: &Update) -> Result<()> {
        self.apply(update, None)
    }

    fn packs(&self) -> Result<Option<Vec<PackListing>>> {
        Ok(self.repo.store().list_packs()?)
    }

    fn store_file(&self) -> Option<PathBuf> {
        let file = self.repo.path().join(monofs::repo::STORE_FILE);
        // A repository on a path is its redb file (an in-memory one has none).
        file.is_file().then_some(file)
    }

    fn get_packs(&self, ids: &[u64], f: &mut PackSender<'_>) -> Result<()> {
        let mut failed = None;
        self.repo.store().read_packs(ids, &mut |id, pack| match f(id, pack.to_vec()) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

/// Checks a stored frame for object `id` with `codec` (opens it: decrypts,
/// decompresses, checks the id) or, without one, for the shape of a sealed
/// frame; `claimed` is the sender's word on whether it is metadata, used
/// when the frame cannot be opened. Returns whether it is metadata.
pub(crate) fn verify_frame(codec: Option<&Codec>, id: &ObjectId, bytes: &[u8], claimed: bool) -> Result<bool> {
    match codec {
        Some(codec) => {
            let (kind, _) = codec.open(id, bytes).map_err(|e| SyncError::BadObject { id: *id, why: e.to_string() })?;
            Ok(kind != Kind::Chunk)
        }
        None => {
            // Sealed and no key: the frame can only be checked for
            // shape; the transit checksum vouched for the bytes.
            if !monofs::crypto::looks_sealed(bytes) {
                return Err(SyncError::BadObject { id: *id, why: "not a sealed frame".into() });
            }
            Ok(claimed)
        }
    }
}

/// Verifies objects on both cores when there are many.
fn verify_all(local: &Local, objects: &[&WireObject]) -> Result<Vec<bool>> {
    if objects.len() < 8 {
        return objects.iter().map(|o| local.verify(o)).collect();
    }
    let mid = objects.len() / 2;
    let (a, b) = objects.split_at(mid);
    let (ra, rb) = std::thread::scope(|s| {
        let h = s.spawn(|| a.iter().map(|o| local.verify(o)).collect::<Result<Vec<bool>>>());
        let rb = b.iter().map(|o| local.verify(o)).collect::<Result<Vec<bool>>>();
        (h.join(), rb)
    });
    let mut ra = ra.map_err(|_| SyncError::Invalid("a verification thread panicked".into()))??;
    ra.extend(rb?);
    Ok(ra)
}

mod hex_id {
    use monofs::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

mod opt_hex {
    use monofs::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &Option<ObjectId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_some(&id.to_hex()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ObjectId>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| s.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

mod hex_ids {
    use monofs::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ids: &[ObjectId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(ObjectId::to_hex))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ObjectId>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|s| s.parse().map_err(serde::de::Error::custom)).collect()
    }
}

/// JSON shapes of [`RefState`] and [`RepoMeta`] on the wire.
pub(crate) mod json {
    use std::collections::BTreeMap;

    use monofs::repo::{DictionaryRecord, RepoMeta};
    use serde::{Deserialize, Serialize};

    use super::RefState;
    use crate::error::{Result, SyncError};

    #[derive(Serialize, Deserialize)]
    pub struct State {
        pub refs: BTreeMap<String, String>,
        pub revisions: Vec<String>,
        /// The HEAD then ("": none) and the working tree then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub worktree_base: Option<(String, String)>,
        #[serde(default)]
        pub gc_epoch: u64,
        #[serde(default)]
        pub worktree_root_meta: bool,
        /// Tree ref and stored root record, hex.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub root_records: BTreeMap<String, String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Meta {
        pub config: String,
        pub key: Option<String>,
        /// Meta key and stored record of each dictionary, hex.
        #[serde(default)]
        pub dictionaries: Vec<(String, String)>,
    }

    pub fn state_to(s: &RefState) -> State {
        State {
            refs: s.refs.iter().map(|(k, v)| (k.clone(), v.to_hex())).collect(),
            revisions: s.revisions.iter().map(|r| r.to_hex()).collect(),
            worktree_base: s
                .worktree_base
                .map(|(head, tree)| (head.map(|h| h.to_hex()).unwrap_or_default(), tree.to_hex())),
            gc_epoch: s.gc_epoch,
            worktree_root_meta: s.worktree_root_meta,
            root_records: s.root_records.iter().map(|(k, v)| (k.clone(), hex::encode(v))).collect(),
        }
    }

    pub fn state_from(s: State, from: &str) -> Result<RefState> {
        let bad = |_| SyncError::Protocol { from: from.into(), what: "bad id in ref state".into() };
        let bad_hex = || SyncError::Protocol { from: from.into(), what: "bad hex in a root record".into() };
        Ok(RefState {
            refs: s.refs.into_iter().map(|(k, v)| Ok((k, v.parse().map_err(bad)?))).collect::<Result<_>>()?,
            revisions: s.revisions.iter().map(|r| r.parse().map_err(bad)).collect::<Result<_>>()?,
            worktree_base: match s.worktree_base {
                None => None,
                Some((head, tree)) => Some((
                    (!head.is_empty()).then(|| head.parse().map_err(bad)).transpose()?,
                    tree.parse().map_err(bad)?,
                )),
            },
            gc_epoch: s.gc_epoch,
            worktree_root_meta: s.worktree_root_meta,
            root_records: s
                .root_records
                .into_iter()
                .map(|(k, v)| Ok((k, hex::decode(v).map_err(|_| bad_hex())?)))
                .collect::<Result<_>>()?,
        })
    }

    pub fn meta_to(m: &RepoMeta) -> Meta {
        Meta {
            config: hex::encode(&m.config),
            key: m.key.as_ref().map(hex::encode),
            dictionaries: m.dictionaries.iter().map(|(k, v)| (hex::encode(k), hex::encode(v))).collect(),
        }
    }

    pub fn meta_from(m: Meta, from: &str) -> Result<RepoMeta> {
        let bad = |_| SyncError::Protocol { from: from.into(), what: "bad hex in repository meta".into() };
        Ok(RepoMeta {
            config: hex::decode(&m.config).map_err(bad)?,
            key: m.key.map(|k| hex::decode(k).map_err(bad)).transpose()?,
            dictionaries: dictionaries_from(&m.dictionaries, from)?,
        })
    }

    pub fn dictionaries_from(records: &[(String, String)], from: &str) -> Result<Vec<DictionaryRecord>> {
        let bad = |_| SyncError::Protocol { from: from.into(), what: "bad hex in a dictionary record".into() };
        records.iter().map(|(k, v)| Ok((hex::decode(k).map_err(bad)?, hex::decode(v).map_err(bad)?))).collect()
    }
}
