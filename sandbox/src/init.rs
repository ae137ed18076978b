//! The sandbox's init, run by the namespace runtime as `monocore
//! __sandbox-init` inside the new user, mount, network, UTS and IPC
//! namespaces (see [`crate::namespace`]).
//!
//! Three processes: this one (the *keeper*, outside the new PID namespace,
//! which it creates) forks *pid 1*, which builds the sandbox's file system,
//! then forks the command and acts as its init: it forwards signals, reaps
//! orphans and exits with the command's status. When pid 1 exits the kernel
//! kills whatever else runs in the namespace, so nothing outlives the
//! command. The keeper relays signals to pid 1 and passes its status on.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use crate::channel;
use crate::spec::RunSpec;
use crate::sys;
use crate::user;

/// The hidden first argument that makes the `monocore` binary run [`main`].
pub const INIT_ARG: &str = "__sandbox-init";

/// Exit status when the sandbox could not be set up (as Docker's 125).
pub const EXIT_SETUP: i32 = 125;
/// Exit status when the command exists but cannot run (as a shell's 126).
pub const EXIT_CANNOT_RUN: i32 = 126;
/// Exit status when the command is not found (as a shell's 127).
pub const EXIT_NOT_FOUND: i32 = 127;

/// Signals passed on to the command, by the supervisor and by this init:
/// those a program may be sent to be told something (Docker passes every
/// one on). The supervisor, which did not pass SIGUSR1 and the like, was
/// killed by them and left its sandbox behind.
pub(crate) const FORWARDED: [Signal; 12] = monofs::parallel::PROCESS_SIGNALS;

fn fail(code: i32, msg: &str) -> ! {
    eprintln!("monocore: {msg}");
    std::process::exit(code)
}

/// Runs the init. Never returns: exits with the command's status.
pub fn main() -> ! {
    let mut channel = sys::take_channel();
    let spec = match channel::recv_spec(&mut channel) {
        Ok(s) => s,
        Err(e) => fail(EXIT_SETUP, &format!("reading the sandbox spec: {e}")),
    };
    let volumes = if spec.volumes.is_empty() {
        Vec::new()
    } else {
        match channel::recv_fds(&channel, spec.volumes.len()) {
            Ok(fds) if fds.len() == spec.volumes.len() => fds,
            Ok(fds) => fail(EXIT_SETUP, &format!("got {} of {} volumes", fds.len(), spec.volumes.len())),
            Err(e) => fail(EXIT_SETUP, &format!("receiving the volumes: {e}")),
        }
    };
    let mut signals = SigSet::empty();
    for s in FORWARDED {
        signals.add(s);
    }
    signals.add(Signal::SIGCHLD);
    if let Err(e) = signals.thread_block() {
        fail(EXIT_SETUP, &format!("blocking signals: {e}"));
    }
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWCGROUP) {
        fail(EXIT_SETUP, &format!("creating the pid namespace: {e}"));
    }
    match sys::fork() {
        Ok(ForkResult::Child) => pid1(&spec, &signals, channel, &volumes),
        Ok(ForkResult::Parent { child }) => std::process::exit(relay(child, &signals)),
        Err(e) => fail(EXIT_SETUP, &format!("fork: {e}")),
    }
}

/// Forwards `signals` to `child` until it exits, reaping every other child
/// that exits meanwhile; returns the shell-style status of `child`.
fn relay(child: Pid, signals: &SigSet) -> i32 {
    loop {
        let sig = match signals.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
}

fn pid1(spec: &RunSpec, signals: &SigSet, channel: UnixStream, volumes: &[OwnedFd]) -> ! {
    // If the keeper dies (the supervisor was killed), take the sandbox down.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if let Err(e) = nix::unistd::sethostname(&spec.hostname) {
        fail(EXIT_SETUP, &format!("setting the host name: {e}"));
    }
    if let Err(e) = sys::loopback_up() {
        fail(EXIT_SETUP, &format!("bringing up loopback: {e}"));
    }
    let root = Path::new(&spec.rootfs);
    if let Err(e) = crate::mounts::enter(root, &spec.volumes, volumes, &spec.files) {
        fail(EXIT_SETUP, &e);
    }
    let terminal = match spec.tty.then(|| open_terminal(&channel)).transpose() {
        Ok(t) => t,
        Err(e) => fail(EXIT_SETUP, &e),
    };
    drop(channel);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let creds = match user::resolve(&spec.user, &read("/etc/passwd"), &read("/etc/group")) {
        Ok(c) => c,
        Err(e) => fail(EXIT_SETUP, &e),
    };
    // Docker creates a missing working directory; so do we.
    let _ = std::fs::create_dir_all(&spec.workdir);
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", creds.home));
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("/usr/bin:/bin").to_owned();
    let program = match find_program(&spec.argv[0], &path, Path::new(&spec.workdir)) {
        Ok(p) => p,
        Err((code, msg)) => fail(code, &msg),
    };
    match sys::fork() {
        Ok(ForkResult::Child) => exec_command(spec, &creds, &program, &env, terminal),
        Ok(ForkResult::Parent { child }) => {
            // The supervisor sees the terminal close once the command's copies go.
            drop(terminal);
            std::process::exit(relay(child, signals))
        }
        Err(e) => fail(EXIT_SETUP, &format!("fork: {e}")),
    }
}

/// `argv0` as `execvp` would find it in `path` when run in `workdir` (a
/// relative name, or a relative directory of `path`, is taken from there,
/// where the command starts).
fn find_program(argv0: &str, path: &str, workdir: &Path) -> Result<CString, (i32, String)> {
    let from_workdir = |p: String| workdir.join(p).to_string_lossy().into_owned();
    let candidates: Vec<String> = if argv0.contains('/') {
        vec![from_workdir(argv0.to_owned())]
    } else {
        path.split(':').filter(|d| !d.is_empty()).map(|d| from_workdir(format!("{d}/{argv0}"))).collect()
    };
    let mut denied = false;
    for c in &candidates {
        match nix::unistd::access(c.as_str(), nix::unistd::AccessFlags::X_OK) {
            Ok(()) if Path::new(c).is_file() => {
                return CString::new(c.as_bytes()).map_err(|_| (EXIT_CANNOT_RUN, format!("'{argv0}': NUL in name")));
            }
            Ok(()) | Err(Errno::EACCES) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        Err((EXIT_CANNOT_RUN, format!("'{argv0}': permission denied")))
    } else {
        Err((EXIT_NOT_FOUND, format!("'{argv0}': command not found in the image (PATH={path})")))
    }
}

/// Opens a terminal in the sandbox's own `/dev/pts`, sends its master to
/// the supervisor and returns the other end for the command.
fn open_terminal(channel: &UnixStream) -> Result<OwnedFd, String> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("opening /dev/ptmx: {e}"))?;
    nix::pty::grantpt(&master)
        .and_then(|()| nix::pty::unlockpt(&master))
        .map_err(|e| format!("unlocking the terminal: {e}"))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| format!("naming the terminal: {e}"))?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&name)
        .map_err(|e| format!("opening {name}: {e}"))?;
    channel::send_fds(channel, &[master.as_fd()]).map_err(|e| format!("passing the terminal: {e}"))?;
    Ok(OwnedFd::from(slave))
}

/// Capabilities the command keeps: Docker's default set. Without
/// CAP_SYS_ADMIN and friends the sandbox's root cannot undo its mounts
/// (read-only volumes stay read-only), load modules or reach the hardware.
const KEPT_CAPS: [caps::Capability; 14] = [
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_MKNOD,
    caps::Capability::CAP_NET_RAW,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETFCAP,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_AUDIT_WRITE,
];

fn drop_capabilities() -> Result<(), String> {
    // One prctl per capability leaving the bounding set; the inheritable
    // and ambient sets are emptied at once.
    for cap in caps::all() {
        if !KEPT_CAPS.contains(&cap) {
            caps::drop(None, caps::CapSet::Bounding, cap).map_err(|e| format!("dropping {cap}: {e}"))?;
        }
    }
    caps::clear(None, caps::CapSet::Inheritable).map_err(|e| format!("clearing inheritable capabilities: {e}"))?;
    caps::clear(None, caps::CapSet::Ambient).map_err(|e| format!("clearing ambient capabilities: {e}"))
}

fn exec_command(
    spec: &RunSpec,
    creds: &user::Credentials,
    program: &CString,
    env: &[String],
    terminal: Option<OwnedFd>,
) -> ! {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    if let Err(e) = sys::default_signals() {
        fail(EXIT_SETUP, &format!("restoring the default signal actions: {e}"));
    }
    if let Some(t) = terminal {
        let step = nix::unistd::dup2_stdin(&t)
            .and_then(|()| nix::unistd::dup2_stdout(&t))
            .and_then(|()| nix::unistd::dup2_stderr(&t));
        if let Err(e) = step {
            fail(EXIT_SETUP, &format!("attaching the terminal: {e}"));
        }
    }
    sys::close_from(sys::CHANNEL_FD);
    if nix::unistd::setsid().is_ok() && spec.tty {
        let _ = sys::set_controlling_terminal(0);
    }
    if let Err(e) = drop_capabilities() {
        fail(EXIT_SETUP, &e);
    }
    let groups: Vec<Gid> = creds.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let step = nix::unistd::setgroups(&groups)
        .and_then(|()| {
            nix::unistd::setresgid(Gid::from_raw(creds.gid), Gid::from_raw(creds.gid), Gid::from_raw(creds.gid))
        })
        .and_then(|()| {
            nix::unistd::setresuid(Uid::from_raw(creds.uid), Uid::from_raw(creds.uid), Uid::from_raw(creds.uid))
        });
    if let Err(e) = step {
        let why = if e == Errno::EINVAL { " (an id outside the sandbox's user namespace)" } else { "" };
        fail(EXIT_SETUP, &format!("switching to user {}:{}: {e}{why}", creds.uid, creds.gid));
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        fail(EXIT_SETUP, &format!("no_new_privs: {e}"));
    }
    if let Err(e) = std::env::set_current_dir(&spec.workdir) {
        fail(EXIT_CANNOT_RUN, &format!("working directory {}: {e}", spec.workdir));
    }
    let cstrings = |v: &[String]| -> Vec<CString> {
        v.iter()
            .map(|s| {
                CString::new(s.as_bytes()).unwrap_or_else(|_| fail(EXIT_SETUP, "NUL byte in an argument or variable"))
            })
            .collect()
    };
    let argv = cstrings(&spec.argv);
    let envp = cstrings(env);
    if spec.seccomp
        && let Err(e) = crate::seccomp::filters().and_then(|f| crate::seccomp::apply(&f))
    {
        fail(EXIT_SETUP, &e);
    }
    let err = nix::unistd::execve(program, &argv, &envp).err().unwrap_or(Errno::EINVAL);
    let code = if err == Errno::ENOENT { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN };
    fail(code, &format!("cannot run '{}': {err}", Path::new(std::ffi::OsStr::from_bytes(program.as_bytes())).display()))
}
