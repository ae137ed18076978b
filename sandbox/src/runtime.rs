//! The one interface every isolation level implements; `monocore tmp
//! --isolation` picks the implementation, the rest of the crate does not care.

use std::process::Stdio;
use std::sync::Arc;

use monofs::vfs::Vfs;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::error::Result;
use crate::net::Network;
use crate::spec::RunSpec;

/// What a runtime gets to start one sandbox.
pub struct Start<'a> {
    /// Sandbox id.
    pub id: &'a str,
    /// The command and its view of the host.
    pub spec: &'a RunSpec,
    /// The sandbox's copy-on-write root file system.
    pub vfs: Arc<Vfs>,
    /// Limits and accounting, when the host has cgroups.
    pub cgroup: Option<&'a Cgroup>,
    /// The network to attach for scopes other than `none`.
    pub network: Option<&'a Network>,
    /// Standard input, output and error of the command.
    pub stdio: [Stdio; 3],
    /// Where whole-file copies of the image's files may be kept for fast
    /// reads shared by sandboxes (`MONOCORE_HOME/cache/files`).
    pub file_cache: &'a std::path::Path,
}

/// Delivers a signal to a sandbox's command; shared with the threads that
/// relay the supervisor's signals and run `--timeout`.
pub type Signaller = Arc<dyn Fn(Signal) + Send + Sync>;

/// A running sandbox.
pub trait Instance: Send {
    /// Host pid of the sandbox's init: recorded for `monocore stop` and
    /// `clean`, which SIGKILL it.
    fn pid(&self) -> u32;
    /// How signals for the command are delivered: by default `kill` of
    /// [`Instance::pid`] (the namespace runtime's init forwards them).
    fn signaller(&self) -> Signaller {
        let pid = Pid::from_raw(self.pid() as i32);
        Arc::new(move |sig| {
            let _ = kill(pid, sig);
        })
    }
    /// With `-t`: waits for the master side of the command's terminal.
    fn terminal(&mut self) -> Result<std::os::fd::OwnedFd>;
    /// Waits until the command ends; its shell-style status (128+N when
    /// killed by signal N).
    fn wait(&mut self) -> Result<i32>;
    /// Releases what the runtime set up (mounts, devices); after `wait`.
    fn close(self: Box<Self>) -> Result<()>;
}

/// An isolation level.
pub trait Runtime {
    /// `namespace`, `microvm`.
    fn name(&self) -> &'static str;
    /// Fails with a clear reason when this host cannot run it.
    fn check(&self) -> Result<()>;
    /// Starts `start.spec`.
    fn start(&self, start: Start<'_>) -> Result<Box<dyn Instance>>;
}
