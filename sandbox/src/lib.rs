//! Sandbox runtimes for monocore: run an OCI image's command on a
//! copy-on-write monofs root file system, isolated by namespaces (or a
//! microVM), and leave nothing behind.
//!
//! [`sandbox::run`] is the whole life of one sandbox; [`runtime::Runtime`]
//! is what an isolation level implements; [`init`] is the code that runs
//! inside a namespace sandbox; [`sandbox::clean`], [`sandbox::stop`] and
//! [`sandbox::list`] serve `monocore clean`, `stop` and `ps`.

pub mod cgroup;
pub mod channel;
pub mod config;
pub mod error;
pub mod init;
pub mod microvm;
pub mod mounts;
pub mod namespace;
pub mod net;
pub mod netns;
pub mod rootfs;
pub mod runtime;
pub mod sandbox;
mod seccomp;
pub mod spec;
pub mod state;
mod stdio;
mod sys;
pub mod tty;
pub mod user;

pub use error::{Error, Result};
pub use sandbox::{Ending, Isolation, Options, Outcome};
