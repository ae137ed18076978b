//! What a sandbox runs and under which limits: the options of `monocore
//! tmp`, parsed and checked before anything is created.

use std::path::PathBuf;

use monofs_overlay::spec::RunConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The command, its environment and the view of the host it gets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunSpec {
    /// Program and arguments (`argv[0]` is looked up in the sandbox's `PATH`).
    pub argv: Vec<String>,
    /// `NAME=value` entries, in order.
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    pub workdir: String,
    /// `user[:group]`, names or numbers, resolved in the sandbox's `/etc`.
    pub user: String,
    /// Host name inside the sandbox.
    pub hostname: String,
    /// Give the command a terminal.
    pub tty: bool,
    /// Host paths bound into the sandbox.
    pub volumes: Vec<Volume>,
    /// Network reach.
    pub scope: Scope,
    /// The host ids the sandbox's ids map to.
    pub ids: IdRange,
    /// Where the root file system is mounted on the host (set by the runtime).
    pub rootfs: PathBuf,
    /// Files given to the sandbox read-only, such as `/etc/resolv.conf`;
    /// the image's own file, if any, is covered, not changed.
    pub files: Vec<GivenFile>,
    /// Whether the command gets the system-call filter (namespace
    /// isolation; see `seccomp.rs`).
    pub seccomp: bool,
}

/// A file the supervisor gives the sandbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GivenFile {
    /// Absolute path inside the sandbox.
    pub path: String,
    /// What it holds.
    pub contents: String,
    /// Where the runtime put it on the host for the sandbox to bind.
    pub host: Option<PathBuf>,
}

/// `-v HOST:GUEST[:ro]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    /// Absolute host path.
    pub host: PathBuf,
    /// Absolute path inside the sandbox.
    pub guest: String,
    /// Bound read-only.
    pub read_only: bool,
}

impl Volume {
    /// Parses `HOST:GUEST[:ro|:rw]`; HOST must exist.
    pub fn parse(s: &str) -> Result<Volume> {
        let bad = |why: &str| Error::BadOption { option: "-v".into(), value: s.into(), why: why.into() };
        let parts: Vec<&str> = s.split(':').collect();
        let (host, guest, read_only) = match parts.as_slice() {
            [h, g] => (*h, *g, false),
            [h, g, "ro"] => (*h, *g, true),
            [h, g, "rw"] => (*h, *g, false),
            [_, _, _] => return Err(bad("the mode must be ro or rw")),
            _ => return Err(bad("expected HOST:GUEST[:ro]")),
        };
        if !guest.starts_with('/') || guest.split('/').any(|c| c == "..") {
            return Err(bad("GUEST must be an absolute path without '..'"));
        }
        // One spelling per path (`/a//b/.` is `/a/b`), for the duplicates
        // check of `arrange`.
        let guest: String = guest.split('/').filter(|c| !c.is_empty() && *c != ".").map(|c| format!("/{c}")).collect();
        if guest.is_empty() {
            return Err(bad("GUEST cannot be the sandbox's root"));
        }
        let host = std::fs::canonicalize(host).map_err(|e| bad(&format!("HOST: {e}")))?;
        Ok(Volume { host, guest, read_only })
    }

    /// Puts `volumes` in the order they are mounted in, parents before
    /// what they hold (`-v A:/a/b -v B:/a` hid `/a/b` under `/a`), as
    /// Docker does; two volumes at one path are refused (the last one
    /// silently won).
    pub fn arrange(mut volumes: Vec<Volume>) -> Result<Vec<Volume>> {
        volumes.sort_by_key(|v| v.guest.matches('/').count());
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = volumes.iter().find(|v| !seen.insert(v.guest.as_str())) {
            return Err(Error::BadOption {
                option: "-v".into(),
                value: twice.guest.clone(),
                why: "two volumes are mounted there".into(),
            });
        }
        Ok(volumes)
    }
}

/// How far the sandbox's network reaches.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Scope {
    /// Loopback only.
    #[default]
    None,
    /// The host and private networks (10/8, 172.16/12, 192.168/16).
    Local,
    /// Public addresses only, not the host's private networks.
    Public,
    /// Everything the host reaches.
    Any,
}

impl Scope {
    /// Parses `none|local|public|any`.
    pub fn parse(s: &str) -> Result<Scope> {
        match s {
            "none" => Ok(Scope::None),
            "local" => Ok(Scope::Local),
            "public" => Ok(Scope::Public),
            "any" => Ok(Scope::Any),
            _ => Err(Error::BadOption {
                option: "--scope".into(),
                value: s.into(),
                why: "expected none, local, public or any".into(),
            }),
        }
    }
}

/// The host ids `first..first+count` that the sandbox's ids `0..count` are.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdRange {
    /// Host id of the sandbox's root.
    pub first: u32,
    /// How many ids.
    pub count: u32,
}

impl IdRange {
    /// The range of sandbox `slot`: 65536 ids from 100000 on, as rootless
    /// Podman's default subordinate ranges, one block per running sandbox so
    /// two sandboxes never share an owner on the host.
    pub fn for_slot(slot: u32) -> IdRange {
        IdRange { first: 100_000 + slot * 65_536, count: 65_536 }
    }
}

/// Resource limits (cgroups).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// CPUs (1.5 = one and a half cores of time).
    pub cpus: Option<f64>,
    /// Processes and threads.
    pub pids: Option<u64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.cpus.is_some() || self.pids.is_some()
    }
}

/// Parses `512m`, `1g`, `1.5GiB`, `1048576` (bytes; k/m/g/t are powers of 1024 as Docker's).
pub fn parse_memory(s: &str) -> Result<u64> {
    let bad = |why: &str| Error::BadOption { option: "--memory".into(), value: s.into(), why: why.into() };
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match lower.char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1u64 << 10),
        Some((i, 'm')) => (&lower[..i], 1 << 20),
        Some((i, 'g')) => (&lower[..i], 1 << 30),
        Some((i, 't')) => (&lower[..i], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad("expected a size such as 512m or 2g"))?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad("must be positive"));
    }
    let bytes = n * mult as f64;
    if bytes < (4 << 20) as f64 {
        return Err(bad("must be at least 4m"));
    }
    // The kernel's own "no limit" is 2^63 rounded down to a page; anything
    // near it is a typo, not a limit.
    if bytes >= (1u64 << 60) as f64 {
        return Err(bad("too large for a memory limit"));
    }
    Ok(bytes as u64)
}

/// Parses `--cpus` (a positive number of cores, at most this host's).
pub fn parse_cpus(s: &str) -> Result<f64> {
    let bad = |why: String| Error::BadOption { option: "--cpus".into(), value: s.into(), why };
    let n: f64 = s.trim().parse().map_err(|_| bad("expected a number of CPUs such as 0.5 or 2".into()))?;
    let host = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    if !n.is_finite() || n < 0.01 {
        return Err(bad("must be at least 0.01".into()));
    }
    if n > host {
        return Err(bad(format!("this host has {host} CPUs")));
    }
    Ok(n)
}

/// Parses `--pids` (at least 1).
pub fn parse_pids(s: &str) -> Result<u64> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_PIDS).contains(&n) => Ok(n),
        _ => Err(Error::BadOption {
            option: "--pids".into(),
            value: s.into(),
            why: format!("expected a whole number from 1 to {MAX_PIDS}"),
        }),
    }
}

/// The most processes a pids cgroup can be limited to (the kernel's
/// PID_MAX_LIMIT); more is refused when written, after the sandbox was made.
const MAX_PIDS: u64 = 4 << 20;

/// Builds the command line Docker would run: `cmd` replaces the image's
/// `Cmd` and keeps its `Entrypoint`.
pub fn command_line(config: &RunConfig, cmd: &[String]) -> Result<Vec<String>> {
    let mut argv = config.entrypoint.clone().unwrap_or_default();
    if cmd.is_empty() {
        argv.extend(config.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(cmd.iter().cloned());
    }
    if argv.is_empty() {
        return Err(Error::NoCommand);
    }
    Ok(argv)
}

/// The image's environment with `overrides` (`K=V`, or `K` to take the
/// host's value) applied, plus defaults for `PATH`, `HOME` and `HOSTNAME`.
pub fn environment(config: &RunConfig, overrides: &[String], hostname: &str, tty: bool) -> Result<Vec<String>> {
    // A later entry replaces an earlier one of the same name and goes
    // last; one pass whatever the count (an image may hold many).
    let mut env: Vec<Option<String>> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        if let Some(old) = at.insert(key, env.len()) {
            env[old] = None;
        }
        env.push(Some(entry));
    };
    set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    set(format!("HOSTNAME={hostname}"));
    if tty {
        set("TERM=xterm".into());
    }
    for e in config.env.iter().flatten() {
        set(e.clone());
    }
    for o in overrides {
        let entry = match o.split_once('=') {
            // `-e ''` as `-e =V`: no name to set.
            _ if o.is_empty() || o.starts_with('=') => {
                return Err(Error::BadOption { option: "-e".into(), value: o.clone(), why: "empty name".into() });
            }
            Some(_) => o.clone(),
            None => match std::env::var(o) {
                Ok(v) => format!("{o}={v}"),
                Err(_) => continue,
            },
        };
        set(entry);
    }
    Ok(env.into_iter().flatten().collect())
}

/// The largest `--env-file`: more than any environment a command can be
/// started with (Linux takes a few MiB of arguments and environment).
const ENV_FILE_MAX: u64 = 8 << 20;

/// Reads `--env-file`: `K=V` lines (or `K`, taken from this environment);
/// blank lines and `#` comments skipped. A line with an empty name is an
/// error naming the file and line.
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let io = |e| Error::Io { what: format!("reading {}", path.display()), source: e };
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(io)?;
    std::io::Read::read_to_string(&mut std::io::Read::take(file, ENV_FILE_MAX + 1), &mut text).map_err(io)?;
    if text.len() as u64 > ENV_FILE_MAX {
        let why = format!("larger than {} MiB", ENV_FILE_MAX >> 20);
        return Err(Error::BadOption { option: "--env-file".into(), value: path.display().to_string(), why });
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('=') {
            return Err(Error::BadOption {
                option: "--env-file".into(),
                value: format!("{}:{n}", path.display()),
                why: format!("'{line}' has an empty name"),
            });
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_name_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("env");
        std::fs::write(&path, "# comment\nA=1\n\n=bad\n").expect("write");
        let err = read_env_file(&path).expect_err("=bad").to_string();
        assert!(err.contains(&format!("{}:4", path.display())) && err.contains("empty name"), "{err}");
        let config = RunConfig::default();
        for bad in ["", "=v"] {
            let err = environment(&config, &[bad.to_owned()], "h", false).expect_err("empty name").to_string();
            assert!(err.contains("empty name"), "{bad:?}: {err}");
        }
        std::fs::write(&path, "A=1\n  B=two words \nC\n").expect("write");
        assert_eq!(read_env_file(&path).expect("read"), ["A=1", "B=two words", "C"]);
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m").ok(), Some(512 << 20));
        assert_eq!(parse_memory("1g").ok(), Some(1 << 30));
        assert_eq!(parse_memory("1.5GiB").ok(), Some(3 << 29));
        assert_eq!(parse_memory("8388608").ok(), Some(8 << 20));
        for bad in
            ["", "x", "-1m", "0", "1k", "nanm", "99999999999999999999", "18446744073709551615", "9999999999g", "inf"]
        {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5").ok(), Some(0.5));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("100000").is_err());
        assert!(parse_cpus("two").is_err());
        assert_eq!(parse_pids("64").ok(), Some(64));
        assert!(parse_pids("0").is_err());
        assert_eq!(parse_pids("4194304").ok(), Some(4_194_304));
        assert!(parse_pids("4194305").is_err(), "over PID_MAX_LIMIT: the cgroup refuses it");
    }

    #[test]
    fn volumes() {
        let v = Volume::parse("/tmp:/data:ro").expect("parses");
        assert_eq!((v.guest.as_str(), v.read_only), ("/data", true));
        assert!(Volume::parse("/tmp:data").is_err());
        assert!(Volume::parse("/tmp:/").is_err());
        assert!(Volume::parse("/tmp:/a/../b").is_err());
        assert!(Volume::parse("/tmp:/a:rx").is_err());
        assert!(Volume::parse("/does/not/exist:/a").is_err());
        assert_eq!(Volume::parse("/tmp://a//b/./").expect("parses").guest, "/a/b");
        let v = |s: &str| Volume::parse(s).expect("parses");
        let arranged = Volume::arrange(vec![v("/tmp:/a/b/c"), v("/tmp:/a/b"), v("/tmp:/x"), v("/tmp:/a")]).expect("ok");
        let order: Vec<&str> = arranged.iter().map(|v| v.guest.as_str()).collect();
        assert_eq!(order, ["/x", "/a", "/a/b", "/a/b/c"]);
        assert!(Volume::arrange(vec![v("/tmp:/a"), v("/tmp:/b"), v("/tmp://a/")]).is_err());
    }

    #[test]
    fn docker_command_semantics() {
        let config = RunConfig {
            entrypoint: Some(vec!["/bin/ep".into()]),
            cmd: Some(vec!["default".into()]),
            ..RunConfig::default()
        };
        assert_eq!(command_line(&config, &[]).ok(), Some(vec!["/bin/ep".into(), "default".into()]));
        assert_eq!(command_line(&config, &["x".into()]).ok(), Some(vec!["/bin/ep".into(), "x".into()]));
        assert!(command_line(&RunConfig::default(), &[]).is_err());
    }

    #[test]
    fn environment_overrides() {
        let config = RunConfig { env: Some(vec!["PATH=/bin".into(), "A=1".into()]), ..RunConfig::default() };
        let env = environment(&config, &["A=2".into(), "B=3".into()], "h", false).expect("env");
        assert!(env.contains(&"PATH=/bin".to_owned()));
        assert!(env.contains(&"A=2".to_owned()) && !env.contains(&"A=1".to_owned()));
        assert!(env.contains(&"B=3".to_owned()) && env.contains(&"HOSTNAME=h".to_owned()));
        assert!(environment(&config, &["=x".into()], "h", false).is_err());
    }
}
