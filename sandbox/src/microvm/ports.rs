//! The host ends of the guest's virtio-serial ports: one Unix socket each,
//! on which we listen and QEMU connects (so EOF means QEMU is gone), and
//! the threads copying between them and the supervisor's standard streams.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Listening sockets, one per port.
pub struct Ports {
    listeners: Vec<UnixListener>,
}

impl Ports {
    /// Listens on `paths`.
    pub fn bind(paths: &[PathBuf]) -> Result<Ports> {
        let listeners = paths
            .iter()
            .map(|p| UnixListener::bind(p).map_err(|e| Error::io(format!("listening on {}", p.display()), e)))
            .collect::<Result<_>>()?;
        Ok(Ports { listeners })
    }

    /// QEMU's connections, in the order of the paths; fails when `qemu`
    /// exits first or `deadline` passes.
    pub fn accept(self, qemu: &mut Child, deadline: Instant) -> Result<Vec<UnixStream>> {
        let mut out: Vec<Option<UnixStream>> = self.listeners.iter().map(|_| None).collect();
        for l in &self.listeners {
            l.set_nonblocking(true).map_err(|e| Error::io("setting up the VM's ports", e))?;
        }
        loop {
            for (slot, l) in out.iter_mut().zip(&self.listeners) {
                if slot.is_some() {
                    continue;
                }
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).map_err(|e| Error::io("setting up the VM's ports", e))?;
                        *slot = Some(s);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Error::io("accepting QEMU's port connection", e)),
                }
            }
            if out.iter().all(Option::is_some) {
                return Ok(out.into_iter().flatten().collect());
            }
            if let Ok(Some(status)) = qemu.try_wait() {
                return Err(Error::Setup(format!("QEMU exited while starting ({status})")));
            }
            if Instant::now() > deadline {
                return Err(Error::Setup("QEMU did not connect the VM's ports in time".into()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// When the first byte of output arrived.
pub type FirstOutput = Arc<Mutex<Option<Instant>>>;

/// Copies `from` to `to` until EOF (QEMU closed the port), noting the time
/// of the first byte in `first`. Write errors (a closed pipe) drop output
/// but keep reading, so the guest never blocks on us.
pub fn pump_out(mut from: UnixStream, mut to: impl Write + Send + 'static, first: FirstOutput) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut open = true;
        each_read(&mut from, |piece| {
            if let Ok(mut f) = first.lock() {
                f.get_or_insert_with(Instant::now);
            }
            if open {
                open = to.write_all(piece).and_then(|()| to.flush()).is_ok();
            }
            true
        });
    })
}

/// Reads `from` until EOF or an error, passing each piece read to `each`
/// until it returns `false`.
fn each_read(from: &mut impl Read, mut each: impl FnMut(&[u8]) -> bool) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
            Ok(n) => {
                if !each(&buf[..n]) {
                    return;
                }
            }
        }
    }
}

/// Copies `from` into the guest's stdin port. At EOF it closes the socket,
/// which QEMU turns into the port's host side closing, and the guest's
/// reader sees EOF after the data. But QEMU reads the socket only while the
/// guest has the port open, and drops what is unread when the socket
/// closes, so the close waits until QEMU has read everything (or is gone).
/// Not joined: it may block on a terminal that never sends anything.
pub fn pump_in(mut from: impl Read + Send + 'static, mut to: UnixStream) {
    std::thread::spawn(move || {
        each_read(&mut from, |piece| to.write_all(piece).is_ok());
        while crate::sys::unread_bytes(&to).is_ok_and(|n| n > 0) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_accepted_in_order_and_pumped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
        let ports = Ports::bind(&paths).expect("bind");
        let mut sleeper = std::process::Command::new("sleep").arg("5").spawn().expect("sleep");
        let (pb, pa) = (paths[1].clone(), paths[0].clone());
        let client = std::thread::spawn(move || {
            let b = UnixStream::connect(pb).expect("b");
            let a = UnixStream::connect(pa).expect("a");
            (a, b)
        });
        let got = ports.accept(&mut sleeper, Instant::now() + Duration::from_secs(5)).expect("accept");
        let (mut a, _b) = client.join().expect("client");
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let mut it = got.into_iter();
        let server_a = it.next().expect("a");
        let sink = Arc::new(Mutex::new(Vec::new()));
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::Error::other("lock"))?.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let first: FirstOutput = Arc::default();
        let pump = pump_out(server_a, Sink(sink.clone()), first.clone());
        a.write_all(b"hello").expect("write");
        drop(a);
        pump.join().expect("pump");
        assert_eq!(&*sink.lock().expect("sink"), b"hello");
        assert!(first.lock().expect("first").is_some());
    }

    #[test]
    fn a_dead_qemu_ends_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = Ports::bind(&[dir.path().join("x")]).expect("bind");
        let mut done = std::process::Command::new("true").spawn().expect("true");
        let err = ports.accept(&mut done, Instant::now() + Duration::from_secs(5)).expect_err("no connection");
        assert!(err.to_string().contains("QEMU exited"), "{err}");
    }
}
