//! The socket between the supervisor and a namespace sandbox's init.
//!
//! Supervisor to init: the [`RunSpec`] (a little-endian `u32` length, then
//! JSON), then, when it has volumes, one message carrying their prepared
//! mounts as descriptors (in `spec.volumes` order). Init to supervisor,
//! with `-t`: one message carrying the master of the terminal the init made
//! in the sandbox's own `/dev/pts`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::spec::RunSpec;

/// Largest spec accepted (a spec is a few kilobytes).
const MAX_SPEC: u32 = 16 << 20;

/// Sends `spec`.
pub fn send_spec(sock: &mut UnixStream, spec: &RunSpec) -> std::io::Result<()> {
    let json = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(std::io::Error::other)?;
    sock.write_all(&len.to_le_bytes())?;
    sock.write_all(&json)
}

/// Receives the spec.
pub fn recv_spec(sock: &mut UnixStream) -> std::io::Result<RunSpec> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_SPEC {
        return Err(std::io::Error::other(format!("spec of {len} bytes")));
    }
    let mut json = vec![0u8; len as usize];
    sock.read_exact(&mut json)?;
    serde_json::from_slice(&json).map_err(std::io::Error::other)
}

/// Sends `fds` in one message.
pub fn send_fds(sock: &UnixStream, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [std::io::IoSlice::new(b"f")];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&raw)], MsgFlags::empty(), None)?;
    Ok(())
}

pub use crate::sys::recv_fds;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_and_descriptors_cross() {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        let spec: RunSpec = serde_json::from_str(
            r#"{"argv":["/bin/true"],"env":[],"workdir":"/","user":"","hostname":"h","tty":false,"volumes":[],
                "scope":"None","ids":{"first":100000,"count":65536},"rootfs":"/r","files":[],"seccomp":true}"#,
        )
        .expect("spec");
        send_spec(&mut a, &spec).expect("send");
        assert_eq!(recv_spec(&mut b).expect("recv"), spec);
        let file = tempfile::tempfile().expect("tempfile");
        send_fds(&a, &[std::os::fd::AsFd::as_fd(&file)]).expect("send fds");
        let got = recv_fds(&b, 1).expect("recv fds");
        assert_eq!(got.len(), 1);
        drop(a);
        assert!(recv_fds(&b, 1).is_err(), "EOF is an error");
    }
}
