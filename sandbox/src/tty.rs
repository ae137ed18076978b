//! `-t`: the command gets a pseudo-terminal of the sandbox's own `/dev/pts`
//! (made by its init); the supervisor relays the master side to its own
//! terminal, put in raw mode so keys (Ctrl-C included) reach the sandbox as
//! typed.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::error::{Error, Result};
use crate::sys;

/// The supervisor's end of a sandbox's terminal.
pub struct Pty {
    master: OwnedFd,
    saved: std::sync::Mutex<Option<Termios>>,
}

impl Pty {
    /// Relays `master`, the terminal the sandbox made for its command,
    /// sized as ours.
    pub fn new(master: OwnedFd) -> Pty {
        let pty = Pty { master, saved: std::sync::Mutex::new(None) };
        pty.resize();
        pty
    }

    /// Puts our terminal (if stdin is one) in raw mode until dropped.
    pub fn raw(&self) {
        let stdin = std::io::stdin();
        if let Ok(saved) = tcgetattr(stdin.as_fd()) {
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            if tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_ok()
                && let Ok(mut slot) = self.saved.lock()
            {
                *slot = Some(saved);
            }
        }
    }

    /// Copies our terminal's size to the sandbox's (on SIGWINCH); `false`
    /// when that is not a terminal here (a microVM's console, which the
    /// runtime resizes its own way).
    pub fn resize(&self) -> bool {
        match sys::window_size(std::io::stdin().as_raw_fd()) {
            Some(ws) => sys::set_window_size(self.master.as_raw_fd(), &ws).is_ok(),
            None => true,
        }
    }

    /// Starts copying stdin to the terminal (a detached thread: a read of
    /// our stdin cannot be interrupted) and the terminal to stdout; join the
    /// returned thread to get all output once the command has ended.
    pub fn relay(&self) -> Result<JoinHandle<()>> {
        let clone = || self.master.try_clone().map_err(|e| Error::io("duplicating the terminal", e));
        let mut input = std::fs::File::from(clone()?);
        let mut output = std::fs::File::from(clone()?);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut input);
        });
        Ok(std::thread::spawn(move || {
            let mut stdout = std::io::stdout();
            let mut buf = [0u8; 8192];
            // EIO once every holder of the other end has closed it.
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()).is_err() {
                    break;
                }
            }
        }))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(slot) = self.saved.lock()
            && let Some(saved) = slot.as_ref()
        {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}
