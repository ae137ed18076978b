//! The namespace runtime: the command runs in new user, mount, PID,
//! network, UTS, IPC and cgroup namespaces, on its monofs tree mounted
//! through FUSE, as root of a user namespace whose ids are an unprivileged
//! host range.
//!
//! The supervisor starts `monocore __sandbox-init` (see [`crate::init`]):
//! between fork and exec the child unshares its namespaces and waits while
//! a supervisor thread writes its id maps, moves it into its cgroup and
//! attaches its network and prepares its volumes; the spec and the
//! volumes reach it through a socket ([`crate::channel`]).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;

use crate::channel;
use crate::error::{Error, Result};
use crate::init::INIT_ARG;
use crate::rootfs::Rootfs;
use crate::runtime::{Instance, Runtime, Start};
use crate::spec::IdRange;
use crate::sys::{self, Handshake};

/// Namespaces created before the init runs (PID and cgroup come after).
const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWUSER
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC);

/// Runs sandboxes in Linux namespaces.
#[derive(Debug, Default)]
pub struct NamespaceRuntime;

struct Running {
    id: String,
    child: Child,
    rootfs: Option<Rootfs>,
    channel: UnixStream,
}

impl Instance for Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn terminal(&mut self) -> Result<OwnedFd> {
        let mut fds = channel::recv_fds(&self.channel, 1).map_err(|e| Error::io("receiving the terminal", e))?;
        fds.pop().ok_or_else(|| Error::Setup("the sandbox init sent no terminal".into()))
    }

    fn wait(&mut self) -> Result<i32> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().map_err(|e| Error::io("waiting for the sandbox", e))?;
        Ok(status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(1))
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        if let Some(r) = self.rootfs.take() {
            r.unmount()?;
        }
        release_run_dir(&self.id)
    }
}

impl Runtime for NamespaceRuntime {
    fn name(&self) -> &'static str {
        "namespace"
    }

    fn check(&self) -> Result<()> {
        // Mapping a sandbox's ids to a host range, mounting through FUSE for
        // other users and making cgroups all need root (rootless operation
        // would go through newuidmap and subordinate ids).
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::NoNamespaces("the namespace runtime needs root (run monocore with sudo)".into()));
        }
        if !Path::new("/proc/self/ns/user").exists() {
            return Err(Error::NoNamespaces("this kernel has no user namespaces".into()));
        }
        if !Path::new("/dev/fuse").exists() {
            return Err(Error::RuntimeUnavailable {
                runtime: "namespace".into(),
                why: "/dev/fuse is missing (modprobe fuse)".into(),
            });
        }
        Ok(())
    }

    fn start(&self, start: Start<'_>) -> Result<Box<dyn Instance>> {
        let dir = run_dir(start.id);
        let rootfs_path = dir.join("rootfs");
        make_private_dir(&dir, start.spec.ids)?;
        make_private_dir(&rootfs_path, start.spec.ids)?;
        let rootfs = Rootfs::mount(start.vfs.clone(), &rootfs_path, start.id, start.spec.ids, start.file_cache)?;
        let mut spec = start.spec.clone();
        spec.rootfs = rootfs_path;
        // Given files go in the run directory, which the init can enter.
        for (i, f) in spec.files.iter_mut().enumerate() {
            let path = dir.join(format!("file{i}"));
            std::fs::write(&path, f.contents.as_bytes())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            f.host = Some(path);
        }
        let (channel, theirs) = UnixStream::pair().map_err(|e| Error::io("creating the init's channel", e))?;
        // Sent while the init starts and reads it: a spec larger than the
        // socket's buffer (an image's big environment) would otherwise
        // block this write for ever, before there is an init to read it.
        let mut writer = channel.try_clone().map_err(|e| Error::io("creating the init's channel", e))?;
        let to_send = spec.clone();
        let sending = std::thread::spawn(move || {
            channel::send_spec(&mut writer, &to_send).map_err(|e| Error::io("passing the spec", e))
        });
        // Made while the init waits for its ids, sent after the spec.
        let mounts = std::sync::Mutex::new(Vec::new());
        let [stdin, stdout, stderr] = start.stdio;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(INIT_ARG).env_clear().stdin(stdin).stdout(stdout).stderr(stderr);
        let child = spawn(&mut cmd, theirs, spec.ids, &|pid| {
            if let Some(cg) = start.cgroup {
                cg.add(pid)?;
            }
            if let Some(net) = start.network {
                net.attach(pid)?;
            }
            if !spec.volumes.is_empty() {
                let made = volume_mounts(pid, &spec.volumes)?;
                *mounts.lock().map_err(|_| Error::Setup("volume mounts poisoned".into()))? = made;
            }
            Ok(())
        })?;
        // The init reads the spec once it runs, then the volumes.
        sending.join().map_err(|_| Error::Setup("the spec's sender failed".into()))??;
        let mounts = mounts.into_inner().map_err(|_| Error::Setup("volume mounts poisoned".into()))?;
        if !mounts.is_empty() {
            let fds: Vec<_> = mounts.iter().map(std::os::fd::AsFd::as_fd).collect();
            channel::send_fds(&channel, &fds).map_err(|e| Error::io("passing the volumes", e))?;
        }
        Ok(Box::new(Running { id: start.id.to_owned(), child, rootfs: Some(rootfs), channel }))
    }
}

/// Where a sandbox's root file system and volumes are mounted on the host
/// (outside `MONOCORE_HOME`, whose parents may be closed to the sandbox's
/// host user, as `/root` is).
pub fn run_dir(id: &str) -> PathBuf {
    Path::new(RUN_DIR).join(id)
}

/// Host directory for all sandboxes' mounts.
pub const RUN_DIR: &str = "/run/monocore";

/// Each volume's host tree as a detached mount whose owners are mapped into
/// the user namespace of process `pid` (so the sandbox's root owns what the
/// host's root owns, as Podman's `:idmap`), read-only where asked. File
/// systems that cannot be idmapped are bound as they are.
fn volume_mounts(pid: u32, volumes: &[crate::spec::Volume]) -> Result<Vec<OwnedFd>> {
    let ns_path = format!("/proc/{pid}/ns/user");
    let userns = std::fs::File::open(&ns_path).map_err(|e| Error::io(format!("opening {ns_path}"), e))?;
    volumes
        .iter()
        .map(|v| {
            sys::clone_mount(&v.host, Some(&userns), v.read_only)
                .or_else(|e| {
                    tracing::info!("{}: no idmapped mount ({e}); binding it as it is", v.host.display());
                    sys::clone_mount(&v.host, None, v.read_only)
                })
                .map_err(|e| Error::io(format!("preparing volume {}", v.host.display()), e))
        })
        .collect()
}

/// A directory that only root and the sandbox's root group can enter.
fn make_private_dir(path: &Path, ids: IdRange) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let what = |e| Error::io(format!("creating {}", path.display()), e);
    std::fs::DirBuilder::new().recursive(true).mode(0o711).create(path).map_err(what)?;
    std::os::unix::fs::chown(path, Some(0), Some(ids.first)).map_err(what)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o710)).map_err(what)?;
    if let Some(parent) = path.parent().filter(|p| *p == Path::new(RUN_DIR)) {
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711)).map_err(what)?;
    }
    Ok(())
}

/// Unmounts whatever is still mounted in sandbox `id`'s run directory (a
/// supervisor killed mid-run leaves its mounts) and removes it. Never
/// recursive: a mount that did not go keeps its contents safe.
pub fn release_run_dir(id: &str) -> Result<()> {
    let dir = run_dir(id);
    if !dir.exists() {
        return Ok(());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        crate::rootfs::detach(&p)?;
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    std::fs::remove_dir(&dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))
}

/// Starts `cmd` in new namespaces: once the child has unshared them, maps
/// its ids to `ids`, runs `prepare` with its pid, then lets it exec with
/// `channel` as its [`sys::CHANNEL_FD`].
fn spawn(
    cmd: &mut Command,
    channel: UnixStream,
    ids: IdRange,
    prepare: &(dyn Fn(u32) -> Result<()> + Sync),
) -> Result<Child> {
    let (unshared_r, unshared_w) = pipe()?;
    let (mapped_r, mapped_w) = pipe()?;
    let handshake =
        Handshake { unshared: unshared_w.as_raw_fd(), mapped: mapped_r.as_raw_fd(), channel: channel.as_raw_fd() };
    sys::unshare_before_exec(cmd, NAMESPACES, handshake);
    std::thread::scope(|scope| {
        let helper = scope.spawn(move || -> Result<()> {
            let mut pid = [0u8; 4];
            std::fs::File::from(unshared_r)
                .read_exact(&mut pid)
                .map_err(|_| Error::Setup("the sandbox init died before its namespaces existed".into()))?;
            let pid = u32::from_le_bytes(pid);
            let map = format!("0 {} {}\n", ids.first, ids.count);
            for file in ["uid_map", "gid_map"] {
                let path = format!("/proc/{pid}/{file}");
                std::fs::write(&path, &map).map_err(|e| Error::io(format!("writing {path}"), e))?;
            }
            prepare(pid)?;
            std::fs::File::from(mapped_w).write_all(b"g").map_err(|e| Error::io("releasing the sandbox init", e))
        });
        let spawned = cmd.spawn();
        // Our copies of the child's ends: closing them lets the helper see
        // EOF if the child died before reporting.
        drop(unshared_w);
        drop(mapped_r);
        drop(channel);
        let helped = helper.join().unwrap_or_else(|_| Err(Error::Setup("namespace helper panicked".into())));
        match (spawned, helped) {
            (Ok(child), Ok(())) => Ok(child),
            (Ok(mut child), Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
            (Err(e), Ok(())) | (Err(e), Err(_)) if e.raw_os_error() == Some(nix::libc::EPERM) => {
                Err(Error::NoNamespaces(e.to_string()))
            }
            (Err(_), Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(Error::io("starting the sandbox init", e)),
        }
    })
}
