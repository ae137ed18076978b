//! The few system calls that need `unsafe`: code run between fork and exec,
//! fork itself, descriptors received from another process, the new mount
//! API (idmapped mounts) and ioctls nix has no safe wrapper for. Everything
//! else in the crate uses nix's safe API.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::errno::Errno;
use nix::libc;
use nix::pty::Winsize;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Gid, Uid};

/// The sandbox init's end of its channel to the supervisor (see [`crate::channel`]).
pub const CHANNEL_FD: RawFd = 3;

/// Where the channel's descriptor is parked between fork and exec.
const HIGH_FD: RawFd = 64;

/// Pipes of the id-mapping handshake, seen from the child.
#[derive(Clone, Copy, Debug)]
pub struct Handshake {
    /// The child writes its pid here once it has unshared its namespaces.
    pub unshared: RawFd,
    /// The child waits for one byte here: its uid and gid maps are written.
    pub mapped: RawFd,
    /// The child's end of the channel; becomes [`CHANNEL_FD`].
    pub channel: RawFd,
}

/// Makes `cmd` start in new namespaces (`flags`, which include a user
/// namespace): after fork it unshares, reports its pid on
/// `handshake.unshared`, waits until the parent has written its id maps,
/// becomes root of the new user namespace, leaves the parent's session and
/// dies with the thread that spawned it.
pub fn unshare_before_exec(cmd: &mut Command, flags: CloneFlags, handshake: Handshake) {
    let step = |r: nix::Result<()>| r.map_err(std::io::Error::from);
    let parent = nix::unistd::getpid();
    let closure = move || -> std::io::Result<()> {
        // Die with the spawning thread from the start: a supervisor killed
        // during the handshake left this child waiting for ever (holding
        // the tree's FUSE device, the store lock and its network slot).
        // Set again below, as changing credentials clears it.
        step(nix::sys::prctl::set_pdeathsig(Signal::SIGKILL))?;
        if nix::unistd::getppid() != parent {
            return Err(std::io::Error::other("the supervisor is gone"));
        }
        step(nix::sched::unshare(flags))?;
        let pid = std::process::id().to_le_bytes();
        // SAFETY: the fds are open pipe ends owned by the spawning code for the
        // whole spawn call; borrowing them for one call each is sound.
        let (unshared, mapped) =
            unsafe { (BorrowedFd::borrow_raw(handshake.unshared), BorrowedFd::borrow_raw(handshake.mapped)) };
        step(nix::unistd::write(unshared, &pid).map(drop))?;
        let mut go = [0u8; 1];
        if step(nix::unistd::read(mapped, &mut go).map(drop)).is_err() || go[0] != b'g' {
            return Err(std::io::Error::other("the parent did not map the sandbox's ids"));
        }
        step(nix::unistd::setgroups(&[]))?;
        step(nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)))?;
        step(nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)))?;
        step(nix::sys::prctl::set_pdeathsig(Signal::SIGKILL))?;
        step(nix::unistd::setsid().map(drop))?;
        // Park the channel above CHANNEL_FD first: it may sit on that
        // number, which dup2 would otherwise close.
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor; the copy closes at exec.
        let parked = unsafe { libc::fcntl(handshake.channel, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
        // SAFETY: dup2 onto a fixed descriptor number that nothing else in the
        // child uses between fork and exec; the source is open.
        if parked < 0 || unsafe { libc::dup2(parked, CHANNEL_FD) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe system calls (prctl,
    // getppid, unshare, write, read, setgroups, setres[ug]id, setsid, fcntl, dup2) and touches
    // no lock or allocator, as required after fork in a threaded process.
    unsafe { cmd.pre_exec(closure) };
}

/// Forks. Only for the sandbox's init, which is single-threaded: the child
/// may use anything the parent could.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the sandbox init calls this before it starts any thread, so the
    // child inherits no lock held by another thread.
    unsafe { nix::unistd::fork() }
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> nix::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own, on an
    // open socket; the union member used is ifru_flags, as the ioctls define.
    unsafe {
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
    }
    Ok(())
}

/// Gives every signal its default action again, for a command about to be
/// exec'd: an ignored signal stays ignored across exec, and the command
/// should start as in a fresh container, whatever ignored what on the way
/// here. The Rust runtime ignores SIGPIPE (`yes | head -n1` would end in
/// EPIPE errors instead of quietly), and a supervisor started in the
/// background of a script has SIGINT and SIGQUIT ignored (a relayed Ctrl-C
/// or `monocore stop` would be lost on the command).
pub fn default_signals() -> nix::Result<()> {
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run
        // in signal context.
        unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// Whether this process ignores `sig` (as `nohup` makes it ignore SIGHUP,
/// or a script's background job SIGINT and SIGQUIT).
pub fn ignored(sig: Signal) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`,
    // which is zeroed and large enough.
    let r = unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: zeroed is a valid sigaction, and sigaction filled it on success.
    r == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Makes the terminal `fd` the calling session leader's controlling terminal.
pub fn set_controlling_terminal(fd: RawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument; fd is an open terminal.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// The window size of terminal `fd`.
pub fn window_size(fd: RawFd) -> Option<Winsize> {
    let mut ws = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

/// Sets the window size of terminal `fd`.
pub fn set_window_size(fd: RawFd, ws: &Winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we pass.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) }).map(drop)
}

/// Takes ownership of [`CHANNEL_FD`], which the supervisor set up for the
/// sandbox's init.
pub fn take_channel() -> UnixStream {
    // SAFETY: CHANNEL_FD was placed by `unshare_before_exec` for this process
    // and nothing else in it owns or closes that descriptor.
    UnixStream::from(unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) })
}

/// Receives one message of up to `max` descriptors (and a byte) on `sock`.
pub fn recv_fds(sock: &UnixStream, max: usize) -> std::io::Result<Vec<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let payload = (max.max(1) * std::mem::size_of::<RawFd>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let mut space = vec![0u8; unsafe { libc::CMSG_SPACE(payload) } as usize];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    if msg.bytes == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the other side closed the channel"));
    }
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS hands this process new descriptors that
            // nothing else owns; each is wrapped exactly once.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(fds)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// A detached copy of the mount tree at `source` whose owners are mapped
/// through user namespace `userns` (an open `/proc/PID/ns/user`) when given,
/// and read-only if asked; attach it with [`attach_mount`].
pub fn clone_mount(source: &Path, userns: Option<&std::fs::File>, read_only: bool) -> std::io::Result<OwnedFd> {
    let path = CString::new(source.as_os_str().as_bytes())?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: open_tree reads a NUL-terminated path we own; on success it
    // returns a new descriptor that we wrap once.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is the new descriptor open_tree returned.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut attr = MountAttr { attr_set: 0, attr_clr: 0, propagation: 0, userns_fd: 0 };
    if let Some(ns) = userns {
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = ns.as_raw_fd() as u64;
    }
    if read_only {
        attr.attr_set |= MOUNT_ATTR_RDONLY;
    }
    if attr.attr_set != 0 {
        let empty = c"";
        // SAFETY: mount_setattr reads `attr` (size passed) and the empty
        // path; tree and the namespace descriptor are open.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                empty.as_ptr(),
                (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(tree)
}

/// Attaches detached mount `tree` on `target`.
pub fn attach_mount(tree: &OwnedFd, target: &Path) -> std::io::Result<()> {
    let to = CString::new(target.as_os_str().as_bytes())?;
    let empty = c"";
    // SAFETY: move_mount reads two NUL-terminated paths we own; tree is open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Closes every descriptor from `first` up, so the command inherits none of
/// the init's.
pub fn close_from(first: RawFd) {
    // SAFETY: close_range closes descriptors only; called right before exec,
    // when no Rust object in this process uses them any more.
    unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint) };
}

/// An all-zero `statvfs64`, to fill in field by field (the struct has
/// private padding, so it cannot be written as a literal).
pub fn zeroed_statvfs64() -> libc::statvfs64 {
    // SAFETY: statvfs64 is a plain C struct of integers and padding; all
    // zero bits is a valid value of every field.
    unsafe { std::mem::zeroed() }
}

/// Makes the child `cmd` starts get SIGKILL when the thread that started it
/// ends (the supervisor was killed), so a VMM never outlives it, and starts
/// it with no signal blocked (the supervisor blocks the ones it relays, and
/// a blocked mask survives exec).
pub fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (sigemptyset, sigprocmask, prctl) on a
    // sigset_t on its own stack; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            if libc::sigemptyset(none.as_mut_ptr()) != 0
                || libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut()) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Bytes written to stream socket `sock` that its peer has not read yet
/// (SIOCOUTQ).
pub fn unread_bytes(sock: &UnixStream) -> std::io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer,
    // which points to a live c_int; the descriptor is borrowed from `sock`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n.max(0) as usize) }
}
