//! End-to-end tests of `monocore` images: offline import and unpack
//! against `umoci unpack`, layer semantics, hostile and damaged input, and
//! pulls from a local registry. Test images are built offline with umoci
//! and busybox-static (`monofs_fixtures::oci`).

mod bad_input;
mod import;
mod registry;
mod sandbox;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory with its own `MONOCORE_HOME`.
pub struct Env {
    /// Kept alive for the test's duration.
    pub dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

impl Env {
    /// A fresh one.
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().expect("tempdir") }
    }

    /// A path inside it.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `MONOCORE_HOME`.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The image store repository.
    pub fn store(&self) -> PathBuf {
        self.home().join("store")
    }

    /// A monocore command with this home.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_monocore"));
        c.env("MONOCORE_HOME", self.home()).env("HOME", self.path("user-home"));
        c
    }

    /// Runs monocore with this home.
    pub fn run(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
        let mut c = self.command();
        for a in args {
            c.arg(a);
        }
        c.output().expect("run monocore")
    }

    /// Runs monocore, asserts success, returns stdout.
    pub fn ok(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "monocore {:?} failed:\n{}\n{}",
            args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs monocore, asserts a clean failure (exit 1, one `error:` line,
    /// maybe a hint, no panic), returns stderr.
    pub fn fails(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
        assert!(!err.contains("panicked"), "panic: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("WARN") && !l.contains(" WARN ")).collect();
        assert!(lines.first().is_some_and(|l| l.starts_with("error: ")), "no error line: {err}");
        assert!(
            lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
            "more than one error line: {err}"
        );
        err
    }

    /// Image names in the store.
    pub fn image_names(&self) -> Vec<String> {
        let out = self.ok(&[&"images", &"--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v.as_array().expect("array").iter().map(|i| i["name"].as_str().expect("name").to_owned()).collect()
    }
}

/// Whether umoci and busybox-static are installed; in CI their absence
/// fails the test, elsewhere it is skipped with a message.
pub fn have_tools(test: &str) -> bool {
    if monofs_fixtures::oci::tools_available() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "{test}: umoci and busybox-static are required in CI (scripts/deps.sh)");
    eprintln!("SKIP {test}: needs umoci and busybox-static (apt-get install umoci busybox-static)");
    false
}

/// The JSON printed by a `--json` command.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Asserts that `dir` does not exist or is empty.
pub fn assert_absent(p: &Path) {
    assert!(!p.exists(), "{} exists", p.display());
}
