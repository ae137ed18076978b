//! The overlay crate's error type: what failed, on which image, layer,
//! entry, blob or path.

use std::path::PathBuf;

/// Everything importing, pulling or reading images can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The monofs store failed.
    #[error(transparent)]
    Monofs(#[from] monofs::Error),
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path worked on.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON document (index, manifest, config) did not parse.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A path is neither an OCI layout directory nor an image archive.
    #[error("{}: not an OCI image layout directory, OCI archive or `docker save` archive", .0.display())]
    NotAnImage(PathBuf),
    /// A layout or archive holds several images and none was chosen.
    #[error("{} holds several images ({}); choose one with --ref", path.display(), refs.join(", "))]
    AmbiguousRef {
        /// The layout or archive.
        path: PathBuf,
        /// The names it holds.
        refs: Vec<String>,
    },
    /// The requested ref is not in the layout or archive.
    #[error("{}: no image named '{name}' (it holds: {})", path.display(), refs.join(", "))]
    NoSuchRef {
        /// The layout or archive.
        path: PathBuf,
        /// What was asked for.
        name: String,
        /// The names it holds.
        refs: Vec<String>,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid or unsupported digest '{0}' (only sha256 is supported)")]
    BadDigest(String),
    /// A blob is missing from a layout.
    #[error("blob {digest} is missing from {}", path.display())]
    MissingBlob {
        /// The blob.
        digest: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A blob's bytes do not hash to its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob (and its role).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },
    /// A blob is shorter than its descriptor says.
    #[error("{what}: blob is truncated: {got} of {expected} bytes")]
    Truncated {
        /// The blob.
        what: String,
        /// The descriptor's size.
        expected: u64,
        /// What was there.
        got: u64,
    },
    /// A blob is longer than its descriptor says.
    #[error("{what}: blob has {got} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        what: String,
        /// The descriptor's size.
        expected: u64,
        /// What was there.
        got: u64,
    },
    /// A manifest, index or layer has a media type this importer does not
    /// know.
    #[error("{what}: unknown media type '{media_type}'")]
    UnknownMediaType {
        /// The object.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// An image document is inconsistent.
    #[error("{what}: {reason}")]
    Invalid {
        /// The document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer entry would land outside the image root.
    #[error("layer {layer}: entry '{entry}' escapes the image root ({reason})")]
    Escape {
        /// The layer digest.
        layer: String,
        /// The entry path as stored in the tar.
        entry: String,
        /// How it escapes.
        reason: &'static str,
    },
    /// A layer entry could not be applied.
    #[error("layer {layer}: entry '{entry}': {reason}")]
    BadEntry {
        /// The layer digest.
        layer: String,
        /// The entry path as stored in the tar.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a layer's tar stream failed.
    #[error("layer {layer}: {source}")]
    Layer {
        /// The layer digest.
        layer: String,
        /// The read or decompression error.
        source: std::io::Error,
    },
    /// A layer could not be written into the tree.
    #[error("layer {layer}: {source}")]
    LayerTree {
        /// The layer digest.
        layer: String,
        /// The tree error.
        source: monofs::Error,
    },
    /// No local image has this name.
    #[error("no image '{0}' in the local store")]
    NoSuchImage(String),
    /// An image name cannot be parsed.
    #[error("invalid image name '{name}': {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A stored image record is damaged.
    #[error("image record of '{name}' is damaged: {reason}")]
    BadRecord {
        /// The image.
        name: String,
        /// Why.
        reason: String,
    },
    /// The registry refused or failed a request.
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// A multi-platform index has no manifest for the wanted platform.
    #[error("{image}: no manifest for platform {platform} (available: {})", available.join(", "))]
    NoPlatform {
        /// The image.
        image: String,
        /// The platform wanted.
        platform: String,
        /// Platforms the index offers.
        available: Vec<String>,
    },
}

impl Error {
    /// A suggestion for the user, printed as `hint: ...` by the CLI.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::NoSuchImage(_) => "see `monocore images`, or fetch it with `monocore pull IMAGE`",
            Error::AmbiguousRef { .. } | Error::NoSuchRef { .. } => "pass --ref NAME with one of the names listed",
            Error::NoPlatform { .. } => "pass --platform with one of the platforms listed",
            Error::Monofs(e) => return e.hint(),
            _ => return None,
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}

/// Short alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
