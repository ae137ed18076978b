//! Pulling from an OCI distribution registry with `oci-client`.
//!
//! The manifest is fetched first (an index is resolved to the wanted
//! platform); if the local image of that name already has this manifest
//! digest, nothing else is fetched. Otherwise the config and only the
//! layers above the highest layer stack already stored (by ChainID) are
//! downloaded into `$MONOCORE_HOME/blobs` (each verified, written to a
//! `.partial` file and renamed), then imported like a layout; downloaded
//! blobs are deleted afterwards. Transient failures (connection errors,
//! 429, 5xx) are retried with exponential backoff.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;

use crate::digest::{sha256_of, verify_bytes};
use crate::error::{Error, Result};
use crate::name::ImageName;
use crate::source::{LayerFile, ResolvedImage, select_platform};
use crate::spec::{self, Descriptor, Index, Manifest, Platform};
use crate::store::{ImageStore, ImportSummary};

/// Attempts per request before giving up on a transient error.
const ATTEMPTS: u32 = 4;

/// Credentials for a registry.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// From `~/.docker/config.json` when it has an entry, else anonymous.
    #[default]
    Auto,
    /// User name and password (or token) for basic auth / token exchange.
    Basic(String, String),
}

/// How to pull.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Plain HTTP to this registry (always allowed for loopback hosts).
    pub insecure: bool,
    /// Platform to resolve indexes to; the host's when `None`.
    pub platform: Option<Platform>,
    /// Credentials.
    pub credentials: Credentials,
}

/// What a pull did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PullSummary {
    /// Name stored under (Docker-normalised).
    pub name: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// True when the local image already had this manifest.
    pub up_to_date: bool,
    /// Blobs downloaded (manifests excluded).
    pub blobs_fetched: usize,
    /// Their bytes.
    pub bytes_fetched: u64,
    /// The import, when one happened.
    pub import: Option<ImportSummary>,
}

fn registry_error(registry: &str, e: &OciDistributionError) -> Error {
    let message = match e {
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
            "401 unauthorized: give credentials with --username/--password-stdin (or `docker login`)".to_owned()
        }
        OciDistributionError::ImageManifestNotFoundError(m) => format!("404 not found: {m}"),
        OciDistributionError::RegistryError { envelope, .. } => {
            let parts: Vec<String> = envelope.errors.iter().map(|x| format!("{:?}: {}", x.code, x.message)).collect();
            parts.join("; ")
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let m: String = message.chars().take(200).collect();
            format!("HTTP {code} {}", m.trim())
        }
        OciDistributionError::RequestError(r) => {
            let mut s = r.to_string();
            let mut src = std::error::Error::source(r);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
        other => other.to_string(),
    };
    Error::Registry { registry: registry.to_owned(), message }
}

fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => !r.is_builder() && !r.is_redirect(),
        // Past its declared size (see `Capped`): the same next time.
        OciDistributionError::IoError(io) => io.kind() != std::io::ErrorKind::FileTooLarge,
        OciDistributionError::ServerError { code, .. } => *code == 429 || *code >= 500,
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().any(|x| matches!(x.code, OciErrorCode::Toomanyrequests))
        }
        _ => false,
    }
}

async fn retry<T, F, Fut>(registry: &str, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tracing::info!("{what}: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => {
                let Error::Registry { registry, message } = registry_error(registry, &e) else {
                    return Err(registry_error(registry, &e));
                };
                return Err(Error::Registry { registry, message: format!("{what}: {message}") });
            }
        }
    }
}

/// Credentials for `registry` from `~/.docker/config.json`, if any.
fn docker_config_auth(registry: &str) -> Option<(String, String)> {
    let home = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let raw = std::fs::read(home.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let keys: Vec<String> = if registry == crate::name::DOCKER_HUB {
        vec!["https://index.docker.io/v1/".into(), "index.docker.io".into(), "docker.io".into()]
    } else {
        vec![registry.to_owned(), format!("https://{registry}"), format!("http://{registry}")]
    };
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    let decoded = base64_decode(entry.get("auth")?.as_str()?)?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A writer that takes at most `left` bytes: a registry that sends a blob
/// past the size its manifest declares is cut off there, instead of
/// filling memory or the disk.
struct Capped<W> {
    inner: W,
    left: u64,
    limit: u64,
}

impl<W> Capped<W> {
    fn new(inner: W, limit: u64) -> Capped<W> {
        Capped { inner, left: limit, limit }
    }
}

/// The error for bytes past a declared size; `transient` does not retry it.
fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("the registry sent more than {limit} bytes"))
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return std::task::Poll::Ready(Err(too_large(self.limit)));
        }
        let this = &mut *self;
        let written = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &written {
            this.left -= *n as u64;
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Remote {
    client: Client,
    /// For manifests, which oci-client reads whole whatever their size.
    http: reqwest::Client,
    /// Whether the registry is spoken to over plain HTTP.
    plain_http: bool,
    auth: RegistryAuth,
    registry: String,
    shown: String,
}

impl Remote {
    async fn manifest(&self, reference: &Reference, expected: Option<&Descriptor>) -> Result<(Vec<u8>, String)> {
        // The digest is computed here, not taken from the registry's header.
        let bytes =
            retry(&self.registry, &format!("manifest of {}", self.shown), || self.manifest_capped(reference)).await?;
        let actual = sha256_of(&bytes);
        if let Some(d) = expected {
            verify_bytes(&format!("manifest {}", d.digest), &bytes, &d.digest, Some(d.size))?;
        } else if let Some(want) = reference.digest()
            && want != actual
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {}", self.shown),
                expected: want.to_owned(),
                actual,
            });
        }
        Ok((bytes, actual))
    }

    /// The manifest `reference` names, at most [`MAX_MANIFEST`](spec::MAX_MANIFEST) bytes, with
    /// the auth oci-client negotiates.
    async fn manifest_capped(&self, reference: &Reference) -> std::result::Result<Vec<u8>, OciDistributionError> {
        let token = self.client.auth(reference, &self.auth, oci_client::RegistryOperation::Pull).await?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            if self.plain_http { "http" } else { "https" },
            reference.resolve_registry(),
            reference.repository(),
            reference.digest().or(reference.tag()).unwrap_or("latest")
        );
        let mut request = self.http.get(&url).header(reqwest::header::ACCEPT, spec::MANIFEST_TYPES.join(", "));
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let mut response = request.send().await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(OciDistributionError::ImageManifestNotFoundError(url));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(OciDistributionError::UnauthorizedError { url });
        }
        if !status.is_success() {
            let message = status.canonical_reason().unwrap_or_default().to_owned();
            return Err(OciDistributionError::ServerError { code: status.as_u16(), url, message });
        }
        let mut body = Capped::new(Vec::new(), spec::MAX_MANIFEST);
        while let Some(piece) = response.chunk().await? {
            tokio::io::AsyncWriteExt::write_all(&mut body, &piece).await?;
        }
        Ok(body.inner)
    }

    /// A config blob, refused when it declares more than
    /// [`MAX_CONFIG`](spec::MAX_CONFIG) bytes.
    async fn blob_to_vec(&self, reference: &Reference, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        if desc.size > spec::MAX_CONFIG {
            let why = format!("declares {} bytes; at most {} are accepted", desc.size, spec::MAX_CONFIG);
            return Err(Error::invalid(what, why));
        }
        let layer = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let data = retry(&self.registry, what, || async {
            let mut out = Capped::new(Vec::new(), desc.size);
            self.client.pull_blob(reference, &layer, &mut out).await?;
            Ok(out.inner)
        })
        .await?;
        verify_bytes(what, &data, &desc.digest, Some(desc.size))?;
        Ok(data)
    }

    async fn blob_to_file(&self, reference: &Reference, desc: &Descriptor, path: &std::path::Path) -> Result<u64> {
        let what = format!("layer {}", desc.digest);
        let layer = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let partial = path.with_extension("partial");
        let pulled = retry(&self.registry, &what, || async {
            let file = tokio::fs::File::create(&partial).await?;
            self.client.pull_blob(reference, &layer, Capped::new(file, desc.size)).await
        })
        .await;
        if let Err(e) = pulled {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        let len = std::fs::metadata(&partial).map_err(|e| Error::io(&partial, e))?.len();
        crate::digest::check_size(&what, desc.size, len)?;
        std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))?;
        Ok(len)
    }
}

impl ImageStore {
    /// Pulls `name` (Docker-normalised) into the store; fetches nothing
    /// but the manifest when the local copy is current.
    pub fn pull(&self, name: &str, opts: &PullOptions) -> Result<PullSummary> {
        let parsed = ImageName::parse(name)?;
        let full = parsed.full();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(self.home(), e))?;
        runtime.block_on(self.pull_async(&parsed, &full, opts))
    }

    async fn pull_async(&self, parsed: &ImageName, full: &str, opts: &PullOptions) -> Result<PullSummary> {
        let reference: Reference = full
            .parse()
            .map_err(|e: oci_client::ParseError| Error::InvalidName { name: full.to_owned(), reason: e.to_string() })?;
        let plain_http = opts.insecure || parsed.is_loopback();
        let protocol = if plain_http {
            ClientProtocol::HttpsExcept(vec![parsed.registry.clone(), reference.resolve_registry().to_owned()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let auth = match &opts.credentials {
            Credentials::Basic(u, p) => RegistryAuth::Basic(u.clone(), p.clone()),
            Credentials::Auto => match docker_config_auth(&parsed.registry) {
                Some((u, p)) => RegistryAuth::Basic(u, p),
                None => RegistryAuth::Anonymous,
            },
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Registry { registry: parsed.registry.clone(), message: e.to_string() })?;
        let remote = Remote {
            client: Client::new(config),
            http,
            plain_http,
            auth,
            registry: parsed.registry.clone(),
            shown: full.to_owned(),
        };
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);

        // Manifest, through an index if needed.
        self.step(&format!("{full}: fetching manifest"));
        let (mut bytes, mut digest) = remote.manifest(&reference, None).await?;
        let mut depth = 0;
        let manifest: Manifest = loop {
            let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_default();
            if spec::is_index(&media_type, &bytes) {
                let index: Index = spec::parse(&format!("index of {full}"), &bytes)?;
                let desc = select_platform(&index, &platform, full)?;
                depth += 1;
                if depth > 4 {
                    return Err(Error::invalid(full, "indexes nested too deeply"));
                }
                let by_digest = reference.clone_with_digest(desc.digest.clone());
                (bytes, digest) = remote.manifest(&by_digest, Some(&desc)).await?;
                continue;
            }
            let what = format!("manifest {digest}");
            spec::check_manifest_type(&what, &media_type)?;
            break spec::parse(&what, &bytes)?;
        };
        let mut summary =
            PullSummary { name: full.to_owned(), manifest_digest: digest.clone(), ..PullSummary::default() };
        if let Some(current) = self.lookup(full)?
            && current.name == full
            && current.record.manifest_digest == digest
        {
            summary.up_to_date = true;
            return Ok(summary);
        }
        for l in &manifest.layers {
            spec::layer_compression(&format!("layer {}", l.digest), &l.media_type)?;
            crate::digest::sha256_hex(&l.digest)?;
        }
        let config = remote
            .blob_to_vec(&reference, &manifest.config, &format!("image config {}", manifest.config.digest))
            .await?;
        summary.blobs_fetched += 1;
        summary.bytes_fetched += config.len() as u64;
        let mut image = ResolvedImage {
            manifest_digest: digest.clone(),
            config_digest: manifest.config.digest.clone(),
            config,
            layers: Vec::new(),
        };
        let parsed_config = ImageStore::parse_config(&ResolvedImage {
            layers: manifest.layers.iter().map(|d| LayerFile { desc: d.clone(), path: PathBuf::new() }).collect(),
            ..image.clone()
        })?;
        let chains = crate::digest::chain_ids(&parsed_config.rootfs.diff_ids);
        let mut start = 0;
        for (i, c) in chains.iter().enumerate().rev() {
            if self.chain(c)?.is_some() {
                start = i + 1;
                break;
            }
        }
        let blobs = self.home().join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let mut downloaded = Vec::new();
        for (i, l) in manifest.layers.iter().enumerate() {
            let path = blobs.join(crate::digest::sha256_hex(&l.digest)?);
            if i >= start {
                let present = std::fs::metadata(&path).map(|m| m.len() == l.size).unwrap_or(false);
                if !present {
                    self.step(&format!(
                        "layer {}/{}: downloading {} ({} bytes)",
                        i + 1,
                        manifest.layers.len(),
                        crate::store::short(&l.digest),
                        l.size
                    ));
                    summary.bytes_fetched += remote.blob_to_file(&reference, l, &path).await?;
                    summary.blobs_fetched += 1;
                }
                downloaded.push(path.clone());
            }
            image.layers.push(LayerFile { desc: l.clone(), path });
        }
        let result = self.import_resolved(full, &image, &format!("registry:{full}"));
        // A corrupt cached blob must not poison the next attempt.
        if result.is_ok() || matches!(result, Err(Error::DigestMismatch { .. } | Error::Truncated { .. })) {
            for p in downloaded {
                let _ = std::fs::remove_file(p);
            }
        }
        summary.import = Some(result?);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").as_deref(), Some(&b"user:pass"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
    }
}
