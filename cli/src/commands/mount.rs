//! `mount`, `detach` and `tmp`: a repository's working tree as a drive.

use std::io::Write as _;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fuser::{MountOption, SessionACL};
use monofs::fuse::FuseFs;
use monofs::repo::RepoLock;
use monofs::vfs::Vfs;
use monofs::{CommitOptions, Repository};
use nix::sys::signal::{SigSet, Signal};

use crate::args::{DetachArgs, MountArgs, ServeArgs, Timers, TmpArgs};
use crate::control;
use crate::served::Served;

/// A file closed with changes is stored this soon after the last flush
/// (or at once, if that was longer ago).
const CLOSE_GAP: Duration = Duration::from_millis(200);

/// A mount table entry.
struct Mounted {
    /// MAJOR:MINOR of the mounted file system.
    device: String,
    source: String,
    fstype: String,
}

/// The entry for `mountpoint` in /proc/self/mountinfo, if mounted.
fn mounted(mountpoint: &Path) -> Option<Mounted> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let target = mountpoint.to_string_lossy();
    info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        (fields.get(4).map(|m| m.replace("\\040", " ")) == Some(target.to_string())).then(|| Mounted {
            device: fields.get(2).unwrap_or(&"").to_string(),
            fstype: fields.get(sep + 1).unwrap_or(&"").to_string(),
            source: fields.get(sep + 2).unwrap_or(&"").to_string(),
        })
    })
}

/// Read-ahead of the mount, in KiB: as large as a FUSE read request may be
/// (`max_read` 1 MiB), so sequential reads come in 1 MiB requests; the
/// kernel's default of 128 KiB makes eight times as many round trips
/// (cold 1 GiB read about 15% slower).
const READ_AHEAD_KB: u32 = 1024;

/// Sets the mount's read-ahead (root only: a sysfs file; otherwise the
/// default stays). Reads /proc rather than stat()ing the mount point, which
/// would wait for the session that has not started yet.
fn read_ahead(mountpoint: &Path) {
    let Some(device) = mounted(mountpoint).map(|m| m.device) else { return };
    let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, READ_AHEAD_KB.to_string()) {
        tracing::debug!("{knob}: {e} (read-ahead stays the default)");
    }
}

/// Whether the path is a FUSE mount whose process is gone.
fn is_stale(mountpoint: &Path) -> bool {
    matches!(std::fs::metadata(mountpoint), Err(e) if e.raw_os_error() == Some(nix::libc::ENOTCONN))
}

fn unmount(mountpoint: &Path, lazy: bool) -> anyhow::Result<()> {
    if nix::unistd::geteuid().is_root() {
        let flags = if lazy { nix::mount::MntFlags::MNT_DETACH } else { nix::mount::MntFlags::empty() };
        nix::mount::umount2(mountpoint, flags).map_err(std::io::Error::from)?;
        return Ok(());
    }
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg(mountpoint).output().context("running fusermount3")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Whether an unmount failed because the mount is in use.
fn is_busy(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) == Some(nix::libc::EBUSY)
        || e.to_string().contains("busy")
}

/// Processes whose cwd, root or open files are below `mountpoint`.
fn holders(mountpoint: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let dir = p.path();
        let mut links: Vec<PathBuf> =
            ["cwd", "root"].iter().filter_map(|l| std::fs::read_link(dir.join(l)).ok()).collect();
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            links.extend(fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()));
        }
        if links.iter().any(|l| l.starts_with(mountpoint)) {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            out.push(format!("{pid} ({})", comm.trim()));
        }
    }
    out
}

fn check_mountpoint(mountpoint: &Path) -> anyhow::Result<()> {
    if is_stale(mountpoint) {
        tracing::warn!("{}: cleaning up a stale mount left by a killed process", mountpoint.display());
        unmount(mountpoint, true)
            .with_context(|| format!("{}: cannot clean up the stale mount", mountpoint.display()))?;
    }
    let md = std::fs::metadata(mountpoint).with_context(|| format!("mount point {}", mountpoint.display()))?;
    anyhow::ensure!(md.is_dir(), "mount point {} is not a directory", mountpoint.display());
    anyhow::ensure!(mounted(mountpoint).is_none(), "{} is already a mount point", mountpoint.display());
    let mut entries = std::fs::read_dir(mountpoint).with_context(|| format!("mount point {}", mountpoint.display()))?;
    anyhow::ensure!(entries.next().is_none(), "mount point {} is not empty", mountpoint.display());
    Ok(())
}

/// Opens the repository to serve, and resolves `rev` when a revision
/// (read-only) rather than the working tree is served.
fn open_tree(path: &Path, rev: Option<&str>) -> anyhow::Result<(Arc<Repository>, Option<monofs::ObjectId>)> {
    let repo = Arc::new(crate::commands::open(path)?);
    let rev = rev.map(|rev| repo.resolve(rev)).transpose()?;
    Ok((repo, rev))
}

/// Re-runs this command in the background and waits until it has mounted.
fn daemonize(a: &MountArgs) -> anyhow::Result<ExitCode> {
    // Its log goes into the repository: it must be one.
    Repository::store_file(&a.repo)?;
    let log_path = a.repo.join("mount.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("{}", log_path.display()))?;
    // What this mount process logs starts here; earlier runs' lines stay.
    let start = log.metadata()?.len();
    let args: Vec<_> = std::env::args_os().skip(1).filter(|a| a != "--daemon").collect();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let mountpoint = std::fs::canonicalize(&a.mountpoint)?;
    for _ in 0..600 {
        if mounted(&mountpoint).is_some() {
            eprintln!("mounted {} on {} (pid {})", a.repo.display(), mountpoint.display(), child.id());
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            // Its own error line (and hint), as the foreground mount prints them.
            let log = std::fs::read(&log_path).unwrap_or_default();
            let ours = String::from_utf8_lossy(log.get(start as usize..).unwrap_or_default());
            let mut lines = ours.lines().skip_while(|l| !l.starts_with("error: "));
            let Some(error) = lines.next() else { bail!("the mount process exited ({status})") };
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{error}");
            if let Some(hint) = lines.next().filter(|l| l.starts_with("hint: ")) {
                let _ = writeln!(err, "{hint}");
            }
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not appear within 30 s", mountpoint.display())
}

/// `monofs mount`.
pub fn mount(a: MountArgs) -> anyhow::Result<ExitCode> {
    check_mountpoint(&a.mountpoint)?;
    if let Some(addr) = &a.nfs {
        return mount_nfs(&a, addr);
    }
    if a.daemon {
        return daemonize(&a);
    }
    let (repo, rev) = open_tree(&a.repo, a.rev.as_deref())?;
    serve(repo, &a.repo, &a.mountpoint, rev, &a.options, a.timers)
}

fn serve(
    repo: Arc<Repository>,
    repo_path: &Path,
    mountpoint: &Path,
    rev: Option<monofs::ObjectId>,
    options: &[String],
    timers: Timers,
) -> anyhow::Result<ExitCode> {
    let read_only = rev.is_some();
    let vfs = Arc::new(Vfs::new(repo.clone(), rev)?);
    let repo_abs = std::fs::canonicalize(repo_path)?;
    let mountpoint = std::fs::canonicalize(mountpoint)?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("monofs:{}", repo_abs.display())),
        MountOption::Subtype("monofs".into()),
        MountOption::DefaultPermissions,
    ];
    if read_only {
        config.mount_options.push(MountOption::RO);
    }
    for o in options {
        match o.as_str() {
            "allow_other" => config.acl = SessionACL::All,
            "allow_root" => config.acl = SessionACL::RootAndOwner,
            "ro" => config.mount_options.push(MountOption::RO),
            "noatime" => config.mount_options.push(MountOption::NoAtime),
            "nosuid" => config.mount_options.push(MountOption::NoSuid),
            "nodev" => config.mount_options.push(MountOption::NoDev),
            "noexec" => config.mount_options.push(MountOption::NoExec),
            "default_permissions" | "rw" | "" => {}
            other => bail!("unknown mount option '{other}'"),
        }
    }
    config.n_threads = Some(4);

    // Signals go to one thread that unmounts; the session then ends.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;

    let session = fuser::Session::new(FuseFs::new(vfs.clone()), &mountpoint, &config)
        .with_context(|| format!("mounting on {}", mountpoint.display()))?;
    let served = start_services(&vfs, repo_path, timers)?;
    if let Ok(mut n) = served.notifier.lock() {
        *n = Some(session.notifier());
    }
    let socket = control::socket_path(repo_path);

    let (mp, flusher) = (mountpoint.clone(), vfs.clone());
    std::thread::spawn(move || {
        let _ = stop_signal(&signals, &flusher);
        tracing::info!("unmounting");
        if unmount(&mp, false).is_err() {
            let _ = unmount(&mp, true);
        }
    });

    read_ahead(&mountpoint);
    say(format_args!("mounted {} on {}", repo_path.display(), mountpoint.display()));
    let result = session.run();
    let _ = std::fs::remove_file(&socket);
    let flushed = vfs.flush();
    // Other threads hold the repository to the end: closed here, its store
    // needs no recovery (a read of the whole file) at the next open.
    vfs.repo().store().close();
    result.with_context(|| format!("serving {}", mountpoint.display()))?;
    flushed.context("final flush")?;
    Ok(ExitCode::SUCCESS)
}

/// Starts what every served tree needs: the control socket (commands from
/// other processes run here) and the flusher (edits reach the repository
/// within `flush_every`, or [`CLOSE_GAP`] once their file is closed;
/// `autocommit` makes revisions of them).
fn start_services(vfs: &Arc<Vfs>, repo_path: &Path, timers: Timers) -> anyhow::Result<Arc<Served>> {
    let served = Arc::new(Served { vfs: vfs.clone(), notifier: Mutex::new(None) });
    let socket = control::socket_path(repo_path);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("control socket {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let server = served.clone();
    // Commands run on this thread: give it what a main thread has, and more.
    std::thread::Builder::new()
        .name("control".into())
        .stack_size(monofs::parallel::DEEP_STACK)
        .spawn(move || control::serve(listener, server))?;
    if !vfs.is_read_only() {
        let flusher = vfs.clone();
        std::thread::spawn(move || {
            let (mut flushed, mut committed) = (Instant::now(), Instant::now());
            let mut failing = false;
            loop {
                if failing {
                    // A full disk: retry at the periodic round, not at every close.
                    std::thread::sleep(timers.flush_every);
                } else if flusher.wait_for_closed_changes(timers.flush_every) {
                    // The files closed in a burst (an archive unpacked)
                    // share a flush.
                    std::thread::sleep(CLOSE_GAP.saturating_sub(flushed.elapsed()));
                }
                failing = match flusher.flush() {
                    Ok(_) => false,
                    Err(e) => {
                        tracing::error!("flushing the working tree: {e}");
                        true
                    }
                };
                flushed = Instant::now();
                if let Some(every) = timers.autocommit
                    && committed.elapsed() >= every
                {
                    committed = Instant::now();
                    let opts = CommitOptions {
                        message: "autocommit".into(),
                        author: "monofs@mount".into(),
                        time: None,
                        discard_changes: false,
                    };
                    match flusher.commit(&opts) {
                        Ok(c) => tracing::info!("autocommit {}", c.revision.short(12)),
                        Err(monofs::Error::NothingToCommit) => {}
                        Err(e) => tracing::error!("autocommit: {e}"),
                    }
                }
            }
        });
    }
    Ok(served)
}

/// A line on stderr from a process that serves a tree: one that cannot be
/// written (its disk full) is dropped, where eprintln! would panic.
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Waits for SIGINT or SIGTERM and stores the pending changes. If they
/// cannot be stored (a full disk), the tree stays served, so that nothing
/// is lost, until they can be at a later signal, or a second signal in a
/// row gives up on them (their error is returned).
fn stop_signal(signals: &SigSet, vfs: &Vfs) -> anyhow::Result<()> {
    let mut refused = false;
    loop {
        let sig = signals.wait()?;
        match vfs.flush() {
            Ok(_) => return Ok(()),
            Err(e) if refused => return Err(e.into()),
            Err(e) => {
                tracing::error!(
                    "{sig:?}: still serving: pending changes could not be stored: {e}; send it again to stop without them"
                );
                refused = true;
            }
        }
    }
}

/// `monofs serve`: the working tree (or a revision) over NFSv3 until
/// SIGINT/SIGTERM.
pub fn serve_nfs(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr = a.nfs.as_deref().context("nothing to serve: pass --nfs ADDR or --http ADDR")?;
    let (repo, rev) = open_tree(&a.repo, a.rev.as_deref())?;
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let vfs = Arc::new(Vfs::new(repo, rev)?);
    start_services(&vfs, &a.repo, a.timers)?;
    let (listener, port) = bind_nfs(addr, vfs.clone())?;
    let _ = writeln!(
        std::io::stdout(),
        "serving {} over NFSv3 on {}:{port} (nfs://{}/?nfsport={port}&mountport={port}&version=3)",
        a.repo.display(),
        host(addr),
        host(addr)
    );
    let socket = control::socket_path(&a.repo);
    let done = vfs.clone();
    std::thread::spawn(move || {
        let stored = stop_signal(&signals, &done);
        let _ = std::fs::remove_file(&socket);
        done.repo().store().close();
        if let Err(e) = stored {
            say(format_args!("error: final flush: {e}"));
            std::process::exit(1);
        }
        std::process::exit(0);
    });
    listener.join().map_err(|_| anyhow::anyhow!("the NFS server thread panicked"))??;
    Ok(ExitCode::SUCCESS)
}

fn host(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// Binds the NFS server on its own thread and runtime; returns the thread
/// and the port it listens on.
fn bind_nfs(addr: &str, vfs: Arc<Vfs>) -> anyhow::Result<(std::thread::JoinHandle<anyhow::Result<()>>, u16)> {
    let ip: std::net::IpAddr = host(addr).parse().with_context(|| format!("bad address '{addr}': use IP:PORT"))?;
    if !ip.is_loopback() {
        tracing::warn!(
            "serving on {addr}: NFSv3 has no authentication of its own; anyone who reaches it can read and write"
        );
        say(format_args!(
            "warning: NFSv3 on {addr} has no authentication: anyone who can reach it can read and write the tree"
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
    // nfsserve's port where only this process reaches it, where it can.
    let net: Arc<dyn monofs::nfs::BackendNet> = match monocore_sandbox::netns::PrivateNet::new() {
        Ok(net) => Arc::new(net),
        Err(e) => {
            tracing::info!("the NFS backend's port is on the host's loopback (no network namespace: {e})");
            Arc::new(monofs::nfs::HostNet)
        }
    };
    let server = runtime
        .block_on(monofs::nfs::NfsServer::bind(addr, vfs, net))
        .with_context(|| format!("binding the NFS server to {addr}"))?;
    let port = server.port();
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        runtime.block_on(server.run())?;
        Ok(())
    });
    Ok((thread, port))
}

/// `monofs mount --nfs`: serve over NFS and mount with the kernel's client.
fn mount_nfs(a: &MountArgs, addr: &str) -> anyhow::Result<ExitCode> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.split_whitespace().last() == Some("nfs")) {
        bail!(
            "this kernel has no NFS client; serve the tree with `monofs serve {} --nfs {addr}` and use a user-space client (libnfs: nfs-ls, nfs-cp)",
            a.repo.display()
        );
    }
    let (repo, rev) = open_tree(&a.repo, a.rev.as_deref())?;
    let vfs = Arc::new(Vfs::new(repo, rev)?);
    start_services(&vfs, &a.repo, a.timers)?;
    let (server, port) = bind_nfs(addr, vfs.clone())?;
    let status = std::process::Command::new("mount")
        .args(["-t", "nfs", "-o"])
        .arg(format!("vers=3,tcp,port={port},mountport={port},nolock"))
        .arg(format!("{}:/", host(addr)))
        .arg(&a.mountpoint)
        .status()
        .context("running mount(8)")?;
    anyhow::ensure!(status.success(), "mount -t nfs failed ({status})");
    eprintln!("mounted {} on {} over NFSv3 (port {port})", a.repo.display(), a.mountpoint.display());
    server.join().map_err(|_| anyhow::anyhow!("the NFS server thread panicked"))??;
    Ok(ExitCode::SUCCESS)
}

/// `monofs detach`.
pub fn detach(a: DetachArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let mountpoint = std::path::absolute(&a.mountpoint)?;
    if is_stale(&mountpoint) {
        unmount(&mountpoint, true)?;
        note!(ctx, "{}: removed a stale mount", mountpoint.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mountpoint = std::fs::canonicalize(&mountpoint).with_context(|| format!("{}", a.mountpoint.display()))?;
    let Some(entry) = mounted(&mountpoint) else { bail!("{} is not mounted", mountpoint.display()) };
    anyhow::ensure!(
        entry.fstype.starts_with("fuse") && entry.source.starts_with("monofs:"),
        "{} is not a monofs mount ({} {})",
        mountpoint.display(),
        entry.source,
        entry.fstype
    );
    let repo = entry.source.strip_prefix("monofs:").map(PathBuf::from);
    let owner = repo
        .as_ref()
        .and_then(|r| std::fs::read_to_string(r.join("lock")).ok())
        .and_then(|p| p.trim().parse::<i32>().ok());
    // Pending edits are stored while the mount stays: if they cannot be
    // (a full disk), unmounting would lose them.
    if !a.force
        && let Some(Err(e)) = repo.as_deref().and_then(control::flush)
    {
        bail!(
            "{} stays mounted: its pending changes could not be stored: {e:#}; fix that and run detach again, or pass --force to detach without them",
            mountpoint.display()
        );
    }
    // Busy with no process holding it: files closed a moment ago whose
    // release the kernel has not finished; that passes within moments.
    let mut tries = 0;
    let unmounted = loop {
        match unmount(&mountpoint, a.force) {
            Err(e) if is_busy(&e) && tries < 20 && holders(&mountpoint).is_empty() => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            result => break result,
        }
    };
    if let Err(e) = unmounted {
        if is_busy(&e) {
            let who = holders(&mountpoint);
            bail!(
                "{} is busy{}; retry when they are done, or pass --force for a lazy unmount",
                mountpoint.display(),
                if who.is_empty() { String::new() } else { format!(": used by {}", who.join(", ")) }
            );
        }
        return Err(e.context(format!("unmounting {}", mountpoint.display())));
    }
    // The mount process flushes and exits; wait until it has let go of the
    // repository's lock (its process may linger as a zombie meanwhile), so
    // that the next command finds the repository free.
    if let (Some(repo), Some(owner)) = (&repo, owner) {
        for _ in 0..600 {
            match monofs::repo::RepoLock::acquire(repo) {
                Err(monofs::Error::Locked { pid, .. }) if pid == owner.to_string() => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => break,
            }
        }
    }
    note!(ctx, "detached {}", mountpoint.display());
    Ok(ExitCode::SUCCESS)
}

/// Prefix of `monofs tmp`'s scratch directories in the temporary directory.
const TMP_PREFIX: &str = "monofs-tmp-";

/// The file that marks a scratch directory as one `monofs tmp` made (and
/// holds its pid): the sweep of abandoned ones touches nothing else.
const TMP_MARKER: &str = "monofs-tmp.pid";

/// `monofs tmp`.
pub fn tmp(a: TmpArgs) -> anyhow::Result<ExitCode> {
    sweep_abandoned_tmp(&std::env::temp_dir());
    let scratch = tempfile::Builder::new().prefix(TMP_PREFIX).tempdir()?;
    std::fs::write(scratch.path().join(TMP_MARKER), std::process::id().to_string())?;
    let repo_path = scratch.path().join("repo");
    let repo = Arc::new(Repository::init(&repo_path, monofs::InitOptions::default())?);
    let mountpoint = match a.mountpoint {
        Some(m) => m,
        None => {
            let m = scratch.path().join("mnt");
            std::fs::create_dir(&m)?;
            println!("{}", m.display());
            m
        }
    };
    check_mountpoint(&mountpoint)?;
    let code = serve(repo, &repo_path, &mountpoint, None, &[], a.timers)?;
    drop(scratch);
    Ok(code)
}

/// Removes the scratch directories of `monofs tmp` runs that were killed
/// (SIGKILL skips the cleanup): those whose repository nobody holds, with
/// their stale mount taken down first. Best effort: a directory that
/// cannot be cleaned is left for the next run.
fn sweep_abandoned_tmp(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        // Only what `monofs tmp` puts there: a directory of the same name
        // that someone made for something else is left alone.
        let ours = |names: std::fs::ReadDir| {
            names.flatten().all(|e| matches!(e.file_name().to_str(), Some("repo" | "mnt" | TMP_MARKER)))
        };
        if !dir.join(TMP_MARKER).is_file() || !std::fs::read_dir(&dir).is_ok_and(ours) {
            continue;
        }
        let repo = dir.join("repo");
        // Held: a live `monofs tmp`. Missing: just being made.
        let Ok(lock) = RepoLock::acquire_existing(&repo) else { continue };
        let mnt = dir.join("mnt");
        if is_stale(&mnt) && unmount(&mnt, true).is_err() {
            continue;
        }
        // Never remove through a mount that is still there.
        let dev = |p: &Path| std::fs::symlink_metadata(p).map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        if mnt.exists() && dev(&mnt).ok() != dev(&dir).ok() {
            continue;
        }
        drop(lock);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => tracing::info!("removed {}, left by a killed `monofs tmp`", dir.display()),
            Err(e) => tracing::debug!("{}: {e}", dir.display()),
        }
    }
}
