//! The few system calls that need `unsafe`: code run between fork and exec,
//! fork itself, and ioctls nix has no safe wrapper for. Everything else in
//! the crate uses nix's safe API.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::libc;
use nix::pty::Winsize;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Gid, Uid};

/// The file descriptor the sandbox's init reads its [`crate::spec::RunSpec`] from.
pub const SPEC_FD: RawFd = 3;

/// Where the spec's descriptor is parked between fork and exec.
const HIGH_FD: RawFd = 64;

/// Pipes of the id-mapping handshake, seen from the child.
#[derive(Clone, Copy, Debug)]
pub struct Handshake {
    /// The child writes its pid here once it has unshared its namespaces.
    pub unshared: RawFd,
    /// The child waits for one byte here: its uid and gid maps are written.
    pub mapped: RawFd,
    /// Read end of the pipe carrying the spec; becomes [`SPEC_FD`].
    pub spec: RawFd,
}

/// Makes `cmd` start in new namespaces (`flags`, which include a user
/// namespace): after fork it unshares, reports its pid on
/// `handshake.unshared`, waits until the parent has written its id maps,
/// becomes root of the new user namespace, leaves the parent's session and
/// dies with the thread that spawned it.
pub fn unshare_before_exec(cmd: &mut Command, flags: CloneFlags, handshake: Handshake) {
    let step = |r: nix::Result<()>| r.map_err(std::io::Error::from);
    let closure = move || -> std::io::Result<()> {
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
        // Park the spec's pipe above SPEC_FD first: it may sit on SPEC_FD's
        // number, which dup2 would otherwise close.
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor; the copy closes at exec.
        let parked = unsafe { libc::fcntl(handshake.spec, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
        // SAFETY: dup2 onto a fixed descriptor number that nothing else in the
        // child uses between fork and exec; the source is open.
        if parked < 0 || unsafe { libc::dup2(parked, SPEC_FD) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe system calls (unshare,
    // write, read, setgroups, setres[ug]id, prctl, setsid, fcntl, dup2) and touches
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

/// Takes ownership of [`SPEC_FD`], which the supervisor set up for the
/// sandbox's init; reading it to the end and dropping it closes it, so the
/// command does not inherit it.
pub fn take_spec_fd() -> std::fs::File {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: SPEC_FD was placed by `unshare_before_exec` for this process and
    // nothing else in it owns or closes that descriptor.
    std::fs::File::from(unsafe { OwnedFd::from_raw_fd(SPEC_FD) })
}

/// Closes every descriptor from `first` up, so the command inherits none of
/// the init's.
pub fn close_from(first: RawFd) {
    // SAFETY: close_range closes descriptors only; called right before exec,
    // when no Rust object in this process uses them any more.
    unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint) };
}
