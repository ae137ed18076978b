//! One sandbox from start to nothing left: the image's tree becomes a new
//! copy-on-write working tree, a runtime runs the command on it, and every
//! resource made for it (working tree, mount, cgroup, network, state
//! directory) is released when the command ends, fails to start, or is
//! interrupted. `--keep` turns the tree into a revision first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monofs::object::Revision;
use monofs::vfs::{Tree, Vfs};
use monofs::{ObjectId, Repository};
use monofs_overlay::ImageStore;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

use crate::cgroup::{Cgroup, Layout};
use crate::error::{Error, Result};
use crate::namespace::NamespaceRuntime;
use crate::net::Network;
use crate::runtime::{Instance, Runtime, Signaller, Start};
use crate::spec::{self, GivenFile, IdRange, Limits, RunSpec, Scope, Volume};
use crate::state::{self, Process, Record, Slot};
use crate::tty::Pty;

/// Ref prefix of kept sandboxes: `sandboxes/ID` is a revision whose parent
/// is the image's revision.
pub const KEPT_PREFIX: &str = "sandboxes/";

/// Time between SIGTERM and SIGKILL when a sandbox is stopped or times out.
pub const GRACE: Duration = Duration::from_secs(10);

/// Status reported for a sandbox stopped by `--timeout` (as timeout(1)).
pub const EXIT_TIMEOUT: i32 = 124;

/// How the sandbox is isolated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Linux namespaces and cgroups.
    #[default]
    Namespace,
    /// A virtual machine.
    Microvm,
}

impl Isolation {
    /// Parses `namespace|microvm`.
    pub fn parse(s: &str) -> Result<Isolation> {
        match s {
            "namespace" => Ok(Isolation::Namespace),
            "microvm" => Ok(Isolation::Microvm),
            _ => Err(Error::BadOption {
                option: "--isolation".into(),
                value: s.into(),
                why: "expected namespace or microvm".into(),
            }),
        }
    }

    fn runtime(self, opts: &Options) -> Result<Box<dyn Runtime>> {
        match self {
            Isolation::Namespace => Ok(Box::new(NamespaceRuntime)),
            Isolation::Microvm => Ok(Box::new(crate::microvm::MicrovmRuntime::new(opts))),
        }
    }
}

/// Everything `monocore tmp` takes.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Image name (must be in the store).
    pub image: String,
    /// Command replacing the image's `Cmd` (empty: the image's).
    pub command: Vec<String>,
    /// `-e` entries.
    pub env: Vec<String>,
    /// `--env-file` files, applied before `-e`.
    pub env_files: Vec<PathBuf>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-v`.
    pub volumes: Vec<Volume>,
    /// `--scope`.
    pub scope: Scope,
    /// `--memory`, `--cpus`, `--pids`.
    pub limits: Limits,
    /// `--isolation`.
    pub isolation: Isolation,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `-t`.
    pub tty: bool,
    /// `--keep`.
    pub keep: bool,
    /// The system-call filter (off: `--security-opt seccomp=unconfined`).
    pub seccomp: bool,
}

/// Why the sandbox ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The command exited (or was killed by a signal it got).
    Exited,
    /// `--timeout` passed.
    TimedOut,
    /// The memory limit was hit and the kernel killed the command.
    OutOfMemory,
}

/// The result of [`run`].
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Sandbox id.
    pub id: String,
    /// Shell-style status: the exit code, 128+N when killed by signal N,
    /// [`EXIT_TIMEOUT`] on timeout.
    pub status: i32,
    /// Why it ended.
    pub ending: Ending,
    /// The revision `--keep` made.
    pub kept: Option<ObjectId>,
    /// Most memory the sandbox used (when cgroups account it).
    pub memory_peak: Option<u64>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Setup(format!("random id: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Releases what was made for a sandbox, in reverse order, whatever
/// happened; `run` disarms nothing, so an early return cleans up too.
struct Teardown {
    home: PathBuf,
    record: Record,
    cgroup: Option<Cgroup>,
    network: Option<Network>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(net) = &self.network {
            net.detach();
        }
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.remove()
        {
            tracing::warn!("{e}");
        }
        if let Err(e) = crate::namespace::release_run_dir(&self.record.id) {
            tracing::warn!("{e}");
        }
        if let Err(e) = self.record.remove(&self.home) {
            tracing::warn!("{e}");
        }
    }
}

/// Forwards the supervisor's signals to the sandbox's process once there
/// is one (before that, those asking to stop cancel the start). A third
/// SIGINT kills, as Docker's third Ctrl-C does. Signals the supervisor was started ignoring
/// are not forwarded (`nohup monocore ...` keeps its sandbox through a
/// hangup), as `docker run` forwards only what it receives; the command
/// itself starts with every signal at its default action.
struct Relay {
    target: Arc<Mutex<Option<Signaller>>>,
    cancelled: Arc<AtomicBool>,
}

impl Relay {
    /// Blocks the relayed signals in this thread (and so in every thread it
    /// starts later) and starts the relaying thread.
    fn start(pty: Arc<OnceLock<Pty>>) -> Result<Relay> {
        let mut set = SigSet::empty();
        for s in crate::init::FORWARDED {
            set.add(s);
        }
        let ignored: Vec<Signal> = crate::init::FORWARDED.into_iter().filter(|s| crate::sys::ignored(*s)).collect();
        set.thread_block().map_err(|e| Error::sys("blocking signals", e))?;
        let target: Arc<Mutex<Option<Signaller>>> = Arc::default();
        let cancelled = Arc::new(AtomicBool::new(false));
        let (t, c) = (target.clone(), cancelled.clone());
        std::thread::spawn(move || {
            let mut interrupts = 0;
            while let Ok(sig) = set.wait() {
                if ignored.contains(&sig) {
                    continue;
                }
                // A local terminal is resized here; otherwise the runtime
                // gets the signal (a microVM passes the size on).
                if sig == Signal::SIGWINCH && pty.get().is_some_and(Pty::resize) {
                    continue;
                }
                let Some(send) = t.lock().ok().and_then(|t| t.clone()) else {
                    // Only a request to stop gives up starting; the others
                    // (a resize, SIGCONT after a stop) have no one to go to.
                    if matches!(sig, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT) {
                        c.store(true, Ordering::SeqCst);
                    }
                    continue;
                };
                interrupts += usize::from(sig == Signal::SIGINT);
                let sig = if interrupts >= 3 { Signal::SIGKILL } else { sig };
                send(sig);
            }
        });
        Ok(Relay { target, cancelled })
    }
}

/// Stops the command `send` signals after `after` unless `done` fires
/// first: SIGTERM, then SIGKILL after [`GRACE`].
fn arm_timeout(send: Signaller, after: Duration, fired: Arc<AtomicBool>) -> mpsc::Sender<()> {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if wait.recv_timeout(after) != Err(mpsc::RecvTimeoutError::Timeout) {
            return;
        }
        fired.store(true, Ordering::SeqCst);
        send(Signal::SIGTERM);
        if wait.recv_timeout(GRACE) == Err(mpsc::RecvTimeoutError::Timeout) {
            send(Signal::SIGKILL);
        }
    });
    done
}

/// Fails with a clear reason when this host cannot run `opts` (no root,
/// no FUSE, no `nft`, no microVM runtime): before anything is made.
pub fn preflight(opts: &Options) -> Result<Box<dyn Runtime>> {
    let runtime = opts.isolation.runtime(opts)?;
    runtime.check()?;
    if opts.scope != Scope::None {
        Network::check()?;
    }
    Ok(runtime)
}

/// Runs `opts.command` (or the image's) in a new sandbox of `opts.image`,
/// which must be in `store`; returns once the sandbox is gone.
pub fn run(store: ImageStore, opts: &Options) -> Result<Outcome> {
    let runtime = preflight(opts)?;
    // Joining a cgroup costs the first process an RCU grace period (about
    // 10 ms on cgroup v1), more than all the rest of a start: a sandbox gets
    // one only when it has limits. Without, its PID namespace still takes
    // every process down with it.
    let layout = if opts.limits.any() { Some(Layout::detect()?) } else { None };
    let pty = Arc::new(OnceLock::new());
    let relay = Relay::start(pty.clone())?;

    let home = store.home().to_owned();
    let image = store.image(&opts.image)?;
    let config = &image.record.config;
    let argv = spec::command_line(config, &opts.command)?;
    let mut overrides = Vec::new();
    for f in &opts.env_files {
        overrides.extend(spec::read_env_file(f)?);
    }
    overrides.extend(opts.env.iter().cloned());
    let id = random_id()?;
    let hostname = id[..12].to_owned();
    let env = spec::environment(config, &overrides, &hostname, opts.tty)?;
    let repo = Arc::new(store.into_repo());
    let supervisor = Process::current().ok_or_else(|| Error::Setup("cannot read /proc/self/stat".into()))?;
    let claim = Slot::claim(supervisor)?;
    let slot = claim.number();
    let record = Record {
        id: id.clone(),
        image: opts.image.clone(),
        command: argv.clone(),
        created: now_secs(),
        isolation: runtime.name().into(),
        scope: opts.scope,
        slot,
        supervisor,
        init: None,
    };
    record.create(&home)?;
    let mut teardown = Teardown { home: home.clone(), record, cgroup: None, network: None };
    if let Some(layout) = &layout {
        teardown.cgroup = Some(Cgroup::create(layout, &id, &opts.limits)?);
    }
    let mut files = Vec::new();
    if opts.scope != Scope::None {
        files.push(GivenFile { path: "/etc/resolv.conf".into(), contents: Network::resolv_conf(), host: None });
        teardown.network = Some(Network::new(&id, slot, opts.scope));
    }
    let spec = RunSpec {
        argv,
        env,
        workdir: opts
            .workdir
            .clone()
            .or_else(|| config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: opts.user.clone().or_else(|| config.user.clone()).unwrap_or_default(),
        hostname,
        tty: opts.tty,
        volumes: crate::spec::Volume::arrange(opts.volumes.clone())?,
        scope: opts.scope,
        ids: IdRange::for_slot(slot),
        rootfs: PathBuf::new(),
        files,
        seccomp: opts.seccomp,
    };
    // The image's tree, writable, referred to by nothing: copy-on-write
    // for free, and nothing to delete afterwards unless it is kept.
    let vfs = Arc::new(Vfs::serve(repo.clone(), Tree::Scratch(image.root))?);
    // Written files are held by this process, outside the sandbox's cgroup,
    // until stored: a quarter of its memory limit at most.
    if let Some(memory) = opts.limits.memory {
        vfs.limit_dirty(memory / 4);
        // And its tree's nodes, as many again as its memory at about 2 KiB
        // each: 40,000 symlinks took 200 MB here with a 16 MiB limit.
        vfs.limit_growth(memory / 2048).map_err(|e| Error::Setup(e.to_string()))?;
    }
    if relay.cancelled.load(Ordering::SeqCst) {
        return Err(Error::Setup("interrupted".into()));
    }
    // Without -t, namespaces get pipes of their own (see `stdio`); a
    // microVM's console is its runtime's to relay.
    let (stdio, copying) = if opts.tty || opts.isolation != Isolation::Namespace {
        ([Stdio::inherit(), Stdio::inherit(), Stdio::inherit()], None)
    } else {
        let (stdio, copying) = crate::stdio::relay()?;
        (stdio, Some(copying))
    };
    let mut instance = runtime.start(Start {
        id: &id,
        spec: &spec,
        vfs: vfs.clone(),
        cgroup: teardown.cgroup.as_ref(),
        network: teardown.network.as_ref(),
        stdio,
        file_cache: &home.join("cache").join("files"),
    })?;
    // With -t the command's streams are a terminal its init makes; errors
    // before that still reach ours.
    let output = if opts.tty {
        match instance.terminal() {
            Ok(master) => {
                let p = pty.get_or_init(|| Pty::new(master));
                p.raw();
                Some(p.relay()?)
            }
            Err(e) => {
                tracing::debug!("{e}");
                None
            }
        }
    } else {
        None
    };
    let pid = instance.pid();
    let send = instance.signaller();
    if let Ok(mut t) = relay.target.lock() {
        *t = Some(send.clone());
    }
    if relay.cancelled.load(Ordering::SeqCst) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    teardown.record.init = Process::of(pid);
    teardown.record.save(&home)?;
    let timed_out = Arc::new(AtomicBool::new(false));
    let timer = opts.timeout.map(|t| arm_timeout(send, t, timed_out.clone()));
    let waited = instance.wait();
    if let Ok(mut t) = relay.target.lock() {
        *t = None;
    }
    drop(timer);
    if let Some(out) = output {
        let _ = out.join();
    }
    if let Some(copying) = copying {
        copying.finish();
    }
    // Restores our terminal's mode.
    drop(pty);
    let mut status = waited?;
    let oom = teardown.cgroup.as_ref().map_or(0, Cgroup::oom_kills) > 0;
    let ending = if timed_out.load(Ordering::SeqCst) {
        status = EXIT_TIMEOUT;
        Ending::TimedOut
    } else if oom && status == 128 + Signal::SIGKILL as i32 {
        Ending::OutOfMemory
    } else {
        Ending::Exited
    };
    let memory_peak = teardown.cgroup.as_ref().and_then(Cgroup::memory_peak);
    close(instance)?;
    let kept = if opts.keep { Some(keep(&repo, &vfs, &teardown.record, &image.revision, opts)?) } else { None };
    drop(teardown);
    drop(claim);
    Ok(Outcome { id, status, ending, kept, memory_peak })
}

fn close(instance: Box<dyn Instance>) -> Result<()> {
    instance.close()
}

/// Stores the sandbox's tree as revision `sandboxes/ID` on top of the image's.
fn keep(repo: &Repository, vfs: &Vfs, record: &Record, image_rev: &ObjectId, opts: &Options) -> Result<ObjectId> {
    let base = repo.read_revision(image_rev)?;
    let mut made = vec!["/proc".to_owned(), "/sys".to_owned(), "/dev".to_owned()];
    made.extend(opts.volumes.iter().map(|v| v.guest.clone()));
    if opts.scope != Scope::None {
        made.push("/etc/resolv.conf".into());
    }
    for path in made {
        // The mount point, then the directories made to hold it, deepest first.
        let names: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for depth in (1..=names.len()).rev() {
            drop_mount_point(repo, vfs, &base.root, &names[..depth].join("/"))?;
        }
    }
    let root = vfs.flush()?;
    let rev = Revision {
        root,
        parents: vec![*image_rev],
        time: monofs::object::Timestamp::now(),
        author: "monocore".into(),
        message: format!("sandbox {} of {}: {}", record.id, opts.image, record.command.join(" ")),
        size: repo.read_dir(&root)?.size,
        root_meta: base.root_meta,
    };
    let mut tx = repo.begin()?;
    let id = repo.write_revision(tx.as_mut(), &rev)?;
    repo.set_ref(tx.as_mut(), &format!("{KEPT_PREFIX}{}", record.id), &id)?;
    tx.commit().map_err(monofs::Error::from)?;
    Ok(id)
}

/// Removes `path` from the sandbox's tree if the runtime made it only to
/// mount something there: absent from the image, and an empty directory or
/// file now. What the command itself made stays.
fn drop_mount_point(repo: &Repository, vfs: &Vfs, image_root: &ObjectId, path: &str) -> Result<()> {
    use monofs::object::EntryKind;
    use monofs::vfs::{FileKind, ROOT};
    let names: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some((leaf, parents)) = names.split_last() else { return Ok(()) };
    // In the image?
    let mut dir = Some(*image_root);
    for name in parents {
        dir = match dir {
            Some(id) => repo.read_dir(&id)?.get(name.as_bytes()).and_then(|e| match &e.kind {
                EntryKind::Dir { id } => Some(*id),
                _ => None,
            }),
            None => None,
        };
    }
    if let Some(id) = dir
        && repo.read_dir(&id)?.get(leaf.as_bytes()).is_some()
    {
        return Ok(());
    }
    // In the sandbox's tree, and empty?
    let mut parent = ROOT;
    for name in parents {
        match vfs.resolve(parent, name.as_bytes()) {
            Ok(a) => parent = a.ino,
            Err(_) => return Ok(()),
        }
    }
    let Ok(attr) = vfs.resolve(parent, leaf.as_bytes()) else { return Ok(()) };
    let removed = match attr.kind {
        FileKind::Dir if vfs.list(attr.ino, 0).is_ok_and(|(e, _)| e.len() == 2) => vfs.rmdir(parent, leaf.as_bytes()),
        FileKind::File if attr.size == 0 => vfs.unlink(parent, leaf.as_bytes()),
        _ => Ok(()),
    };
    removed.map_err(|e| Error::Setup(format!("tidying mount point {path}: {e}")))
}

/// What [`clean`] released.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Cleaned {
    /// Sandboxes whose leftovers were released.
    pub sandboxes: Vec<String>,
}

/// Releases what sandboxes whose supervisor died left behind: processes,
/// mounts, cgroups, network, state directories (slots free themselves: a
/// claim whose owner is dead is taken over).
pub fn clean(home: &Path) -> Result<Cleaned> {
    let mut cleaned = Cleaned::default();
    let (records, orphans) = state::list(home);
    let layout = Layout::detect().ok();
    for r in records.iter().filter(|r| !r.running()) {
        release(home, r, layout.as_ref())?;
        cleaned.sandboxes.push(r.id.clone());
    }
    for id in orphans {
        crate::namespace::release_run_dir(&id)?;
        if let Some(l) = &layout {
            Cgroup::of(l, &id).remove()?;
        }
        let dir = state::sandboxes_dir(home).join(&id);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        cleaned.sandboxes.push(id);
    }
    // Only this home's sandboxes: another home's running ones are not ours
    // to judge. Slot claims and scratch directories say for themselves
    // whether their process is gone.
    crate::state::Slot::sweep();
    monofs_overlay::source::sweep_abandoned(&monofs_overlay::store::scratch_dir_of(home));
    Ok(cleaned)
}

fn release(home: &Path, r: &Record, layout: Option<&Layout>) -> Result<()> {
    if let Some(init) = r.init.filter(Process::alive) {
        let _ = kill(Pid::from_raw(init.pid as i32), Signal::SIGKILL);
    }
    if let Some(l) = layout {
        Cgroup::of(l, &r.id).remove()?;
    }
    if r.scope != Scope::None {
        Network::new(&r.id, r.slot, r.scope).detach();
    }
    crate::namespace::release_run_dir(&r.id)?;
    r.remove(home)
}

/// Stops sandbox `id` (an unambiguous prefix): SIGTERM to its command, then
/// SIGKILL after `grace`; returns once its supervisor has cleaned up.
pub fn stop(home: &Path, id: &str, grace: Duration) -> Result<String> {
    let r = state::find(home, id)?;
    if !r.running() {
        release(home, &r, Layout::detect().ok().as_ref())?;
        return Ok(r.id);
    }
    let signal = |p: Process, s: Signal| {
        if p.alive() {
            let _ = kill(Pid::from_raw(p.pid as i32), s);
        }
    };
    let gone = |limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if !r.supervisor.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        !r.supervisor.alive()
    };
    signal(r.supervisor, Signal::SIGTERM);
    if !gone(grace) {
        if let Some(init) = r.init {
            signal(init, Signal::SIGKILL);
        }
        if !gone(Duration::from_secs(5)) {
            signal(r.supervisor, Signal::SIGKILL);
            gone(Duration::from_secs(2));
            release(home, &r, Layout::detect().ok().as_ref())?;
        }
    }
    Ok(r.id)
}

/// A running sandbox, for `monocore ps`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    /// Its record.
    #[serde(flatten)]
    pub record: Record,
    /// `running`, or `dead` when its supervisor is gone (see `monocore clean`).
    pub status: &'static str,
    /// Memory its processes use now: its memory cgroup's usage when it has
    /// one (page cache included), else its processes' resident memory.
    pub memory: Option<u64>,
}

/// Every sandbox under `home`.
pub fn list(home: &Path) -> Vec<Listed> {
    let layout = Layout::detect().ok();
    state::list(home)
        .0
        .into_iter()
        .map(|record| {
            let running = record.running();
            let memory = running
                .then(|| {
                    layout
                        .as_ref()
                        .and_then(|l| Cgroup::of(l, &record.id).memory_current())
                        .or_else(|| record.init.filter(Process::alive).and_then(|init| state::tree_resident(init.pid)))
                })
                .flatten();
            Listed { status: if running { "running" } else { "dead" }, memory, record }
        })
        .collect()
}
