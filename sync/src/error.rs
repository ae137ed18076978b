//! What replication can fail with.

use monofs::ObjectId;

/// Every error of this crate, with the object, ref or address concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] monofs::Error),
    /// A store operation failed. (Not linked as the error's source: its
    /// text is already in this message, and a chain would repeat it.)
    #[error("store: {0}")]
    Store(monofs::store::StoreError),
    /// The server refused the access token.
    #[error("{url}: 401 unauthorized: missing or wrong access token (pass --token-file FILE or set MONOFS_TOKEN)")]
    Unauthorized {
        /// The server.
        url: String,
    },
    /// The server answered with an error.
    #[error("{url}: the server answered {status}: {message}")]
    Remote {
        /// The server.
        url: String,
        /// HTTP status.
        status: u16,
        /// Its one-line explanation.
        message: String,
    },
    /// The connection failed or broke off.
    #[error("{url}: {message}")]
    Http {
        /// The server.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A malformed message on the wire (truncated, bad checksum, bad JSON).
    #[error("bad data from {from}: {what}")]
    Protocol {
        /// Who sent it.
        from: String,
        /// What was wrong.
        what: String,
    },
    /// An object failed verification on arrival: it does not open or hash
    /// to its id, or its checksum in transit does not match.
    #[error("object {id} failed verification: {why}")]
    BadObject {
        /// The object.
        id: ObjectId,
        /// What was wrong.
        why: String,
    },
    /// The source does not have an object it should have.
    #[error("{from} lacks object {id}, which its refs need")]
    MissingObject {
        /// The side asked.
        from: String,
        /// The object.
        id: ObjectId,
    },
    /// The two repositories are not replicas of one another.
    #[error("{a} and {b} are different repositories (their config or key differ); clone one to make a replica")]
    NotReplicas {
        /// One side.
        a: String,
        /// The other side.
        b: String,
    },
    /// A ref on the receiving side moved in a way that is not a fast-forward.
    #[error(
        "{side}: ref '{name}' is at {theirs}, which is not an ancestor of {ours}: the replicas diverged; backup mode only fast-forwards (merging divergent replicas is the crdt mode, not available yet)"
    )]
    NotFastForward {
        /// Where the ref would move.
        side: String,
        /// The ref.
        name: String,
        /// Its current value there (short id).
        theirs: String,
        /// The value it would get (short id).
        ours: String,
    },
    /// A ref on the receiver is ahead of the sender's: the sender moved
    /// back (a checkout of an older revision, a tag moved back).
    #[error(
        "{side}: ref '{name}' is at {theirs}, which already has {ours} in its history: the sender is behind (it checked out an older revision, or moved a tag back); a backup sync never moves a ref back, and `sync --pull` brings the newer revisions to the sender"
    )]
    SenderBehind {
        /// Where the ref would move.
        side: String,
        /// The ref.
        name: String,
        /// Its current value there (short id).
        theirs: String,
        /// The sender's value (short id).
        ours: String,
    },
    /// The receiver's working tree has changes not committed: moving its
    /// HEAD would leave them on top of revisions they were not made from,
    /// and its next commit would undo those.
    #[error(
        "{side} has uncommitted changes in its working tree: a backup sync would move its HEAD under them, and its next commit would undo what the sync brought; commit them there first (then sync them back), or discard them with {discard}"
    )]
    DirtyReceiver {
        /// The receiving replica.
        side: String,
        /// The command that discards them, where it runs.
        discard: String,
    },
    /// A ref changed while the sync ran (another sync won the race).
    #[error("{side}: ref '{name}' changed during the sync; run it again")]
    RefChanged {
        /// Where.
        side: String,
        /// The ref.
        name: String,
    },
    /// A collection ran on the receiver while the sync sent objects: it may
    /// have removed some the update's refs need, which nothing referred to
    /// yet.
    #[error("{side}: a gc ran there during the sync and may have removed what it sent; no ref was moved: run it again")]
    GcDuringSync {
        /// The receiving replica.
        side: String,
    },
    /// A ref update names an object the receiver lacks.
    #[error("{side}: refusing to point '{name}' at {id}, which is not stored there")]
    RefTargetMissing {
        /// Where.
        side: String,
        /// The ref.
        name: String,
        /// The object.
        id: ObjectId,
    },
    /// The repository is mounted (or served over NFS): its mount process
    /// owns it until it is detached.
    #[error(
        "{path} is mounted or served by process {pid}, which has it to itself: detach it (`monofs detach MOUNTPOINT`) and run this again"
    )]
    Mounted {
        /// The repository.
        path: std::path::PathBuf,
        /// The mount process.
        pid: String,
    },
    /// The clone destination exists and is not an unfinished clone of SRC.
    #[error("{0}: already exists and is not an unfinished clone of the source")]
    DestinationExists(std::path::PathBuf),
    /// A file or network I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A bad address, URL or argument.
    #[error("{0}")]
    Invalid(String),
}

impl From<monofs::store::StoreError> for SyncError {
    fn from(e: monofs::store::StoreError) -> SyncError {
        SyncError::Store(e)
    }
}

impl SyncError {
    /// [`SyncError::DirtyReceiver`] for replica `side` (a path or a URL).
    pub fn dirty_receiver(side: String) -> SyncError {
        let discard = if side.starts_with("http://") || side.starts_with("https://") {
            "`monofs checkout REPO HEAD --force` on the machine serving it".to_owned()
        } else {
            format!("`monofs checkout {side} HEAD --force`")
        };
        SyncError::DirtyReceiver { side, discard }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> SyncError {
        SyncError::Io { what: what.into(), source }
    }

    /// Whether a collection on the receiver refused the update (see
    /// [`SyncError::GcDuringSync`]), here or on a server: sending again
    /// completes the sync.
    pub fn gc_during_sync(&self) -> bool {
        matches!(self, SyncError::GcDuringSync { .. } | SyncError::Remote { status: GC_DURING_SYNC, .. })
    }

    /// Whether running the same command again may get further: the
    /// connection, the disk or the other side failed, not the request.
    pub fn resumable(&self) -> bool {
        match self {
            SyncError::Http { .. } | SyncError::Io { .. } | SyncError::Store(_) | SyncError::Protocol { .. } => true,
            SyncError::Remote { status, .. } => *status == 429 || *status >= 500,
            SyncError::Repo(e) => e.is_disk_full(),
            _ => false,
        }
    }

    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            SyncError::Unauthorized { .. } => 401,
            SyncError::NotFastForward { .. }
            | SyncError::SenderBehind { .. }
            | SyncError::RefChanged { .. }
            | SyncError::DirtyReceiver { .. } => 409,
            SyncError::GcDuringSync { .. } => GC_DURING_SYNC,
            SyncError::BadObject { .. }
            | SyncError::Protocol { .. }
            | SyncError::RefTargetMissing { .. }
            | SyncError::Invalid(_)
            | SyncError::Repo(monofs::Error::InvalidRefName(_)) => 422,
            // Another process (a mount, a commit) has the served repository.
            SyncError::Repo(monofs::Error::Locked { .. }) | SyncError::Mounted { .. } => 503,
            _ => 500,
        }
    }
}

/// The HTTP status of [`SyncError::GcDuringSync`] (Precondition Failed):
/// the update's `gc_epoch` no longer holds.
const GC_DURING_SYNC: u16 = 412;

/// Short alias.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::SyncError;

    /// The way out is a command the user can run: not a checkout of a URL.
    #[test]
    fn a_dirty_receiver_is_told_where_to_discard() {
        let remote = SyncError::dirty_receiver("http://127.0.0.1:7/".into()).to_string();
        assert!(remote.contains("`monofs checkout REPO HEAD --force` on the machine serving it"), "{remote}");
        let local = SyncError::dirty_receiver("/backups/r".into()).to_string();
        assert!(local.contains("`monofs checkout /backups/r HEAD --force`"), "{local}");
    }
}
