//! The parts of the OCI image spec (and Docker's equivalents) the importer
//! reads: descriptors, indexes, manifests, configs and media types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Annotation naming an image inside a layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest manifest, index or `manifest.json` accepted (Docker's limit
/// too): more is refused, not buffered.
pub const MAX_MANIFEST: u64 = 4 << 20;

/// The largest image config accepted. Configs are a few KiB; a long
/// history makes one of a few hundred. A source that declares more is
/// refused before a byte is read.
pub const MAX_CONFIG: u64 = 16 << 20;

/// Media types accepted when asking a registry for a manifest.
pub const MANIFEST_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// A reference to a blob.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the blob.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// Platform, in indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (ref names in layouts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OS/architecture pair.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on, in OCI's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { architecture: architecture.to_owned(), os: "linux".to_owned(), variant: None }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: (*os).to_owned(), architecture: (*arch).to_owned(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(Error::invalid("--platform", format!("'{s}' is not OS/ARCH[/VARIANT]"))),
        }
    }

    /// Whether an index entry's platform satisfies this one (a missing
    /// variant matches any).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image index or manifest list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// Set by registries, optional in layouts.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The manifests (or nested indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// Media type, when given.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config the importer needs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageConfigFile {
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// Execution parameters.
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// Layer DiffIDs.
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Digests of the uncompressed layers, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// How a container of the image runs (the OCI config's `config` object).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunConfig {
    /// `user[:group]`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `port/proto` keys.
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `NAME=value` entries.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Program and leading arguments.
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal that stops the container.
    #[serde(rename = "StopSignal", default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression a layer media type implies; unknown types are errors.
pub fn layer_compression(what: &str, media_type: &str) -> Result<Compression> {
    Ok(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
        other => return Err(Error::UnknownMediaType { what: what.to_owned(), media_type: other.to_owned() }),
    })
}

/// Parses a JSON document, naming it in errors.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json { what: what.to_owned(), source })
}

/// Whether a manifest document (by its declared or sniffed media type) is
/// an index.
pub fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        return true;
    }
    if media_type.is_empty() {
        // Layouts may omit media types: an index has `manifests`.
        return serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .is_some_and(|v| v.get("manifests").is_some() && v.get("layers").is_none());
    }
    false
}

/// Checks a manifest's media type.
pub fn check_manifest_type(what: &str, media_type: &str) -> Result<()> {
    match media_type {
        "" | OCI_MANIFEST | DOCKER_MANIFEST => Ok(()),
        other => Err(Error::UnknownMediaType { what: what.to_owned(), media_type: other.to_owned() }),
    }
}
