//! cgroups: limits and accounting for a sandbox's processes, on v1 (one
//! hierarchy per controller) or v2 (one unified hierarchy), whichever the
//! host mounts; detected at run time from `/proc/self/mountinfo`.
//!
//! Each sandbox gets a group named `monocore-ID` directly under each
//! hierarchy's root, so `monocore clean` finds leftovers by name and the
//! hierarchy holds nothing of ours once a sandbox is gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::spec::Limits;

/// Name prefix of every sandbox's group.
pub const PREFIX: &str = "monocore-";

/// v1 controllers a sandbox uses.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// CFS period for `--cpus`, as Docker uses.
const CPU_PERIOD_US: u64 = 100_000;

/// Where the host mounts its cgroup hierarchies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: the mount point of each controller we use.
    V1(Vec<(String, PathBuf)>),
    /// cgroup v2: the unified hierarchy's mount point.
    V2(PathBuf),
}

impl Layout {
    /// Reads the host's layout. v2 counts only when mounted at
    /// `/sys/fs/cgroup` itself (a hybrid host's `unified` mount has no controllers).
    pub fn detect() -> Result<Layout> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("reading /proc/self/mountinfo", e))?;
        Ok(Self::parse(&info))
    }

    fn parse(mountinfo: &str) -> Layout {
        let mut v1 = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let Some(mount_point) = left.split(' ').nth(4) else { continue };
            let mut fields = right.split(' ');
            let (fstype, _source, options) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
            match fstype {
                Some("cgroup2") if mount_point == "/sys/fs/cgroup" => return Layout::V2(mount_point.into()),
                Some("cgroup") => {
                    for c in options.split(',').filter(|c| V1_CONTROLLERS.contains(c)) {
                        if !v1.iter().any(|(name, _)| name == c) {
                            v1.push((c.to_owned(), PathBuf::from(mount_point)));
                        }
                    }
                }
                _ => {}
            }
        }
        Layout::V1(v1)
    }

    /// `v1` or `v2`, for messages.
    pub fn version(&self) -> &'static str {
        match self {
            Layout::V1(_) => "v1",
            Layout::V2(_) => "v2",
        }
    }

    fn dirs(&self, name: &str) -> Vec<(Option<String>, PathBuf)> {
        match self {
            Layout::V1(controllers) => {
                controllers.iter().map(|(c, mount)| (Some(c.clone()), mount.join(name))).collect()
            }
            Layout::V2(root) => vec![(None, root.join(name))],
        }
    }
}

/// One sandbox's group (one directory per v1 controller).
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<(Option<String>, PathBuf)>,
    v2: bool,
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::io(format!("writing '{value}' to {}", path.display()), e))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The value of `key` in a `key value` per line file.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Cgroup {
    /// The group of sandbox `id` (not created).
    pub fn of(layout: &Layout, id: &str) -> Cgroup {
        Cgroup { dirs: layout.dirs(&format!("{PREFIX}{id}")), v2: matches!(layout, Layout::V2(_)) }
    }

    /// Creates the group of sandbox `id` with `limits`.
    pub fn create(layout: &Layout, id: &str, limits: &Limits) -> Result<Cgroup> {
        let group = Cgroup::of(layout, id);
        if let Layout::V2(root) = layout {
            // Controllers must be enabled in the parent for a child to use them.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
        }
        for (_, dir) in &group.dirs {
            std::fs::create_dir(dir).map_err(|e| Error::io(format!("creating cgroup {}", dir.display()), e))?;
        }
        if let Err(e) = group.limit(limits) {
            let _ = group.remove();
            return Err(e);
        }
        Ok(group)
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| self.v2 || c.as_deref() == Some(controller)).map(|(_, d)| d.as_path())
    }

    fn need(&self, controller: &str) -> Result<&Path> {
        self.dir(controller).ok_or_else(|| Error::Setup(format!("the host has no cgroup '{controller}' controller")))
    }

    fn limit(&self, limits: &Limits) -> Result<()> {
        if let Some(bytes) = limits.memory {
            let dir = self.need("memory")?;
            if self.v2 {
                write(&dir.join("memory.max"), &bytes.to_string())?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            } else {
                write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                // Without swap accounting the file is absent; with it, no swapping past the limit.
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes.to_string())?;
                }
            }
        }
        if let Some(cpus) = limits.cpus {
            let dir = self.need("cpu")?;
            let quota = ((cpus * CPU_PERIOD_US as f64) as u64).max(1000);
            if self.v2 {
                write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            } else {
                write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if let Some(pids) = limits.pids {
            write(&self.need("pids")?.join("pids.max"), &pids.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` (and so its future children) into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// How many times the kernel's OOM killer killed a process of the group.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = self.dir("memory") else { return 0 };
        let (file, key) = if self.v2 { ("memory.events", "oom_kill") } else { ("memory.oom_control", "oom_kill") };
        read(&dir.join(file)).and_then(|t| field(&t, key)).unwrap_or(0)
    }

    /// The most memory the group has used, in bytes.
    pub fn memory_peak(&self) -> Option<u64> {
        let dir = self.dir("memory")?;
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        read(&dir.join(file))?.trim().parse().ok()
    }

    /// The memory the group uses now, in bytes.
    pub fn memory_current(&self) -> Option<u64> {
        let dir = self.dir("memory")?;
        let file = if self.v2 { "memory.current" } else { "memory.usage_in_bytes" };
        read(&dir.join(file))?.trim().parse().ok()
    }

    /// Processes in the group.
    pub fn procs(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = Vec::new();
        for (_, dir) in &self.dirs {
            for p in read(&dir.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()) {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
        pids
    }

    /// SIGKILLs every process of the group until none is left (or 5 s pass).
    pub fn kill_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.procs();
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills what is left in the group and removes it.
    pub fn remove(&self) -> Result<()> {
        self.kill_all();
        for (_, dir) in &self.dirs {
            // The kernel refuses while exiting processes are still accounted; retry briefly.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if tries < 200 => {
                        tracing::debug!("removing {}: {e}; retrying", dir.display());
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(Error::io(format!("removing cgroup {}", dir.display()), e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn detects_v1_on_a_hybrid_host() {
        let Layout::V1(c) = Layout::parse(HYBRID) else { panic!("expected v1") };
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cpu", "memory", "pids"]);
        assert_eq!(c[1].1, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn detects_v2() {
        let info = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(Layout::parse(info), Layout::V2("/sys/fs/cgroup".into()));
        let combined = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let Layout::V1(c) = Layout::parse(combined) else { panic!("expected v1") };
        assert_eq!(c, vec![("cpu".to_owned(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))]);
    }

    #[test]
    fn reads_counters() {
        assert_eq!(field("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), Some(3));
        assert_eq!(field("low 0\noom 1\noom_kill 2\n", "oom"), Some(1));
        assert_eq!(field("", "oom_kill"), None);
    }
}
