//! The control socket: while a repository is mounted, the mount process
//! owns its store, so other `monofs` commands on it are sent here and run
//! inside the mount process (after it flushes its edits), their output
//! returned to the caller.
//!
//! Protocol: one JSON request line `{"argv": [...], "cwd": "..."}`, one JSON
//! reply line `{"code": N, "out": "...", "err": "..."}`. A request with
//! `"flush": true` (and no argv) only stores the pending edits: `detach`
//! asks for that before it unmounts. The socket lives in the repository
//! directory with mode 0600.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::args::Cli;
use crate::commands::{self, Ctx};
use crate::served::Served;

/// The socket of repository `repo`.
pub fn socket_path(repo: &Path) -> PathBuf {
    repo.join(monofs::repo::CONTROL_SOCKET)
}

#[derive(Serialize, Deserialize)]
struct Request {
    #[serde(default)]
    argv: Vec<String>,
    #[serde(default)]
    cwd: PathBuf,
    /// Only store the pending edits.
    #[serde(default)]
    flush: bool,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    code: u8,
    out: String,
    err: String,
}

/// Sends the current command to the process that mounts `repo`, if one
/// does; `None` when nobody listens.
pub fn forward(repo: &Path) -> Option<anyhow::Result<ExitCode>> {
    let stream = UnixStream::connect(socket_path(repo)).ok()?;
    Some(forward_to(stream))
}

fn forward_to(stream: UnixStream) -> anyhow::Result<ExitCode> {
    let request = Request {
        argv: std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect(),
        // Relative paths in the command are the mount process's to resolve.
        cwd: std::env::current_dir().map_err(|e| {
            anyhow::anyhow!("the current directory is gone ({e}; a checkout may have removed it): cd to another one")
        })?,
        flush: false,
    };
    let reply = exchange(stream, &request)?;
    print!("{}", reply.out);
    eprint!("{}", reply.err);
    Ok(ExitCode::from(reply.code))
}

/// Asks the process that mounts `repo` to store its pending edits; `None`
/// when nobody listens. The error carries the mount's own message.
pub fn flush(repo: &Path) -> Option<anyhow::Result<()>> {
    let stream = UnixStream::connect(socket_path(repo)).ok()?;
    let request = Request { argv: Vec::new(), cwd: PathBuf::new(), flush: true };
    Some(exchange(stream, &request).and_then(|reply| match reply.code {
        // 2: a mount process from before flush requests took it for a bad
        // command line; it stores its changes after the unmount.
        0 | 2 => Ok(()),
        _ => Err(anyhow::anyhow!("{}", reply.err.trim())),
    }))
}

fn exchange(mut stream: UnixStream, request: &Request) -> anyhow::Result<Reply> {
    writeln!(stream, "{}", serde_json::to_string(request)?)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    anyhow::ensure!(
        !line.is_empty(),
        "the mount process serving this repository ended without answering (see its log; `monofs detach` cleans up \
         after it)"
    );
    serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("bad reply from the mount process: {e}"))
}

/// Serves requests until the listener fails.
pub fn serve(listener: UnixListener, served: Arc<Served>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Err(e) = handle(stream, &served) {
            tracing::warn!("control request failed: {e}");
        }
    }
}

fn handle(stream: UnixStream, served: &Served) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let request: Request = serde_json::from_str(&line)?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = if request.flush {
        match served.vfs.flush() {
            Ok(_) => 0,
            Err(e) => {
                err.extend_from_slice(e.to_string().as_bytes());
                1
            }
        }
    } else {
        run(&request, served, &mut out, &mut err)
    };
    let reply = Reply {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    };
    let mut stream = stream;
    writeln!(stream, "{}", serde_json::to_string(&reply)?)?;
    Ok(())
}

/// Runs a forwarded command; returns its exit code.
fn run(request: &Request, served: &Served, out: &mut Vec<u8>, err: &mut Vec<u8>) -> u8 {
    match Cli::try_parse_from(&request.argv) {
        Ok(mut cli) => {
            cli.command.absolutize(&request.cwd);
            let mut ctx = Ctx { out, err, served: Some(served) };
            match commands::run(cli.command, &mut ctx) {
                Ok(code) => u8::from(code != ExitCode::SUCCESS),
                Err(e) => {
                    crate::report(ctx.err, &e);
                    1
                }
            }
        }
        Err(e) => {
            err.extend_from_slice(e.to_string().as_bytes());
            2
        }
    }
}
