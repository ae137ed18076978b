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
/// of ours, written directly: the copy moves pages from pipe to pipe where
/// it can) until the sandbox closes it, or until `to` fails (a closed
/// pipe: the command then gets EPIPE in turn, as it would have).
fn output(to: std::os::fd::BorrowedFd<'_>) -> Result<(OwnedFd, JoinHandle<()>)> {
    let mut to = File::from(to.try_clone_to_owned().map_err(|e| Error::io("duplicating an output stream", e))?);
    let (theirs, ours) = pipe()?;
    let mut ours = File::from(ours);
    let copying = std::thread::spawn(move || {
        let _ = std::io::copy(&mut ours, &mut to);
    });
    Ok((theirs, copying))
}
