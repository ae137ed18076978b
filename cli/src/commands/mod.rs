//! One module per subcommand; each opens the repository, calls the library
//! and writes its output through a [`Ctx`], so the same code runs in this
//! process or, for a mounted repository, inside the mount process.

/// A line on the command's standard output.
macro_rules! say {
    ($ctx:expr, $($arg:tt)*) => {{
        let _ = writeln!($ctx.out, $($arg)*);
    }};
}

/// A line on the command's standard error.
macro_rules! note {
    ($ctx:expr, $($arg:tt)*) => {{
        let _ = writeln!($ctx.err, $($arg)*);
    }};
}

mod checkout;
mod commit;
mod diff;
mod fsck;
mod init;
mod log;
mod maintenance;
pub mod mount;
mod sync;
mod tag;

use std::ops::Deref;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use monofs::Repository;

use crate::args::Command;
use crate::served::Served;

/// Where a command writes, and the mount it runs inside, if any.
pub struct Ctx<'a> {
    /// Standard output.
    pub out: &'a mut dyn std::io::Write,
    /// Standard error.
    pub err: &'a mut dyn std::io::Write,
    /// Set when the command runs inside the process that mounts the repository.
    pub served: Option<&'a Served>,
}

/// An open repository: owned, or the one a mount holds.
pub enum RepoRef {
    /// Opened by this command.
    Own(Box<Repository>),
    /// The mount's, after it flushed its pending edits.
    Shared(Arc<Repository>),
}

impl Deref for RepoRef {
    type Target = Repository;

    fn deref(&self) -> &Repository {
        match self {
            RepoRef::Own(r) => r,
            RepoRef::Shared(r) => r,
        }
    }
}

impl Ctx<'_> {
    /// Opens REPO (asking for its passphrase only if encrypted), or uses
    /// the mount's handle when running inside it.
    pub fn open(&self, repo: &Path) -> anyhow::Result<RepoRef> {
        if let Some(served) = self.served {
            served.vfs.flush().context("flushing the mounted working tree")?;
        }
        self.open_stored(repo)
    }

    /// [`Ctx::open`] without storing the mount's pending edits first: for
    /// commands that read history or add to it only (log, tag, fsck),
    /// which so keep working while the mount cannot store (a full disk).
    pub fn open_stored(&self, repo: &Path) -> anyhow::Result<RepoRef> {
        self.open_stored_with(repo, Repository::open)
    }

    /// [`Ctx::open_stored`], opening with `open` when no mount serves it.
    pub fn open_stored_with(&self, repo: &Path, open: Opener) -> anyhow::Result<RepoRef> {
        if let Some(served) = self.served {
            return Ok(RepoRef::Shared(served.vfs.repo().clone()));
        }
        Ok(RepoRef::Own(Box::new(open_with(repo, open)?)))
    }

    /// Runs `change`, which moves the working tree of `repo` (a checkout):
    /// through the mount when one serves it, so that the mount shows the
    /// new tree and no flush of the old one undoes the move.
    pub fn move_worktree(
        &self,
        repo: &Repository,
        change: impl FnOnce(&Repository) -> Result<(), monofs::Error>,
    ) -> anyhow::Result<()> {
        match self.served {
            Some(served) => served.switch(change),
            None => Ok(change(repo)?),
        }
    }
}

/// Runs one parsed command.
pub fn run(command: Command, ctx: &mut Ctx<'_>) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(a) => init::run(a, ctx),
        Command::Commit(a) => commit::run(a, ctx),
        Command::Log(a) => log::run(a, ctx),
        Command::Tag(a) => tag::run(a, ctx),
        Command::Diff(a) => diff::run(a, ctx),
        Command::Checkout(a) => checkout::run(a, ctx),
        Command::Gc(a) => maintenance::gc(a, ctx),
        Command::Fsck(a) => fsck::run(a, ctx),
        Command::Stats(a) => maintenance::stats(a, ctx),
        Command::Mount(a) => mount::mount(a),
        Command::Detach(a) => mount::detach(a, ctx),
        Command::Tmp(a) => mount::tmp(a),
        Command::Serve(a) if a.http.is_some() => sync::serve(a),
        Command::Serve(a) => mount::serve_nfs(a),
        Command::Clone(a) => sync::clone(a, ctx),
        Command::Sync(a) => sync::sync(a, ctx),
        Command::Remote(a) => sync::remote(a, ctx),
    }
}

/// How long a command waits for another process to release the
/// repository: long enough for a short command, or for `serve --http`,
/// which keeps it for 2 s after its last request.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens REPO, asking for its passphrase only if it is encrypted; waits up
/// to [`LOCK_WAIT`] while another process holds it.
pub fn open(repo: &Path) -> anyhow::Result<Repository> {
    open_with(repo, Repository::open)
}

/// How a repository is opened: [`Repository::open`] or a variant of it.
pub type Opener = fn(&Path, &mut dyn FnMut() -> std::io::Result<Vec<u8>>) -> Result<Repository, monofs::Error>;

/// [`open`] with `open` in place of [`Repository::open`].
pub fn open_with(repo: &Path, open: Opener) -> anyhow::Result<Repository> {
    let open = || open(repo, &mut || crate::passphrase::existing(repo));
    Ok(monofs::repo::wait_for_lock(LOCK_WAIT, open, |_| Ok::<_, monofs::Error>(()))?)
}
