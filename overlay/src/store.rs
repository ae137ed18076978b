//! The image store: a monofs repository at `$MONOCORE_HOME/store`.
//!
//! Layout (all ordinary monofs refs, each pointing at a revision):
//! - `images/<name>`: one revision per image. Its root is the image's root
//!   filesystem and its message is the [`ImageRecord`] as JSON (manifest
//!   and config digests, platform, run config, layers with their ChainIDs).
//! - `chains/<chainid>`: the tree after applying layers `0..=n`, keyed by
//!   the OCI ChainID, so images sharing lower layers reuse work and storage.
//!
//! Each layer is applied and committed in one transaction, the image ref in
//! a last one: an interrupted import leaves at most finished layer trees
//! (reused by the next attempt, pruned by `rmi`), never a visible image.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use monofs::edit::TreeEditor;
use monofs::object::{Content, EntryKind, Revision, Timestamp};
use monofs::store::Table;
use monofs::{InitOptions, ObjectId, Repository};
use serde::{Deserialize, Serialize};

use crate::digest::{HashReader, Tally, chain_ids, check_size};
use crate::error::{Error, Result};
use crate::source::{ImageDir, LayerFile, ResolvedImage};
use crate::spec::{self, Compression, ImageConfigFile, Platform, RunConfig};

/// Ref prefix of images.
pub const IMAGE_PREFIX: &str = "images/";

/// The ref of image `name`.
pub fn image_ref(name: &str) -> String {
    format!("{IMAGE_PREFIX}{name}")
}
/// Ref prefix of layer-chain trees.
pub const CHAIN_PREFIX: &str = "chains/";
/// Value of [`ImageRecord::format`].
pub const RECORD_FORMAT: &str = "monocore-image/1";

/// What the store keeps about an image (the JSON message of its revision).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Always [`RECORD_FORMAT`].
    pub format: String,
    /// The name it is stored under.
    pub name: String,
    /// Where it came from (`oci-layout:PATH`, `registry:NAME`).
    pub source: String,
    /// Digest of its manifest.
    pub manifest_digest: String,
    /// Digest of its config blob.
    pub config_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Entrypoint, cmd, env, working dir, user, ports, labels.
    pub config: RunConfig,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
}

/// One layer of an image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// Blob digest (empty for legacy `docker save` layers).
    pub digest: String,
    /// Blob media type.
    pub media_type: String,
    /// Blob size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// OCI ChainID of the layers up to this one.
    pub chain_id: String,
}

/// An image in the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// Name in the store.
    pub name: String,
    /// Its revision.
    pub revision: ObjectId,
    /// Root directory of its file system (the base of sandbox trees).
    pub root: ObjectId,
    /// Logical size of its files.
    pub size: u64,
    /// When it was stored.
    pub time: Timestamp,
    /// The record.
    pub record: ImageRecord,
}

/// A row of `monocore images`.
#[derive(Clone, Debug, Serialize)]
pub struct ImageSummary {
    /// Name in the store.
    pub name: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Revision id (usable with `monofs diff/checkout`, as `images/NAME`).
    pub revision: String,
    /// Layers.
    pub layers: usize,
    /// Bytes of file content.
    pub logical_bytes: u64,
    /// Stored (compressed) bytes of the objects its tree references;
    /// objects shared with other images count in each.
    pub stored_bytes: u64,
    /// Seconds since the epoch when it was stored.
    pub created: i64,
}

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportSummary {
    /// Name stored under.
    pub name: String,
    /// The image revision.
    pub revision: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Layers applied now.
    pub layers_applied: usize,
    /// Layers whose tree was already stored (shared with another image).
    pub layers_reused: usize,
    /// Objects added to the store.
    pub new_objects: u64,
    /// Their stored bytes.
    pub new_bytes: u64,
    /// Logical size of the image.
    pub logical_bytes: u64,
}

/// Receives one-line descriptions of the step a long operation is at
/// (`layer 2/3 sha256:...: applying`); the CLI shows them on a terminal.
pub type StepFn = dyn Fn(&str) + Send + Sync;

/// The image store of one `MONOCORE_HOME`.
pub struct ImageStore {
    home: PathBuf,
    repo: Repository,
    step: Option<Box<StepFn>>,
}

/// `$MONOCORE_HOME`, or `~/.monocore`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("MONOCORE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".monocore")
}

/// Creates the store at `path` whole or not at all: it is made beside it
/// and renamed into place, so a process killed while creating it leaves no
/// half-made store, and of two processes creating it at once one wins.
fn create_store(home: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(home).map_err(|e| Error::io(home, e))?;
    let tmp = home.join(format!(".store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    drop(Repository::init(&tmp, InitOptions::default())?);
    match std::fs::rename(&tmp, path) {
        Ok(()) => {}
        Err(_) if path.join(monofs::repo::STORE_FILE).exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(());
        }
        Err(e) => return Err(Error::io(path, e)),
    }
    // Leftovers of creators killed before their rename (not of live ones).
    for entry in std::fs::read_dir(home).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(".store-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

impl ImageStore {
    /// Opens (creating on first use) the store under `home`.
    pub fn open(home: &Path) -> Result<ImageStore> {
        let path = home.join("store");
        if !path.join(monofs::repo::STORE_FILE).exists() {
            create_store(home, &path)?;
        }
        // Shared: sandboxes, pulls and listings run at the same time.
        let repo = Repository::open_shared(&path, &mut || Ok(Vec::new()))?;
        Ok(ImageStore { home: home.to_owned(), repo, step: None })
    }

    /// Reports the steps of imports and pulls to `f`.
    pub fn on_step(&mut self, f: Box<StepFn>) {
        self.step = Some(f);
    }

    pub(crate) fn step(&self, msg: &str) {
        if let Some(f) = &self.step {
            f(msg);
        }
    }

    /// The monofs repository (for `monofs diff/checkout` style access).
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Closes the image store, handing over its repository (a sandbox
    /// serves its root file system from it for as long as it runs).
    pub fn into_repo(self) -> Repository {
        self.repo
    }

    /// `MONOCORE_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    pub(crate) fn scratch_dir(&self) -> PathBuf {
        scratch_dir_of(&self.home)
    }

    /// Finds a local image: as given, with `:latest`, then normalised.
    pub fn lookup(&self, name: &str) -> Result<Option<Image>> {
        for candidate in crate::name::candidates(name) {
            if let Some(rev) = self.repo.get_ref(&image_ref(&candidate))? {
                return Ok(Some(self.load(&candidate, &rev)?));
            }
        }
        Ok(None)
    }

    /// A local image, or [`Error::NoSuchImage`].
    pub fn image(&self, name: &str) -> Result<Image> {
        self.lookup(name)?.ok_or_else(|| Error::NoSuchImage(name.to_owned()))
    }

    /// Root tree and run config of a local image: what a sandbox starts
    /// from. A new working tree based on `root` is a copy-on-write branch
    /// of the image (creating it writes nothing).
    pub fn image_root(&self, name: &str) -> Result<(ObjectId, RunConfig)> {
        let img = self.image(name)?;
        Ok((img.root, img.record.config))
    }

    fn load(&self, name: &str, rev_id: &ObjectId) -> Result<Image> {
        let rev = self.repo.read_revision(rev_id)?;
        let record: ImageRecord = serde_json::from_str(&rev.message)
            .map_err(|e| Error::BadRecord { name: name.to_owned(), reason: e.to_string() })?;
        if record.format != RECORD_FORMAT {
            return Err(Error::BadRecord {
                name: name.to_owned(),
                reason: format!("unknown format {}", record.format),
            });
        }
        Ok(Image { name: name.to_owned(), revision: *rev_id, root: rev.root, size: rev.size, time: rev.time, record })
    }

    /// Every image, sorted by name.
    pub fn images(&self) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        for (name, rev) in self.repo.refs_with_prefix(IMAGE_PREFIX)? {
            out.push(self.load(&name, &rev)?);
        }
        Ok(out)
    }

    /// [`ImageStore::images`] with stored sizes.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for img in self.images()? {
            out.push(ImageSummary {
                name: img.name.clone(),
                manifest_digest: img.record.manifest_digest.clone(),
                revision: img.revision.to_hex(),
                layers: img.record.layers.len(),
                logical_bytes: img.size,
                stored_bytes: self.stored_bytes(&img.root)?,
                created: img.time.sec,
            });
        }
        Ok(out)
    }

    /// Stored bytes of the distinct objects below directory `root`.
    pub fn stored_bytes(&self, root: &ObjectId) -> Result<u64> {
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut ids: Vec<ObjectId> = Vec::new();
        let mut stack = vec![*root];
        while let Some(dir) = stack.pop() {
            if !seen.insert(dir) {
                continue;
            }
            ids.push(dir);
            for e in self.repo.read_dir(&dir)?.entries {
                match e.kind {
                    EntryKind::Dir { id } => stack.push(id),
                    EntryKind::File { size, content: c @ (Content::Chunk(_) | Content::List(_)) } => {
                        self.repo.content_objects(&c, size, &mut |id, _, _| {
                            if seen.insert(id) {
                                ids.push(id);
                                true
                            } else {
                                false
                            }
                        })?;
                    }
                    _ => {}
                }
            }
        }
        let mut total = 0;
        for id in ids {
            self.repo
                .store()
                .scan_lengths(Table::Objects, id.as_bytes(), &mut |k, len| {
                    if k == id.as_bytes() {
                        total += len;
                    }
                    false
                })
                .map_err(monofs::Error::from)?;
        }
        Ok(total)
    }

    /// Imports an image from a layout directory or archive as `name`;
    /// `want` picks one of several images in it.
    pub fn import_path(&self, path: &Path, name: &str, want: Option<&str>) -> Result<ImportSummary> {
        crate::name::validate_local(name)?;
        let dir = ImageDir::open(path, &self.scratch_dir())?;
        let image = dir.resolve(want, &Platform::host())?;
        let source =
            format!("oci-layout:{}", std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()).display());
        self.import_resolved(name, &image, &source)
    }

    /// Parses and checks a config against its layers.
    pub(crate) fn parse_config(image: &ResolvedImage) -> Result<ImageConfigFile> {
        let what = format!("image config {}", image.config_digest);
        let config: ImageConfigFile = spec::parse(&what, &image.config)?;
        if config.rootfs.diff_ids.len() != image.layers.len() {
            return Err(Error::invalid(
                what,
                format!("{} diff_ids for {} layers", config.rootfs.diff_ids.len(), image.layers.len()),
            ));
        }
        for d in &config.rootfs.diff_ids {
            crate::digest::sha256_hex(d)?;
        }
        Ok(config)
    }

    /// The chain revision for `chain_id`, if that layer stack is stored.
    pub fn chain(&self, chain_id: &str) -> Result<Option<ObjectId>> {
        Ok(self.repo.get_ref(&format!("{CHAIN_PREFIX}{chain_id}"))?)
    }

    /// Applies `image`'s layers (reusing stored chains) and stores it as
    /// `name`, replacing an image of that name.
    pub fn import_resolved(&self, name: &str, image: &ResolvedImage, source: &str) -> Result<ImportSummary> {
        let config = Self::parse_config(image)?;
        let chains = chain_ids(&config.rootfs.diff_ids);
        let mut summary = ImportSummary { name: name.to_owned(), ..ImportSummary::default() };
        // Start above the highest layer stack already stored.
        let mut base: Option<(ObjectId, u64)> = None;
        let mut start = 0;
        for (i, c) in chains.iter().enumerate().rev() {
            if let Some(rev) = self.chain(c)? {
                let rev = self.repo.read_revision(&rev)?;
                base = Some((rev.root, rev.size));
                start = i + 1;
                break;
            }
        }
        let mut layers = Vec::new();
        for (i, layer) in image.layers.iter().enumerate() {
            let diff_id = &config.rootfs.diff_ids[i];
            let chain_id = &chains[i];
            layers.push(LayerRecord {
                digest: layer.desc.digest.clone(),
                media_type: layer.desc.media_type.clone(),
                size: layer.desc.size,
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
            });
            if i < start {
                summary.layers_reused += 1;
                continue;
            }
            self.step(&format!("layer {}/{}: applying {}", i + 1, image.layers.len(), short(&layer.desc.digest)));
            let (root, size, stats) = self.apply(layer, diff_id, chain_id, base.map(|b| b.0))?;
            summary.layers_applied += 1;
            summary.new_objects += stats.0;
            summary.new_bytes += stats.1;
            base = Some((root, size));
        }
        let (root, size) = match base {
            Some(b) => b,
            None => {
                let ((root, size), tx, _) =
                    self.repo.write_objects(|sink| TreeEditor::new(&self.repo, None)?.finish(sink))?;
                tx.commit().map_err(monofs::Error::from)?;
                (root, size)
            }
        };
        let record = ImageRecord {
            format: RECORD_FORMAT.to_owned(),
            name: name.to_owned(),
            source: source.to_owned(),
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.config_digest.clone(),
            platform: Platform { os: config.os.clone(), architecture: config.architecture.clone(), variant: None }
                .to_string(),
            config: config.config.clone().unwrap_or_default(),
            layers,
        };
        let message = serde_json::to_string(&record)
            .map_err(|e| Error::BadRecord { name: name.to_owned(), reason: e.to_string() })?;
        let rev = Revision {
            root,
            parents: Vec::new(),
            time: Timestamp::now(),
            author: "monocore".to_owned(),
            message,
            size,
            root_meta: image_root_meta(),
        };
        let mut tx = self.repo.begin()?;
        let id = self.repo.write_revision(tx.as_mut(), &rev)?;
        self.repo.set_ref(tx.as_mut(), &image_ref(name), &id)?;
        tx.commit().map_err(monofs::Error::from)?;
        summary.revision = id.to_hex();
        summary.manifest_digest = image.manifest_digest.clone();
        summary.logical_bytes = size;
        Ok(summary)
    }

    /// Applies one layer on `base`, verifying the blob and DiffID, and
    /// commits its tree as `chains/<chain_id>`.
    fn apply(
        &self,
        layer: &LayerFile,
        diff_id: &str,
        chain_id: &str,
        base: Option<ObjectId>,
    ) -> Result<(ObjectId, u64, (u64, u64))> {
        let name = if layer.desc.digest.is_empty() { diff_id.to_owned() } else { layer.desc.digest.clone() };
        let what = format!("layer {name}");
        let compression = spec::layer_compression(&what, &layer.desc.media_type)?;
        let len = std::fs::metadata(&layer.path).map_err(|e| Error::io(&layer.path, e))?.len();
        if !layer.desc.digest.is_empty() {
            check_size(&what, layer.desc.size, len)?;
        }
        let file = std::fs::File::open(&layer.path).map_err(|e| Error::io(&layer.path, e))?;
        let outer = Tally::default();
        let inner = Tally::default();
        let hashed = HashReader::new(std::io::BufReader::with_capacity(1 << 20, file), outer.clone());
        let io = |source| Error::Layer { layer: name.clone(), source };
        let decoded: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(hashed),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(hashed)),
            Compression::Zstd => Box::new(zstd::Decoder::new(hashed).map_err(io)?),
        };
        let mut tar = HashReader::new(decoded, inner.clone());
        let repo = &self.repo;
        // The closure's own errors travel inside its value; dropping the
        // transaction then discards everything it wrote.
        let (applied, tx, stats) = repo
            .write_objects(|sink| {
                Ok((|| -> Result<(ObjectId, u64)> {
                    let result = crate::layer::apply_layer(repo, sink, base.as_ref(), &name, &mut tar)?;
                    // Whatever follows the tar's end-of-archive blocks counts too.
                    std::io::copy(&mut tar, &mut std::io::sink()).map_err(io)?;
                    Ok(result)
                })())
            })
            .map_err(|source| Error::LayerTree { layer: name.clone(), source })?;
        let (root, size) = applied?;
        let (outer_digest, _) = outer.result();
        if !layer.desc.digest.is_empty() && outer_digest != layer.desc.digest {
            return Err(Error::DigestMismatch { what, expected: layer.desc.digest.clone(), actual: outer_digest });
        }
        let (inner_digest, _) = inner.result();
        if inner_digest != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("{what} (uncompressed, DiffID)"),
                expected: diff_id.to_owned(),
                actual: inner_digest,
            });
        }
        let mut tx = tx;
        let rev = Revision {
            root,
            parents: Vec::new(),
            time: Timestamp::now(),
            author: "monocore".to_owned(),
            message: format!("layer {name}\nchain {chain_id}"),
            size,
            root_meta: image_root_meta(),
        };
        let id = self.repo.write_revision(tx.as_mut(), &rev)?;
        self.repo.set_ref(tx.as_mut(), &format!("{CHAIN_PREFIX}{chain_id}"), &id)?;
        tx.commit().map_err(monofs::Error::from)?;
        Ok((root, size, (stats.new_objects, stats.new_bytes)))
    }

    /// Removes an image and every layer chain no remaining image uses; the
    /// data goes at the next `monofs gc` of the store. Returns the name
    /// removed.
    pub fn remove(&self, name: &str) -> Result<String> {
        // Begun first: no other process commits until this does, so the
        // images and refs read below stay the ones there are.
        let mut tx = self.repo.begin()?;
        let img = self.image(name)?;
        let mut keep: BTreeSet<String> = BTreeSet::new();
        for other in self.images()? {
            if other.name != img.name {
                keep.extend(other.record.layers.iter().map(|l| l.chain_id.clone()));
            }
        }
        let mut dropped = vec![image_ref(&img.name)];
        for (chain, _) in self.repo.refs_with_prefix(CHAIN_PREFIX)? {
            if !keep.contains(&chain) {
                dropped.push(format!("{CHAIN_PREFIX}{chain}"));
            }
        }
        for name in &dropped {
            self.repo.delete_ref(tx.as_mut(), name)?;
        }
        // The revisions of the image and its layer chains leave the index
        // once no remaining ref reaches them, so that `monofs gc` frees them
        // (it keeps every indexed revision).
        let indexed: BTreeSet<ObjectId> = self.repo.all_revisions()?.into_iter().collect();
        let mut reached = BTreeSet::new();
        let mut todo: Vec<ObjectId> = self
            .repo
            .refs_with_prefix("")?
            .into_iter()
            .filter(|(name, id)| !dropped.contains(name) && indexed.contains(id))
            .map(|(_, id)| id)
            .collect();
        while let Some(id) = todo.pop() {
            if reached.insert(id) {
                todo.extend(self.repo.read_revision(&id)?.parents);
            }
        }
        for id in indexed.difference(&reached) {
            self.repo.unindex_revision(tx.as_mut(), id)?;
        }
        tx.commit().map_err(monofs::Error::from)?;
        Ok(img.name)
    }

    /// Materialises an image's root file system into `dir` (missing or
    /// empty), as `umoci unpack` does.
    pub fn unpack(
        &self,
        name: &str,
        dir: &Path,
        progress: &dyn monofs::Progress,
    ) -> Result<monofs::restore::RestoreSummary> {
        let img = self.image(name)?;
        Ok(self.repo.restore(&img.root, dir, false, progress)?)
    }
}

/// The first hex digits of a digest, for messages.
pub(crate) fn short(digest: &str) -> &str {
    let end = digest.len().min("sha256:".len() + 12);
    &digest[..end]
}

/// Metadata of an image's root directory: root-owned, 0755, as `umoci
/// unpack` leaves a rootfs.
fn image_root_meta() -> monofs::object::Meta {
    monofs::object::Meta { mode: 0o755, ..Default::default() }
}

/// Where imports of `home` unpack archives (see
/// [`crate::source::sweep_abandoned`]).
pub fn scratch_dir_of(home: &Path) -> PathBuf {
    home.join("tmp")
}
