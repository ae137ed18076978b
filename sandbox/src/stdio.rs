//! The command's output streams without `-t`: pipes of the sandbox's own,
//! relayed to the supervisor's streams by threads, as runc does.
//!
//! Handed on as they are, the supervisor's streams belong to the host user
//! that started it (a pipe of root's shell, a file it redirected to, its
//! terminal): the sandbox's root is another user on the host, so reopening
//! `/dev/stdout` (`/proc/self/fd/1`), as nginx's `access.log -> /dev/stdout`
//! does, failed with EACCES. These pipes may be reopened by anyone in the
//! sandbox, whatever its user.
//!
//! Stdin is the supervisor's own, as before (see [`relay`]).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::thread::JoinHandle;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, fchmod};

use crate::error::{Error, Result};

/// The threads copying the command's output to the supervisor's.
pub struct Relay {
    outputs: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Waits until every output was copied: once no process of the sandbox
    /// holds a pipe (they are gone when its init is).
    pub fn finish(self) {
        for t in self.outputs {
            let _ = t.join();
        }
    }
}

/// A pipe: the sandbox's (write) end, which anyone may reopen through
/// `/proc/self/fd`, and ours.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    fchmod(theirs.as_fd(), Mode::from_bits_truncate(0o666)).map_err(|e| Error::sys("fchmod of a pipe", e))?;
    Ok((theirs, ours))
}

/// The streams to give the command, and the relay of its output. Stdin
/// passes as it is: a thread relaying it would read ahead what the
/// command never asks for (a `while read` loop around monocore lost its
/// input). When stdout and stderr are the same file description (`2>&1`),
/// one pipe serves both, so their lines keep their order.
pub fn relay() -> Result<([Stdio; 3], Relay)> {
    // Through `/proc/self/fd/0`, a directory as stdin (`< /`) is the host's
    // tree below it, open to the sandbox's users as the host's permissions
    // allow: `/tmp` for anyone.
    if nix::sys::stat::fstat(std::io::stdin().as_fd())
        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR)
    {
        return Err(Error::Setup(
            "standard input is a directory, which would open the host's files to the sandbox".into(),
        ));
    }
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let same = |a: std::os::fd::BorrowedFd<'_>, b: std::os::fd::BorrowedFd<'_>| match (
        nix::sys::stat::fstat(a),
        nix::sys::stat::fstat(b),
    ) {
        (Ok(x), Ok(y)) => (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino),
        _ => false,
    };
    let (stdout, out_relay) = output(out.as_fd())?;
    let (stderr, outputs) = if same(out.as_fd(), err.as_fd()) {
        let dup = stdout.try_clone().map_err(|e| Error::io("duplicating a pipe", e))?;
        (Stdio::from(dup), vec![out_relay])
    } else {
        let (stderr, err_relay) = output(err.as_fd())?;
        (Stdio::from(stderr), vec![out_relay, err_relay])
    };
    Ok(([Stdio::inherit(), Stdio::from(stdout), stderr], Relay { outputs }))
}

/// A pipe for an output stream of the command, copied to `to` (a stream
/// of ours) until the sandbox closes it, or until `to` fails (a closed
/// pipe: the command then gets EPIPE in turn, as it would have).
fn output(to: std::os::fd::BorrowedFd<'_>) -> Result<(OwnedFd, JoinHandle<()>)> {
    let mut to = File::from(to.try_clone_to_owned().map_err(|e| Error::io("duplicating an output stream", e))?);
    // Into a pipe or socket the copy moves pages (splice). Not into a file:
    // a splice waiting for the sandbox's output holds the file position it
    // started at and writes it back when done, so what other processes
    // wrote to the same file meanwhile (`{ monocore tmp ... & echo x; } >
    // f`, parallel sandboxes sharing a log) was overwritten.
    let splice = nix::sys::stat::fstat(to.as_fd())
        .is_ok_and(|st| matches!(st.st_mode & nix::libc::S_IFMT, nix::libc::S_IFIFO | nix::libc::S_IFSOCK));
    let (theirs, ours) = pipe()?;
    let mut ours = File::from(ours);
    let copying = std::thread::spawn(move || {
        if splice {
            let _ = std::io::copy(&mut ours, &mut to);
        } else {
            let _ = copy_by_writes(&mut ours, &mut to);
        }
    });
    Ok((theirs, copying))
}

/// Copies `from` to `to` with `read` and `write`, each write at the file's
/// position as it is then.
fn copy_by_writes(from: &mut File, to: &mut File) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
