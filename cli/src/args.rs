//! Command-line arguments: only what the user typed, validated by clap.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

/// monofs: a versioned, chunked, deduplicated, encrypted filesystem.
#[derive(Debug, Parser)]
#[command(name = "monofs", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository in directory REPO.
    Init(InitArgs),
    /// Record a revision of the working tree, or of a directory with --from.
    Commit(CommitArgs),
    /// List revisions, newest first.
    #[command(visible_alias = "rev")]
    Log(LogArgs),
    /// Create, move, list or delete tags.
    Tag(TagArgs),
    /// Show what changed between two revisions (or a revision and the working tree).
    Diff(DiffArgs),
    /// Move the working tree to a revision, or write a revision into a directory.
    Checkout(CheckoutArgs),
    /// Delete objects no revision, tag or working tree refers to.
    Gc(RepoArg),
    /// Verify every object; name each damaged one and the paths using it.
    Fsck(FsckArgs),
    /// Show logical and stored sizes, dedup and compression ratios.
    Stats(StatsArgs),
    /// Mount the working tree (or a revision, read-only) as a drive.
    Mount(MountArgs),
    /// Unmount a monofs mount; the mount process flushes and exits.
    Detach(DetachArgs),
    /// Mount a throwaway repository until Ctrl-C, then remove it.
    Tmp(TmpArgs),
    /// Serve the working tree over NFSv3, or the repository over HTTP for clone and sync.
    Serve(ServeArgs),
    /// Copy a repository (path or http(s):// URL) with every revision, tag and working tree.
    Clone(CloneArgs),
    /// Send revisions and tags another replica lacks (or fetch them with --pull).
    Sync(SyncArgs),
    /// Name other replicas: add, list, remove.
    Remote(RemoteArgs),
}

impl Command {
    /// The repository a command works on, when another process may be
    /// serving it (commands that create or mount one are not forwarded).
    pub fn served_repo(&self) -> Option<&Path> {
        Some(match self {
            Command::Commit(a) => &a.repo,
            Command::Log(a) => &a.repo,
            Command::Tag(a) => &a.repo,
            Command::Diff(a) => &a.repo,
            Command::Checkout(a) => &a.repo,
            Command::Gc(a) => &a.repo,
            Command::Fsck(a) => &a.repo,
            Command::Stats(a) => &a.repo,
            Command::Init(_)
            | Command::Mount(_)
            | Command::Detach(_)
            | Command::Tmp(_)
            | Command::Serve(_)
            | Command::Clone(_)
            | Command::Sync(_)
            | Command::Remote(_) => {
                return None;
            }
        })
    }

    /// Makes relative paths absolute against `cwd`, for a command that runs
    /// in another process than the one that parsed it.
    pub fn absolutize(&mut self, cwd: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        match self {
            Command::Commit(a) => {
                fix(&mut a.repo);
                if let Some(from) = &mut a.from {
                    fix(from);
                }
            }
            Command::Checkout(a) => {
                fix(&mut a.repo);
                if let Some(to) = &mut a.to {
                    fix(to);
                }
            }
            Command::Log(a) => fix(&mut a.repo),
            Command::Tag(a) => fix(&mut a.repo),
            Command::Diff(a) => fix(&mut a.repo),
            Command::Gc(a) => fix(&mut a.repo),
            Command::Fsck(a) => fix(&mut a.repo),
            Command::Stats(a) => fix(&mut a.repo),
            Command::Init(a) => fix(&mut a.repo),
            Command::Mount(a) => {
                fix(&mut a.repo);
                fix(&mut a.mountpoint);
            }
            Command::Detach(a) => fix(&mut a.mountpoint),
            Command::Serve(a) => fix(&mut a.repo),
            Command::Clone(a) => fix(&mut a.dst),
            Command::Sync(a) => fix(&mut a.repo),
            Command::Remote(a) => match &mut a.action {
                RemoteAction::Add { repo, .. }
                | RemoteAction::List { repo, .. }
                | RemoteAction::Remove { repo, .. } => fix(repo),
            },
            Command::Tmp(a) => {
                if let Some(m) = &mut a.mountpoint {
                    fix(m);
                }
            }
        }
    }
}

/// The repository argument alone.
#[derive(Debug, Args)]
pub struct RepoArg {
    /// Repository directory.
    pub repo: PathBuf,
}

/// `monofs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the repository in (created if missing; must be empty).
    pub repo: PathBuf,
    /// Encrypt everything with a key wrapped by a passphrase (MONOFS_PASSPHRASE or a prompt).
    #[arg(long)]
    pub encrypt: bool,
}

/// `monofs commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Snapshot this directory instead of the working tree.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// The revision message.
    #[arg(short, long)]
    pub message: String,
    /// Author recorded in the revision (default: USER@hostname).
    #[arg(long)]
    pub author: Option<String>,
    /// With --from: replace uncommitted changes of the working tree (made
    /// through a mount, say) instead of refusing.
    #[arg(long, requires = "from")]
    pub force: bool,
    /// Print a JSON summary instead of the revision id.
    #[arg(long)]
    pub json: bool,
}

/// `monofs log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Every revision ever made, not only those reachable from HEAD.
    #[arg(long)]
    pub all: bool,
    /// Show at most N revisions.
    #[arg(short = 'n', long, value_name = "N")]
    pub max_count: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monofs tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Tag to create (or move with --force).
    #[arg(conflicts_with_all = ["list", "delete"])]
    pub name: Option<String>,
    /// Revision to tag (default HEAD).
    #[arg(requires = "name")]
    pub rev: Option<String>,
    /// List tags (the default without NAME).
    #[arg(short, long)]
    pub list: bool,
    /// Delete this tag (the revision stays).
    #[arg(short, long, value_name = "NAME")]
    pub delete: Option<String>,
    /// Move an existing tag.
    #[arg(short, long)]
    pub force: bool,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monofs diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Old revision.
    pub rev_a: String,
    /// New revision (default: the working tree).
    pub rev_b: Option<String>,
    /// Per-file size changes and a summary line.
    #[arg(long, conflicts_with = "json")]
    pub stat: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monofs checkout`.
#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Revision to check out.
    pub rev: String,
    /// Write the revision into this directory instead of moving the working tree.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Discard uncommitted changes, or write into a non-empty DIR.
    #[arg(short, long)]
    pub force: bool,
}

/// `monofs fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monofs stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monofs mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Mount this revision read-only instead of the working tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Return once mounted, leaving the mount in the background (log in REPO/mount.log).
    #[arg(long)]
    pub daemon: bool,
    /// Mount options, comma-separated: allow_other, allow_root, ro, noatime, ...
    #[arg(short = 'o', value_name = "OPTIONS", value_delimiter = ',')]
    pub options: Vec<String>,
    #[command(flatten)]
    pub timers: Timers,
    /// Mount over NFSv3 instead of FUSE: serve on ADDR (IP:PORT) and run mount -t nfs.
    #[arg(long, value_name = "ADDR")]
    pub nfs: Option<String>,
}

/// `monofs serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// Serve over NFSv3 on ADDR (IP:PORT; port 0 picks one and prints it). Without ADDR:
    /// 127.0.0.1 on a free port. Other addresses get a warning: NFSv3 has no authentication.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub nfs: Option<String>,
    /// Serve this revision read-only instead of the working tree (NFS).
    #[arg(long, value_name = "REV", conflicts_with = "http")]
    pub rev: Option<String>,
    /// Serve objects and refs over HTTP on ADDR (IP:PORT; default 127.0.0.1:7420) for clone and
    /// sync. Needs no passphrase: encrypted objects are served sealed.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:7420",
        conflicts_with_all = ["nfs", "autocommit", "flush_every"]
    )]
    pub http: Option<String>,
    /// Bearer token clients must send: read from FILE, or a new one written there (mode 0600).
    /// Default: REPO/http-token.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["http", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Send objects to each client at most RATE bytes per second (suffix K, M or G for KiB,
    /// MiB, GiB), like rsync's --bwlimit.
    #[arg(long, value_name = "RATE", requires = "http", value_parser = parse_rate)]
    pub bwlimit: Option<u64>,
    #[command(flatten)]
    pub timers: Timers,
}

/// When a served tree (`mount`, `tmp`, `serve --nfs`) stores edits and
/// commits them.
#[derive(Debug, Clone, Copy, Args)]
pub struct Timers {
    /// Commit the working tree this often when it changed (e.g. 5m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub autocommit: Option<std::time::Duration>,
    /// Store edits in the repository at least this often (like ext4's commit=); fsync, and a
    /// close after writing, store them sooner.
    #[arg(long, value_name = "DURATION", value_parser = flush_interval, default_value = "2s")]
    pub flush_every: std::time::Duration,
}

/// A byte rate: a number with an optional K, M or G (binary) suffix.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("'{s}' is not a rate such as 500K or 20M"))?;
    n.checked_shl(shift).filter(|v| *v > 0 && v >> shift == n).ok_or_else(|| format!("'{s}': rate out of range"))
}

/// How a client reaches a server.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Read the server's access token from FILE (default: the MONOFS_TOKEN variable).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this PEM certificate (a self-signed server) besides the system's.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// `monofs clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// Repository directory, or http(s)://HOST:PORT of a `monofs serve --http`.
    pub src: String,
    /// New repository directory (absent or empty; an unfinished clone of SRC is resumed).
    pub dst: PathBuf,
    /// Server access.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// Replication modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// Send what the other side lacks and fast-forward its refs.
    Backup,
    /// Replicate through a Raft cluster (not available yet).
    Raft,
    /// Merge divergent replicas (not available yet).
    Crdt,
}

/// `monofs sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Repository directory.
    pub repo: PathBuf,
    /// The other replica: a directory, an http(s):// URL or a remote name.
    pub remote: String,
    /// Replication mode.
    #[arg(long, value_enum, default_value = "backup")]
    pub mode: SyncMode,
    /// Fetch from REMOTE into REPO instead of sending.
    #[arg(long)]
    pub pull: bool,
    /// Server access.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// `monofs remote`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RemoteAction,
}

/// `monofs remote` actions.
#[derive(Debug, Subcommand)]
pub enum RemoteAction {
    /// Name a replica (a directory or an http(s):// URL).
    Add {
        /// Repository directory.
        repo: PathBuf,
        /// The name.
        name: String,
        /// Directory or URL.
        url: String,
        /// Replace an existing remote of that name.
        #[arg(short, long)]
        force: bool,
        /// Read this server's access token from FILE when syncing with it (the file's path is
        /// stored, not the token; --token-file on `sync` still wins).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Trust this PEM certificate for this server.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
    },
    /// List named replicas.
    List {
        /// Repository directory.
        repo: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget a named replica.
    Remove {
        /// Repository directory.
        repo: PathBuf,
        /// The name.
        name: String,
    },
}

/// `monofs detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Detach even when busy (lazy unmount: gone once the last user leaves).
    #[arg(short, long)]
    pub force: bool,
}

/// `monofs tmp`.
#[derive(Debug, Args)]
pub struct TmpArgs {
    /// Where to mount (default: a new directory under /tmp, printed).
    pub mountpoint: Option<PathBuf>,
    #[command(flatten)]
    pub timers: Timers,
}

/// A `--flush-every` value: a duration of at least 100 ms (a flusher with
/// no pause would hold the tree's lock all the time).
fn flush_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}
