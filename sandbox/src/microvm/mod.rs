//! The microVM runtime: the command runs in a QEMU `-M microvm` guest
//! (Debian's stock kernel, booted through PVH from a decompressed copy),
//! whose root file system is the sandbox's monofs tree served over
//! virtio-fs by a vhost-user-fs backend in this process ([`virtiofs`]).
//!
//! A generated initramfs ([`initramfs`]) loads the virtio modules, mounts
//! the root, and runs the command with its standard streams on
//! virtio-serial ports, which are Unix sockets on the host ([`ports`]); a
//! fourth port carries the exit status, and on a fifth, the control port,
//! the host sends signal numbers, which the guest's init delivers to the
//! command (SIGKILL kills QEMU instead). With `-t` the command's terminal
//! is the guest's virtio console, whose socket the supervisor relays;
//! `-v` volumes are more virtio-fs devices served by virtiofsd's
//! passthrough file system; network scopes give the guest a tap device
//! set up by [`crate::net::Network::attach_tap`]. Everything lives in the run
//! directory `/run/monocore/ID`, removed on close and by `monocore clean`.
//! KVM when the host has hardware virtualisation, TCG otherwise
//! ([`accel`]). See docs/SANDBOX.md.

pub mod accel;
pub mod initramfs;
pub mod kernel;
pub mod ports;
pub mod qemu;
pub mod virtiofs;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monofs::vfs::{ROOT, Vfs};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{MsgFlags, send};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::init::EXIT_SETUP;
use crate::net::Network;
use crate::runtime::{Instance, Runtime, Signaller, Start};
use crate::sandbox::Options;
use crate::spec::Scope;
use crate::sys;
use accel::Accel;
use initramfs::GuestCommand;
use kernel::Kernel;

/// The VMM.
pub const QEMU: &str = "qemu-system-x86_64";

/// The static busybox the guest's init runs on.
pub const BUSYBOX: &str = "/bin/busybox";

/// Guest memory without `--memory`.
pub const DEFAULT_MEMORY_MIB: u64 = 256;

/// The least guest memory the stock kernel boots in (its image alone is
/// 66 MB).
pub const MIN_MEMORY_MIB: u64 = 128;

/// Volumes per VM: `-M microvm` has 24 virtio-mmio transports, and the
/// root, the serial ports and the network take three.
pub const MAX_VOLUMES: usize = 16;

/// How long QEMU may take to connect its sockets.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a guest that reported its exit status may take to power off.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs sandboxes in QEMU microVMs.
#[derive(Debug)]
pub struct MicrovmRuntime {
    memory_mib: u64,
    cpus: u32,
    volumes: Vec<PathBuf>,
    scope: Scope,
}

impl MicrovmRuntime {
    /// The runtime for `opts`: `--memory` is the guest's RAM (and, through
    /// the sandbox's cgroup, bounds QEMU), `--cpus` its vCPUs.
    pub fn new(opts: &Options) -> MicrovmRuntime {
        MicrovmRuntime {
            memory_mib: opts.limits.memory.map_or(DEFAULT_MEMORY_MIB, |b| b >> 20),
            cpus: opts.limits.cpus.map_or(1, |c| c.ceil().max(1.0) as u32),
            volumes: opts.volumes.iter().map(|v| v.host.clone()).collect(),
            scope: opts.scope,
        }
    }
}

fn unavailable(why: impl Into<String>) -> Error {
    Error::RuntimeUnavailable { runtime: "microvm".into(), why: why.into() }
}

/// `name` in `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .or_else(|| ["/usr/bin", "/usr/local/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file()))
}

/// Whether `path` is an ELF program without an interpreter (static).
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else { return false };
    let word = |at: usize, n: usize| -> Option<u64> {
        let b = data.get(at..at + n)?;
        Some(b.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    };
    if !data.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (word(32, 8), word(54, 2), word(56, 2)) else { return false };
    // No PT_INTERP (3) program header.
    (0..phnum).all(|i| word((phoff + i * phentsize) as usize, 4).is_some_and(|t| t != 3))
}

impl Runtime for MicrovmRuntime {
    fn name(&self) -> &'static str {
        "microvm"
    }

    fn check(&self) -> Result<()> {
        if let Some(file) = self.volumes.iter().find(|v| !v.is_dir()) {
            return Err(unavailable(format!(
                "-v {}: only directories can be volumes of a microVM (use its directory, or --isolation namespace)",
                file.display()
            )));
        }
        if self.volumes.len() > MAX_VOLUMES {
            return Err(unavailable(format!("at most {MAX_VOLUMES} volumes (-v) fit in a microVM")));
        }
        if self.scope != Scope::None && !Path::new("/dev/net/tun").exists() {
            return Err(unavailable("--scope needs /dev/net/tun for the VM's tap device (modprobe tun)"));
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(Error::BadOption {
                option: "--memory".into(),
                value: format!("{}m", self.memory_mib),
                why: format!("a microVM needs at least {MIN_MEMORY_MIB}m"),
            });
        }
        if which(QEMU).is_none() {
            return Err(unavailable(format!("{QEMU} is not installed (apt-get install qemu-system-x86)")));
        }
        if Kernel::find(Path::new("/")).is_none() {
            return Err(unavailable(kernel::NO_KERNEL));
        }
        if !is_static_elf(Path::new(BUSYBOX)) {
            return Err(unavailable(format!(
                "the guest's init needs a static {BUSYBOX} (apt-get install busybox-static)"
            )));
        }
        accel::detect().map_err(unavailable)?;
        Ok(())
    }

    fn start(&self, start: Start<'_>) -> Result<Box<dyn Instance>> {
        self.check()?;
        let accel = accel::detect().map_err(unavailable)?;
        let dir = crate::namespace::run_dir(start.id);
        make_run_dir(&dir)?;
        // From here on, an error removes the run directory.
        let mut cleanup = RunDir(Some(start.id.to_owned()));
        let spec = start.spec;
        let read = |p: &str| read_image_file(&start.vfs, p);
        let creds = crate::user::resolve(&spec.user, &read("etc/passwd"), &read("etc/group")).map_err(Error::Setup)?;
        let mut env = spec.env.clone();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", creds.home));
        }
        let volumes: Vec<initramfs::GuestVolume> = spec
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| initramfs::GuestVolume {
                tag: format!("vol{i}"),
                path: v.guest.clone(),
                read_only: v.read_only,
            })
            .collect();
        let cmd = GuestCommand {
            argv: spec.argv.clone(),
            env,
            workdir: spec.workdir.clone(),
            hostname: spec.hostname.clone(),
            // The size of our terminal when the command starts; later
            // changes travel on the control port ([`control_signaller`]).
            tty: spec.tty.then(|| {
                sys::window_size(std::io::stdin().as_raw_fd())
                    .filter(|w| w.ws_row > 0 && w.ws_col > 0)
                    .map_or((24, 80), |w| (w.ws_row, w.ws_col))
            }),
            volumes: volumes.clone(),
            files: spec.files.iter().map(|f| (f.path.clone(), f.contents.clone())).collect(),
            network: start.network.map(|n| {
                let (host, guest) = n.addresses();
                (guest, host)
            }),
        };

        let t = Instant::now();
        let kernel = Kernel::find(Path::new("/")).ok_or_else(|| unavailable(kernel::NO_KERNEL))?;
        let vmlinux = kernel::cached_vmlinux(&kernel, &cache_dir())?;
        let mut initrd = initramfs::base_archive(&kernel, Path::new(BUSYBOX))?;
        initrd.extend(initramfs::run_archive(&cmd, creds.uid, creds.gid, &creds.groups));
        let initrd_path = dir.join("initrd.cpio");
        std::fs::write(&initrd_path, &initrd)
            .map_err(|e| Error::io(format!("writing {}", initrd_path.display()), e))?;
        tracing::debug!("microvm: kernel and initramfs ready in {:?}", t.elapsed());

        let server = virtiofs::Server::start(start.vfs.clone(), &dir.join("fs.sock"))?;
        let mut volume_servers = Vec::new();
        for (v, g) in spec.volumes.iter().zip(&volumes) {
            let socket = dir.join(format!("{}.sock", g.tag));
            volume_servers.push(virtiofs::Server::start_passthrough(&v.host, v.read_only, &socket)?);
        }
        if let Some(net) = start.network {
            net.attach_tap()?;
        }
        let port_sockets = qemu::PORTS.map(|p| dir.join(format!("{p}.sock")));
        let tty_socket = spec.tty.then(|| dir.join("tty.sock"));
        let ports = ports::Ports::bind(&port_sockets.iter().chain(&tty_socket).cloned().collect::<Vec<_>>())?;
        let config = qemu::VmConfig {
            kernel: vmlinux,
            initrd: initrd_path,
            fs_socket: dir.join("fs.sock"),
            port_sockets,
            console_log: dir.join("console.log"),
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            accel,
            tsc_khz: accel::host_tsc_khz(),
            debug: std::env::var_os("MONOCORE_MICROVM_DEBUG").is_some(),
            tty_socket,
            volumes: volumes.iter().map(|g| (g.tag.clone(), dir.join(format!("{}.sock", g.tag)))).collect(),
            tap: start.network.map(Network::host_interface),
        };
        let args = config.to_args();
        tracing::debug!("microvm: {QEMU} {}", args.join(" "));
        let log_path = dir.join("qemu.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
        let mut command = Command::new(which(QEMU).ok_or_else(|| unavailable(format!("{QEMU} is not installed")))?);
        // Own process group: a terminal's Ctrl-C reaches the supervisor,
        // which relays it, not QEMU directly.
        command.args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).process_group(0);
        sys::kill_with_parent(&mut command);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| Error::io(format!("starting {QEMU}"), e))?;
        let connected = start
            .cgroup
            .map_or(Ok(()), |cg| cg.add(child.id()))
            .and_then(|()| ports.accept(&mut child, started + CONNECT_TIMEOUT));
        let streams = match connected {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                server.finish();
                volume_servers.into_iter().for_each(virtiofs::Server::finish);
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(match log.trim() {
                    "" => e,
                    log => Error::Setup(format!("{e}: {log}")),
                });
            }
        };
        let mut streams = streams.into_iter();
        let mut port = || streams.next().ok_or_else(|| Error::Setup("missing VM port".into()));
        let (stdin, stdout, stderr, exit, control) = (port()?, port()?, port()?, port()?, port()?);
        let tty = if spec.tty { Some(port()?) } else { None };
        // The command's streams are this process's own (the sandbox layer
        // gives every runtime inherited stdio).
        drop(start.stdio);
        let first = ports::FirstOutput::default();
        // With -t our stdin goes to the terminal (sandbox.rs relays it);
        // the stdin port stays connected and silent.
        let idle_stdin = if tty.is_some() {
            Some(stdin)
        } else {
            ports::pump_in(std::io::stdin(), stdin);
            None
        };
        let pumps = vec![
            ports::pump_out(stdout, std::io::stdout(), first.clone()),
            ports::pump_out(stderr, std::io::stderr(), first.clone()),
        ];
        cleanup.0 = None;
        Ok(Box::new(Running {
            id: start.id.to_owned(),
            dir,
            qemu: child,
            server: Some(server),
            volume_servers,
            tty,
            _idle_stdin: idle_stdin,
            exit: Some(exit),
            control,
            pumps,
            started,
            first,
            accel,
        }))
    }
}

/// Removes a run directory unless disarmed (`.0 = None`).
struct RunDir(Option<String>);

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(id) = &self.0
            && let Err(e) = release_run_dir(id)
        {
            tracing::warn!("{e}");
        }
    }
}

fn make_run_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Removes sandbox `id`'s run directory (sockets, initramfs, logs; all in
/// one level, so the namespace runtime's release covers it, also after the
/// supervisor was killed: `monocore clean`). A QEMU whose supervisor died
/// was killed with it (parent-death signal) or is the record's init, which
/// `clean` kills.
pub fn release_run_dir(id: &str) -> Result<()> {
    crate::namespace::release_run_dir(id)
}

/// Where the decompressed guest kernel is cached.
fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("monocore")
}

/// The contents of `path` (relative to the root, no symbolic links
/// followed) in `vfs`, or "" when it is not there.
fn read_image_file(vfs: &Vfs, path: &str) -> String {
    let mut ino = ROOT;
    let mut looked_up = Vec::new();
    let mut found = true;
    for name in path.split('/').filter(|c| !c.is_empty()) {
        match vfs.lookup(ino, name.as_bytes()) {
            Ok(attr) => {
                ino = attr.ino;
                looked_up.push(ino);
            }
            Err(_) => {
                found = false;
                break;
            }
        }
    }
    let mut data = Vec::new();
    while found && let Ok(chunk) = vfs.read(ino, data.len() as u64, 1 << 16) {
        if chunk.is_empty() {
            break;
        }
        data.extend(chunk);
    }
    for i in looked_up {
        vfs.forget(i, 1);
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// A running microVM.
struct Running {
    id: String,
    dir: PathBuf,
    qemu: Child,
    server: Option<virtiofs::Server>,
    volume_servers: Vec<virtiofs::Server>,
    /// With `-t`: the virtio console's socket, until `terminal` takes it.
    tty: Option<UnixStream>,
    _idle_stdin: Option<UnixStream>,
    exit: Option<UnixStream>,
    /// The control port: signal numbers for the guest's init.
    control: UnixStream,
    pumps: Vec<JoinHandle<()>>,
    started: Instant,
    first: ports::FirstOutput,
    accel: Accel,
}

impl Running {
    /// The last lines of the guest's console and of QEMU's log.
    fn diagnostics(&self) -> String {
        let tail = |f: &str, n: usize| {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!("QEMU: {}\nguest console:\n{}", tail("qemu.log", 5), tail("console.log", 15))
    }

    fn stop_qemu(&mut self) {
        if let Ok(None) = self.qemu.try_wait() {
            let _ = self.qemu.kill();
        }
        let _ = self.qemu.wait();
    }
}

/// The exit port's line: `exit:N` or `init:MESSAGE`; empty when QEMU closed
/// the port without one.
fn read_status(port: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match port.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if line.contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&line).lines().next().unwrap_or_default().trim().to_owned()
}

/// Signals for the command in VM `qemu`: their numbers, one per line, on
/// the control port, which the guest's init reads and sends on to the
/// command; SIGWINCH becomes `winch ROWS COLS` with our terminal's size,
/// which init gives the guest's console. SIGKILL goes to QEMU, which stops
/// the VM at once, and so does every other signal when there is no port
/// (it could not be duplicated); a port that fails means QEMU has gone,
/// and the signal is dropped.
fn control_signaller(qemu: u32, control: Option<UnixStream>) -> Signaller {
    let qemu = Pid::from_raw(qemu as i32);
    let control = Mutex::new(control);
    Arc::new(move |sig| {
        let Ok(port) = control.lock() else { return };
        match port.as_ref() {
            Some(port) if sig != Signal::SIGKILL => {
                let line = if sig == Signal::SIGWINCH {
                    match sys::window_size(std::io::stdin().as_raw_fd()) {
                        Some(ws) => format!("winch {} {}\n", ws.ws_row, ws.ws_col),
                        None => return,
                    }
                } else {
                    format!("{}\n", sig as i32)
                };
                // MSG_NOSIGNAL: no SIGPIPE once QEMU has gone.
                let _ = send(port.as_raw_fd(), line.as_bytes(), MsgFlags::MSG_NOSIGNAL);
            }
            _ if sig == Signal::SIGWINCH => {}
            _ => {
                let _ = kill(qemu, sig);
            }
        }
    })
}

/// QEMU's "terminating on signal N" in its log: it was stopped by signal N.
fn terminating_signal(log: &str) -> Option<i32> {
    let rest = &log[log.find("terminating on signal ")? + "terminating on signal ".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl Instance for Running {
    /// QEMU's pid: `monocore stop` and `clean` SIGKILL it.
    fn pid(&self) -> u32 {
        self.qemu.id()
    }

    /// Through the control port to the guest's init ([`control_signaller`]).
    fn signaller(&self) -> Signaller {
        control_signaller(self.qemu.id(), self.control.try_clone().ok())
    }

    /// The host end of the guest's console (`hvc0`), a Unix socket: the
    /// guest's tty does all terminal processing, so the supervisor relays
    /// bytes both ways; no host pty is needed in between.
    fn terminal(&mut self) -> Result<OwnedFd> {
        self.tty.take().map(OwnedFd::from).ok_or_else(|| Error::Setup("the microVM has no terminal".into()))
    }

    fn wait(&mut self) -> Result<i32> {
        let status = self.exit.take().map(|mut p| read_status(&mut p)).unwrap_or_default();
        let reported = Instant::now();
        let qemu = if status.is_empty() {
            self.qemu.wait().ok()
        } else {
            // The guest powers off after reporting; don't wait forever.
            loop {
                match self.qemu.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if reported.elapsed() < POWEROFF_TIMEOUT => std::thread::sleep(Duration::from_millis(10)),
                    _ => {
                        self.stop_qemu();
                        break None;
                    }
                }
            }
        };
        for p in self.pumps.drain(..) {
            let _ = p.join();
        }
        if let Some(s) = self.server.take() {
            s.finish();
        }
        self.volume_servers.drain(..).for_each(virtiofs::Server::finish);
        if std::env::var_os("MONOCORE_MICROVM_TIMINGS").is_some() {
            let first = self.first.lock().ok().and_then(|f| *f).map(|t| t - self.started);
            eprintln!(
                "[microvm] accel={:?} first_output={first:?} status_after={:?}",
                self.accel,
                reported - self.started
            );
        }
        if let Some(code) = status.strip_prefix("exit:") {
            return code.parse().map_err(|_| Error::Setup(format!("the guest reported a bad status '{code}'")));
        }
        if let Some(msg) = status.strip_prefix("init:") {
            eprintln!("monocore: the microVM's init failed: {msg}\n{}", self.diagnostics());
            return Ok(EXIT_SETUP);
        }
        if let Some(sig) = qemu.and_then(|s| s.signal()) {
            return Ok(128 + sig);
        }
        let log = std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
        if let Some(sig) = terminating_signal(&log) {
            return Ok(128 + sig);
        }
        Err(Error::Setup(format!("the VM stopped without an exit status\n{}", self.diagnostics())))
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.stop_qemu();
        if let Some(s) = self.server.take() {
            s.finish();
        }
        self.volume_servers.drain(..).for_each(virtiofs::Server::finish);
        release_run_dir(&self.id)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_qemu();
    }
}

/// Whether this host can run microVMs, without starting one: `None` when
/// it can, else why not (for tests and `check`).
pub fn unavailable_reason() -> Option<String> {
    MicrovmRuntime { memory_mib: DEFAULT_MEMORY_MIB, cpus: 1, volumes: vec![], scope: Scope::None }
        .check()
        .err()
        .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_signal_deaths_are_read_from_its_log() {
        let log = "qemu-system-x86_64: terminating on signal 15 from pid 4242 (monocore)\n";
        assert_eq!(terminating_signal(log), Some(15));
        assert_eq!(terminating_signal("qemu-system-x86_64: terminating on signal 2\n"), Some(2));
        assert_eq!(terminating_signal("something else"), None);
    }

    #[test]
    fn signals_go_to_the_control_port_and_sigkill_to_qemu() {
        use std::io::BufRead;
        let (host, guest) = UnixStream::pair().expect("pair");
        let mut qemu = Command::new("sleep").arg("60").spawn().expect("sleep");
        let send = control_signaller(qemu.id(), Some(host));
        send(Signal::SIGTERM);
        send(Signal::SIGINT);
        let mut lines = std::io::BufReader::new(guest).lines();
        assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("15"));
        assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("2"));
        assert_eq!(qemu.try_wait().expect("try_wait"), None, "QEMU is left alone");
        send(Signal::SIGKILL);
        assert_eq!(qemu.wait().expect("wait").signal(), Some(9));
        // With the port's other end gone (QEMU exited), the signal is
        // dropped, without a SIGPIPE; without a port, signals stop QEMU.
        drop(lines);
        send(Signal::SIGTERM);
        let mut qemu = Command::new("sleep").arg("60").spawn().expect("sleep");
        control_signaller(qemu.id(), None)(Signal::SIGTERM);
        assert_eq!(qemu.wait().expect("wait").signal(), Some(15));
    }

    #[test]
    fn unsupported_options_are_refused_up_front() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let volume = crate::spec::Volume { host: file, guest: "/f".into(), read_only: false };
        let opts = Options { volumes: vec![volume], ..Options::default() };
        let err = MicrovmRuntime::new(&opts).check().expect_err("file volume");
        assert!(err.to_string().contains("only directories can be volumes"), "{err}");
        let mut small = Options::default();
        small.limits.memory = Some(64 << 20);
        let err = MicrovmRuntime::new(&small).check().expect_err("64m");
        assert!(err.to_string().contains("at least 128m"), "{err}");
        let mut big = Options::default();
        big.limits.memory = Some(1 << 30);
        big.limits.cpus = Some(1.5);
        let rt = MicrovmRuntime::new(&big);
        assert_eq!((rt.memory_mib, rt.cpus), (1024, 2));
    }

    #[test]
    fn static_programs_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("setids");
        std::fs::write(&p, initramfs::setids_elf(0, 0, &[])).expect("write");
        assert!(is_static_elf(&p));
        std::fs::write(&p, "#!/bin/sh\n").expect("write");
        assert!(!is_static_elf(&p));
        if let Ok(exe) = std::env::current_exe() {
            assert!(!is_static_elf(&exe), "a Rust test binary links libc dynamically");
        }
    }
}
