//! Where an image's blobs come from: an OCI image layout directory, an OCI
//! or `docker save` archive (unpacked to a scratch directory first), or a
//! registry download cache (see [`crate::pull`]). Every source resolves to
//! a [`ResolvedImage`]: a verified manifest and config, and a file per
//! layer.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::digest::{sha256_hex, verify_bytes};
use crate::error::{Error, Result};
use crate::spec::{self, Descriptor, Index, Manifest, Platform};

/// One layer to apply.
#[derive(Clone, Debug)]
pub struct LayerFile {
    /// Its descriptor; `digest` is empty when the source does not name the
    /// compressed blob (legacy `docker save` layers, checked by DiffID).
    pub desc: Descriptor,
    /// Where its bytes are.
    pub path: PathBuf,
}

/// An image ready to import: documents verified, layers located.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// Digest of the manifest (the image's identity).
    pub manifest_digest: String,
    /// Digest of the config blob.
    pub config_digest: String,
    /// The config blob.
    pub config: Vec<u8>,
    /// Layers, bottom first.
    pub layers: Vec<LayerFile>,
}

/// The file of blob `digest` in layout `root`.
pub fn blob_path(root: &Path, digest: &str) -> Result<PathBuf> {
    let hex = sha256_hex(digest)?;
    Ok(root.join("blobs").join("sha256").join(hex))
}

/// Checks that `path` is a regular file: a device or fifo named in its
/// place (`/dev/zero`, say) would be read for ever.
fn regular(path: &Path) -> Result<u64> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !md.is_file() {
        return Err(Error::invalid(path.display().to_string(), "not a regular file"));
    }
    Ok(md.len())
}

/// Reads a JSON document or other small file whole, refusing one over
/// `max` bytes before reading it.
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    if regular(path)? > max {
        return Err(Error::invalid(path.display().to_string(), format!("larger than {max} bytes")));
    }
    let mut out = Vec::new();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // A file that grew since: still no more than the limit.
    file.take(max + 1).read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > max {
        return Err(Error::invalid(path.display().to_string(), format!("larger than {max} bytes")));
    }
    Ok(out)
}

/// Reads a manifest, index or config blob of a layout fully (at most
/// `max` bytes), checking size and digest.
pub fn read_blob(root: &Path, desc: &Descriptor, what: &str, max: u64) -> Result<Vec<u8>> {
    let path = blob_path(root, &desc.digest)?;
    if !path.exists() {
        return Err(Error::MissingBlob { digest: desc.digest.clone(), path: root.to_owned() });
    }
    if desc.size > max {
        return Err(Error::invalid(what, format!("declares {} bytes; at most {max} are accepted", desc.size)));
    }
    let bytes = read_file(&path, max)?;
    verify_bytes(what, &bytes, &desc.digest, Some(desc.size))?;
    Ok(bytes)
}

/// An image layout directory or an archive unpacked into one.
pub struct ImageDir {
    /// The directory.
    pub root: PathBuf,
    /// What the user named (for messages).
    pub shown: PathBuf,
    /// A scratch directory to delete afterwards, for archives.
    _scratch: Option<Scratch>,
}

/// A directory an archive is unpacked into, removed when done, and locked
/// (`flock` on the directory) while in use: see [`sweep_abandoned`].
struct Scratch {
    dir: PathBuf,
    _lock: File,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes what imports that were killed (no `Drop` ran) left in
/// `scratch_parent`: `archive-*` directories no process holds locked, up
/// to a whole unpacked archive each. One made in the last minute is left
/// alone: its import may not have locked it yet.
pub fn sweep_abandoned(scratch_parent: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch_parent) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("archive-") {
            continue;
        }
        let Ok(dir) = File::open(entry.path()) else { continue };
        let old = dir.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() > 60));
        if old && dir.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl ImageDir {
    /// Opens a layout directory, or unpacks an archive into `scratch_parent`.
    pub fn open(path: &Path, scratch_parent: &Path) -> Result<ImageDir> {
        let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if md.is_dir() {
            if !path.join("index.json").is_file() && !path.join("manifest.json").is_file() {
                return Err(Error::NotAnImage(path.to_owned()));
            }
            return Ok(ImageDir { root: path.to_owned(), shown: path.to_owned(), _scratch: None });
        }
        std::fs::create_dir_all(scratch_parent).map_err(|e| Error::io(scratch_parent, e))?;
        sweep_abandoned(scratch_parent);
        let dir = scratch_parent.join(format!("archive-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = File::open(&dir).and_then(|f| f.lock().map(|()| f)).map_err(|e| Error::io(&dir, e))?;
        let scratch = Scratch { dir: dir.clone(), _lock: lock };
        let mut head = [0u8; 4];
        let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| Error::io(path, e))?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader: Box<dyn Read> = if n >= 2 && head[..2] == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
            Box::new(zstd::Decoder::new(file).map_err(|e| Error::io(path, e))?)
        } else {
            Box::new(file)
        };
        let mut ar = tar::Archive::new(reader);
        // `unpack` refuses entries that would land outside `dir`, but not
        // symlinks that point outside it, which reading would follow.
        ar.unpack(&dir).map_err(|_| Error::NotAnImage(path.to_owned()))?;
        stays_inside(&dir, path)?;
        if !dir.join("index.json").is_file() && !dir.join("manifest.json").is_file() {
            return Err(Error::NotAnImage(path.to_owned()));
        }
        Ok(ImageDir { root: dir, shown: path.to_owned(), _scratch: Some(scratch) })
    }

    /// Picks the image named `want` (or the only one) for `platform`.
    pub fn resolve(&self, want: Option<&str>, platform: &Platform) -> Result<ResolvedImage> {
        if self.root.join("index.json").is_file() {
            let raw = read_file(&self.root.join("index.json"), spec::MAX_MANIFEST)?;
            let index: Index = spec::parse("index.json", &raw)?;
            if !index.manifests.is_empty() {
                return self.resolve_layout(&index, want, platform);
            }
        }
        if self.root.join("manifest.json").is_file() {
            return self.resolve_docker(want);
        }
        Err(Error::NotAnImage(self.shown.clone()))
    }

    /// The image among `chosen` (those matching `want`, or all): the only
    /// one, or the first of several when `want` named them; `names` are the
    /// source's references, for the error when there is none or no name
    /// picks one.
    fn pick<'a, T>(&self, chosen: &[&'a T], want: Option<&str>, names: Vec<String>) -> Result<&'a T> {
        match chosen {
            [one] => Ok(*one),
            [] => Err(Error::NoSuchRef {
                path: self.shown.clone(),
                name: want.unwrap_or_default().to_owned(),
                refs: names,
            }),
            _ if want.is_none() => Err(Error::AmbiguousRef { path: self.shown.clone(), refs: names }),
            [first, ..] => Ok(*first),
        }
    }

    fn resolve_layout(&self, index: &Index, want: Option<&str>, platform: &Platform) -> Result<ResolvedImage> {
        let names: Vec<String> =
            index.manifests.iter().filter_map(|d| d.annotations.get(spec::REF_NAME).cloned()).collect();
        let chosen: Vec<&Descriptor> = match want {
            Some(w) => index
                .manifests
                .iter()
                .filter(|d| {
                    d.annotations.get(spec::REF_NAME).is_some_and(|n| n == w)
                        || d.annotations.get("io.containerd.image.name").is_some_and(|n| n == w)
                })
                .collect(),
            None => index.manifests.iter().collect(),
        };
        let desc = self.pick(&chosen, want, names)?;
        let (manifest_digest, manifest) = self.manifest_for(desc, platform, 0)?;
        let config = read_blob(&self.root, &manifest.config, "image config", spec::MAX_CONFIG)?;
        let mut layers = Vec::new();
        for l in &manifest.layers {
            spec::layer_compression(&format!("layer {}", l.digest), &l.media_type)?;
            let path = blob_path(&self.root, &l.digest)?;
            if !path.exists() {
                return Err(Error::MissingBlob { digest: l.digest.clone(), path: self.shown.clone() });
            }
            regular(&path)?;
            layers.push(LayerFile { desc: l.clone(), path });
        }
        Ok(ResolvedImage { manifest_digest, config_digest: manifest.config.digest.clone(), config, layers })
    }

    /// Follows indexes down to the manifest for `platform`.
    fn manifest_for(&self, desc: &Descriptor, platform: &Platform, depth: u32) -> Result<(String, Manifest)> {
        if depth > 4 {
            return Err(Error::invalid(format!("index {}", desc.digest), "indexes nested too deeply"));
        }
        let what = format!("manifest {}", desc.digest);
        let bytes = read_blob(&self.root, desc, &what, spec::MAX_MANIFEST)?;
        if spec::is_index(&desc.media_type, &bytes) {
            let index: Index = spec::parse(&what, &bytes)?;
            let next = select_platform(&index, platform, &self.shown.display().to_string())?;
            return self.manifest_for(&next, platform, depth + 1);
        }
        spec::check_manifest_type(&what, &desc.media_type)?;
        let manifest: Manifest = spec::parse(&what, &bytes)?;
        if let Some(mt) = &manifest.media_type {
            spec::check_manifest_type(&what, mt)?;
        }
        Ok((desc.digest.clone(), manifest))
    }

    /// A `docker save` archive: `manifest.json` lists config and layer
    /// files; layers are plain tars named by DiffID.
    fn resolve_docker(&self, want: Option<&str>) -> Result<ResolvedImage> {
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "RepoTags", default)]
            repo_tags: Option<Vec<String>>,
            #[serde(rename = "Layers", default)]
            layers: Vec<String>,
        }
        let raw = read_file(&self.root.join("manifest.json"), spec::MAX_MANIFEST)?;
        let items: Vec<Item> = spec::parse("manifest.json", &raw)?;
        let names: Vec<String> = items.iter().flat_map(|i| i.repo_tags.clone().unwrap_or_default()).collect();
        let chosen: Vec<&Item> = match want {
            Some(w) => items
                .iter()
                .filter(|i| {
                    i.repo_tags.as_ref().is_some_and(|t| t.iter().any(|t| t == w || t == &format!("{w}:latest")))
                })
                .collect(),
            None => items.iter().collect(),
        };
        let item = self.pick(&chosen, want, names)?;
        let inside = |rel: &str| -> Result<PathBuf> {
            if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
                return Err(Error::invalid("manifest.json", format!("path '{rel}' leaves the archive")));
            }
            Ok(self.root.join(rel))
        };
        let config = read_file(&inside(&item.config)?, spec::MAX_CONFIG)?;
        let config_digest = crate::digest::sha256_of(&config);
        let mut layers = Vec::new();
        for l in &item.layers {
            let path = inside(l)?;
            let size = regular(&path)?;
            // Newer docker versions name layers by their blob digest.
            let digest = match l.strip_prefix("blobs/sha256/") {
                Some(hex) if sha256_hex(&format!("sha256:{hex}")).is_ok() => format!("sha256:{hex}"),
                _ => String::new(),
            };
            let desc = Descriptor {
                media_type: sniff_media_type(&path)?.to_owned(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
            };
            layers.push(LayerFile { desc, path });
        }
        let manifest_digest = crate::digest::sha256_of(&raw);
        Ok(ResolvedImage { manifest_digest, config_digest, config, layers })
    }
}

/// Checks that every entry unpacked from `archive` into `dir` is a file, a
/// directory, or a symlink that resolves inside `dir` (`docker save` links
/// a layer it holds twice to its first copy).
fn stays_inside(dir: &Path, archive: &Path) -> Result<()> {
    let top = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let refuse = |p: &Path, why: &str| {
        let inner = p.strip_prefix(dir).unwrap_or(p).display().to_string();
        Error::invalid(archive.display().to_string(), format!("{inner}: {why}"))
    };
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let (p, kind) = (entry.path(), entry.file_type().map_err(|e| Error::io(&d, e))?);
            if kind.is_dir() {
                todo.push(p);
            } else if kind.is_symlink() {
                match std::fs::canonicalize(&p) {
                    Ok(to) if to.starts_with(&top) => {}
                    _ => return Err(refuse(&p, "a symlink that leads outside the archive")),
                }
            } else if !kind.is_file() {
                return Err(refuse(&p, "neither a file nor a directory"));
            }
        }
    }
    Ok(())
}

fn sniff_media_type(path: &Path) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| Error::io(path, e))?;
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    })
}

/// The index entry for `platform`, or an error listing what there is.
pub fn select_platform(index: &Index, platform: &Platform, image: &str) -> Result<Descriptor> {
    let found = index.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)));
    if let Some(d) = found {
        return Ok(d.clone());
    }
    // An index without platforms (umoci, some layouts) with one manifest.
    if let [one] = index.manifests.as_slice()
        && one.platform.is_none()
    {
        return Ok(one.clone());
    }
    Err(Error::NoPlatform {
        image: image.to_owned(),
        platform: platform.to_string(),
        available: index.manifests.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_string())).collect(),
    })
}

/// A process-unique counter for scratch names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::sweep_abandoned;

    /// A killed import's unpacked archive goes at the next import; one
    /// still locked by its import stays, and so does one just made.
    #[test]
    fn scratch_of_dead_imports_is_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let [dead, live, new] = ["archive-1-1", "archive-2-1", "archive-3-1"].map(|n| dir.path().join(n));
        for d in [&dead, &live, &new] {
            std::fs::create_dir_all(d.join("blobs")).expect("mkdir");
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for d in [&dead, &live] {
            std::fs::File::open(d).and_then(|f| f.set_modified(hour_ago)).expect("age");
        }
        let held = std::fs::File::open(&live).expect("open");
        held.lock().expect("lock");
        std::fs::create_dir(dir.path().join("other")).expect("mkdir");
        sweep_abandoned(dir.path());
        assert!(!dead.exists(), "abandoned");
        assert!(live.exists() && new.exists() && dir.path().join("other").exists());
    }
}
