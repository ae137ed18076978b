//! End-to-end tests that drive the real `monofs` binary.

mod bad_input;
mod crash;
pub mod mount;
mod nfs;
mod nfs_client;
mod pjdfstest;
mod sync;
mod workflow;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory with a repository path inside.
pub struct Scratch {
    /// Kept alive for the test's duration.
    pub dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }
}

impl Scratch {
    /// A path inside it.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// The binary under test.
pub fn monofs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_monofs"));
    c.env_remove("MONOFS_PASSPHRASE");
    c
}

/// Runs monofs with `args` and extra `env`, whatever the outcome.
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
    let mut c = monofs();
    for a in args {
        c.arg(a);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run monofs")
}

/// Runs monofs, asserts success, returns stdout.
pub fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    ok_env(args, &[])
}

/// [`ok`] with extra environment variables.
pub fn ok_env(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> String {
    let out = run(args, env);
    assert!(
        out.status.success(),
        "monofs failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs monofs, asserts a clean failure (non-zero exit, an `error:` first
/// line, at most a hint after it, no panic), returns stderr.
pub fn fails(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> String {
    let out = run(args, env);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(lines.first().is_some_and(|l| l.starts_with("error: ")), "no error line: {err}");
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
        "more than one error line: {err}"
    );
    err
}

/// Initialises an unencrypted repository at `repo`.
pub fn init(repo: &Path) {
    ok(&[&"init", &repo]);
}
