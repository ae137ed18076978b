//! The library's error type: what failed and on which path, id or ref.

use std::path::PathBuf;

use crate::crypto::SealError;
use crate::encoding::DecodeError;
use crate::id::ObjectId;
use crate::object::Kind;
use crate::store::StoreError;

/// Everything a repository operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// REPO does not exist.
    #[error("{}: no such repository", .0.display())]
    NoSuchRepository(PathBuf),
    /// REPO exists but holds no monofs store.
    #[error("{}: not a monofs repository", .0.display())]
    NotARepository(PathBuf),
    /// `init` on a directory that is already a repository.
    #[error("{}: already a monofs repository", .0.display())]
    AlreadyARepository(PathBuf),
    /// A directory that must be empty is not.
    #[error("{}: directory is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// Another process holds the repository.
    #[error("repository {} is locked by PID {pid}", path.display())]
    Locked {
        /// The repository.
        path: PathBuf,
        /// The holder, as it wrote itself into the lock file.
        pid: String,
    },
    /// The passphrase does not open the key.
    #[error("wrong passphrase for {}", .0.display())]
    WrongPassphrase(PathBuf),
    /// The repository was written by an unknown format version.
    #[error("{}: unsupported repository format version {version}", path.display())]
    UnsupportedFormat {
        /// The repository.
        path: PathBuf,
        /// The version it claims.
        version: u64,
    },
    /// A revision expression names nothing.
    #[error("unknown revision '{0}'")]
    UnknownRevision(String),
    /// `REV~N` goes further back than the history does.
    #[error("unknown revision '{spec}': history ends after {found} ancestor(s)")]
    HistoryTooShort {
        /// The expression.
        spec: String,
        /// How many ancestors there are.
        found: u64,
    },
    /// A short id matches several revisions.
    #[error("ambiguous revision '{spec}': it matches {count} revisions")]
    AmbiguousRevision {
        /// What the user typed.
        spec: String,
        /// How many revisions start with it.
        count: usize,
    },
    /// The repository has no revision yet.
    #[error("the repository has no revisions yet")]
    NoRevisions,
    /// An object referenced by the tree is absent.
    #[error("object {0} is missing from the repository")]
    MissingObject(ObjectId),
    /// A clone into this directory was interrupted: it holds only part of
    /// its source, and must not be used (a commit there would be lost
    /// when the clone is finished).
    #[error("{path}: an unfinished clone of {origin}")]
    UnfinishedClone {
        /// The repository directory.
        path: PathBuf,
        /// What it is a clone of, as the clone named it.
        origin: String,
    },
    /// An object failed authentication, decompression or its hash check.
    #[error("object {id} is corrupt: {source}")]
    Corrupt {
        /// The object.
        id: ObjectId,
        /// What was wrong.
        source: SealError,
    },
    /// An object decoded, but not as what refers to it expects.
    #[error("object {id} is not a valid {}: {source}", kind.name())]
    Malformed {
        /// The object.
        id: ObjectId,
        /// What it was expected to be.
        kind: Kind,
        /// Why it did not decode.
        source: DecodeError,
    },
    /// Repository metadata (config, key file, stat record) did not decode.
    #[error("{what} is damaged: {source}")]
    BadMetadata {
        /// Which record.
        what: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path worked on.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The storage backend failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// `checkout` or `commit --from` would discard uncommitted changes.
    #[error("the working tree has uncommitted changes")]
    DirtyWorkingTree,
    /// Nothing changed since HEAD.
    #[error("nothing to commit: the working tree equals HEAD")]
    NothingToCommit,
    /// A tag name is taken.
    #[error("tag '{0}' already exists")]
    TagExists(String),
    /// A tag name is not known.
    #[error("no tag named '{0}'")]
    NoSuchTag(String),
    /// A tag name is not acceptable.
    #[error("invalid tag name {}: {why}", crate::diff::quote_path(name.as_bytes()))]
    InvalidTagName {
        /// The name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A ref name no command could show or remove (from a replica).
    #[error("invalid ref name {0:?}")]
    InvalidRefName(String),
    /// A named working tree does not exist.
    #[error("no working tree named '{0}'")]
    NoSuchWorktree(String),
    /// A path in a tree (such as a hard-link target) points nowhere valid.
    #[error("invalid path in tree: {0}")]
    InvalidTreePath(String),
    /// An object would exceed what readers accept.
    #[error("a {} object of {size} bytes exceeds the {} byte limit", kind.name(), crate::crypto::MAX_OBJECT_SIZE)]
    ObjectTooLarge {
        /// Its kind.
        kind: Kind,
        /// Its plaintext size.
        size: u64,
    },
    /// Work stopped because a writer thread failed first.
    #[error("aborted")]
    Aborted,
}

impl Error {
    /// A suggestion for the user, printed as `hint: ...` by the CLI.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::NoSuchRepository(_) | Error::NotARepository(_) => "create one with `monofs init REPO`",
            Error::Locked { .. } => "wait for that process to finish, or stop it",
            Error::WrongPassphrase(_) => "set MONOFS_PASSPHRASE to the passphrase given at `monofs init`",
            Error::UnknownRevision(_) | Error::HistoryTooShort { .. } => {
                "see `monofs log REPO --all` and `monofs tag REPO --list`"
            }
            Error::AmbiguousRevision { .. } => "type more digits of the id",
            Error::DirtyWorkingTree => "commit them first, or pass --force to discard them",
            Error::NotEmpty(_) => "choose an empty or new directory, or pass --force to write into this one",
            Error::UnfinishedClone { .. } => "run the same `monofs clone` again to finish it, or delete the directory",
            Error::Corrupt { .. } | Error::MissingObject(_) | Error::Malformed { .. } => {
                "run `monofs fsck REPO` to list every damaged object"
            }
            Error::TagExists(_) => "pass --force to move it",
            e if e.is_disk_full() => "free some space on that disk and run it again: what was stored before is intact",
            _ => return None,
        })
    }

    /// Whether the disk holding the repository (or a target) is full: an
    /// OS error ENOSPC (or EDQUOT, a quota reached) anywhere in the chain
    /// of causes.
    pub fn is_disk_full(&self) -> bool {
        disk_full(self)
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

/// Whether `e` or one of its causes is an OS error saying a disk is full
/// (ENOSPC, or EDQUOT: a quota reached).
pub(crate) fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && (matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
                || matches!(io.raw_os_error(), Some(nix::libc::ENOSPC | nix::libc::EDQUOT)))
        {
            return true;
        }
        // A backend error is transparent: its chain skips the error it
        // wraps, so look into that one too.
        if let Some(store) = e.downcast_ref::<StoreError>()
            && disk_full(store.0.as_ref())
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Short alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
