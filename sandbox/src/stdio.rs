//! The command's standard streams without `-t`: pipes of the sandbox's
//! own, relayed to the supervisor's streams by threads, as runc does.
//!
//! Handed on as they are, the supervisor's streams belong to the host user
//! that started it (a pipe of root's shell, a file it redirected to, its
//! terminal): the sandbox's root is another user on the host, so reopening
//! `/dev/stdout` (`/proc/self/fd/1`), as nginx's `access.log -> /dev/stdout`
//! does, failed with EACCES. These pipes may be reopened by anyone in the
//! sandbox, whatever its user.
//!
//! A terminal on stdin stays as it is: a thread reading it would stop a
//! backgrounded supervisor (SIGTTIN) and take keys typed after the command
//! ended.

use std::fs::File;
use std::io::IsTerminal as _;
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

/// A pipe: the sandbox's end (the read end if `theirs_reads`), which
/// anyone may reopen through `/proc/self/fd`, and ours.
fn pipe(theirs_reads: bool) -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    let (theirs, ours) = if theirs_reads { (r, w) } else { (w, r) };
    fchmod(theirs.as_fd(), Mode::from_bits_truncate(0o666)).map_err(|e| Error::sys("fchmod of a pipe", e))?;
    Ok((theirs, ours))
}

/// The streams to give the command, and the relay of its output.
pub fn relay() -> Result<([Stdio; 3], Relay)> {
    let stdin = if std::io::stdin().is_terminal() {
        Stdio::inherit()
    } else {
        let (theirs, ours) = pipe(true)?;
        let mut ours = File::from(ours);
        // Not joined: a read of our stdin cannot be interrupted. It ends
        // at our EOF, or when the sandbox is gone (EPIPE).
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut ours);
        });
        Stdio::from(theirs)
    };
    let (out, out_relay) = output(std::io::stdout().as_fd())?;
    let (err, err_relay) = output(std::io::stderr().as_fd())?;
    Ok(([stdin, out, err], Relay { outputs: vec![out_relay, err_relay] }))
}

/// A pipe for an output stream of the command, copied to `to` (a stream
/// of ours, written directly: the copy moves pages from pipe to pipe where
/// it can) until the sandbox closes it, or until `to` fails (a closed
/// pipe: the command then gets EPIPE in turn, as it would have).
fn output(to: std::os::fd::BorrowedFd<'_>) -> Result<(Stdio, JoinHandle<()>)> {
    let mut to = File::from(to.try_clone_to_owned().map_err(|e| Error::io("duplicating an output stream", e))?);
    let (theirs, ours) = pipe(false)?;
    let mut ours = File::from(ours);
    let copying = std::thread::spawn(move || {
        let _ = std::io::copy(&mut ours, &mut to);
    });
    Ok((Stdio::from(theirs), copying))
}
