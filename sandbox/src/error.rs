//! The sandbox crate's error type: what could not be set up, and how to fix it.

/// Everything starting, running or cleaning up a sandbox can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] monofs_overlay::Error),
    /// The monofs repository failed.
    #[error(transparent)]
    Monofs(#[from] monofs::Error),
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option value is not usable.
    #[error("invalid {option} '{value}': {why}")]
    BadOption {
        /// The option.
        option: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// Neither the command line nor the image says what to run.
    #[error("no command: the image has no entrypoint or cmd")]
    NoCommand,
    /// The host cannot create the namespaces a sandbox needs.
    #[error("cannot create namespaces: {0}")]
    NoNamespaces(String),
    /// The requested runtime cannot run on this host.
    #[error("isolation '{runtime}' is not available here: {why}")]
    RuntimeUnavailable {
        /// The runtime asked for.
        runtime: String,
        /// Why not.
        why: String,
    },
    /// No sandbox has this id (or unambiguous id prefix).
    #[error("no sandbox '{0}'")]
    NoSuchSandbox(String),
    /// `MONOCORE_HOME/config.toml` is not usable.
    #[error("bad config {}: {why}", path.display())]
    BadConfig {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The sandbox failed before its command could start.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

impl Error {
    /// A suggestion for the user, printed as `hint: ...` by the CLI.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoCommand => Some("give one after --, e.g. `monocore tmp IMAGE -- /bin/sh`"),
            Error::NoNamespaces(_) => {
                Some("run as root; if root is refused, allow user namespaces (sysctl user.max_user_namespaces)")
            }
            Error::NoSuchSandbox(_) => Some("see `monocore ps`"),
            Error::Image(e) => e.hint(),
            Error::Monofs(e) => e.hint(),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }

    pub(crate) fn sys(what: impl Into<String>, errno: nix::errno::Errno) -> Error {
        Error::Io { what: what.into(), source: std::io::Error::from(errno) }
    }
}

/// Result of a sandbox operation.
pub type Result<T> = std::result::Result<T, Error>;
