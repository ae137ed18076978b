//! What is running: one directory per sandbox under
//! `MONOCORE_HOME/sandboxes/ID`, holding `state.json`. `ps`, `stop` and `clean` read these; a record whose
//! supervisor is gone marks resources that `clean` must release.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::Scope;

const STATE_FILE: &str = "state.json";

/// One sandbox's record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Sandbox id (hex).
    pub id: String,
    /// Image name as given.
    pub image: String,
    /// The command line.
    pub command: Vec<String>,
    /// Unix time it was created.
    pub created: u64,
    /// Isolation level.
    pub isolation: String,
    /// Network scope.
    pub scope: Scope,
    /// Id-range and address slot.
    pub slot: u32,
    /// The supervising `monocore` process.
    pub supervisor: Process,
    /// The sandbox's outermost process, once started.
    pub init: Option<Process>,
}

/// A process, identified beyond its pid by its start time so a reused pid
/// is never mistaken for it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    /// Host pid.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

impl Process {
    /// The process `pid`, if it runs.
    pub fn of(pid: u32) -> Option<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may hold anything.
        let rest = &stat[stat.rfind(')')? + 2..];
        let start = rest.split(' ').nth(19)?.parse().ok()?;
        Some(Process { pid, start })
    }

    /// This process.
    pub fn current() -> Option<Process> {
        Process::of(std::process::id())
    }

    /// Whether it still runs (and is not a zombie of it).
    pub fn alive(&self) -> bool {
        Process::of(self.pid) == Some(*self)
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.starts_with(" Z")))
                .unwrap_or(true)
    }
}

/// Resident memory of process `root` and all its descendants (their RSS,
/// summed; pages they share are counted once per process), from /proc.
pub fn tree_resident(root: u32) -> Option<u64> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Field 4, after the parenthesised command name.
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split(' ').nth(2)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
    let (mut total, mut todo, mut found) = (0u64, vec![root], false);
    while let Some(pid) = todo.pop() {
        // statm: size resident shared ... in pages.
        if let Some(pages) = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split(' ').nth(1).and_then(|r| r.parse::<u64>().ok()))
        {
            total += pages * page;
            found = true;
        }
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    found.then_some(total)
}

/// `MONOCORE_HOME/sandboxes`.
pub fn sandboxes_dir(home: &Path) -> PathBuf {
    home.join("sandboxes")
}

impl Record {
    /// The sandbox's directory.
    pub fn dir(&self, home: &Path) -> PathBuf {
        sandboxes_dir(home).join(&self.id)
    }

    /// Whether its supervisor still runs.
    pub fn running(&self) -> bool {
        self.supervisor.alive()
    }

    /// Creates the sandbox's directory (private to root) and writes the record.
    pub fn create(&self, home: &Path) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.dir(home);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        self.save(home)
    }

    /// Rewrites the record (atomically: a reader never sees half of it).
    pub fn save(&self, home: &Path) -> Result<()> {
        let dir = self.dir(home);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Setup(e.to_string()))?;
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, dir.join(STATE_FILE)))
            .map_err(|e| Error::io(format!("writing {}", dir.join(STATE_FILE).display()), e))
    }

    /// Removes the sandbox's directory.
    pub fn remove(&self, home: &Path) -> Result<()> {
        let dir = self.dir(home);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
        }
    }
}

/// Every sandbox record under `home`, oldest first. Directories without a
/// readable record (a supervisor killed while creating one) come back as
/// bare ids in the second list.
pub fn list(home: &Path) -> (Vec<Record>, Vec<String>) {
    let (mut records, mut orphans) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(sandboxes_dir(home)).into_iter().flatten().flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else { continue };
        match std::fs::read(entry.path().join(STATE_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(r) => records.push(r),
            None => orphans.push(id),
        }
    }
    records.sort_by(|a: &Record, b: &Record| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    (records, orphans)
}

/// The running sandbox whose id starts with `prefix`.
pub fn find(home: &Path, prefix: &str) -> Result<Record> {
    let (records, _) = list(home);
    let mut matches = records.into_iter().filter(|r| !prefix.is_empty() && r.id.starts_with(prefix));
    match (matches.next(), matches.next()) {
        (Some(r), None) => Ok(r),
        (Some(_), Some(_)) => Err(Error::BadOption {
            option: "ID".into(),
            value: prefix.into(),
            why: "matches several sandboxes; give more of it".into(),
        }),
        (None, _) => Err(Error::NoSuchSandbox(prefix.into())),
    }
}

/// Where slot claims live: one file per slot in use on this host, across
/// every `MONOCORE_HOME`, holding its owner.
pub const SLOTS_DIR: &str = "/run/monocore/slots";

/// A claimed slot: its id range and network addresses are this sandbox's
/// alone on this host until it is dropped. A claim is a lock on the slot's
/// file, which the kernel releases when its holder dies: no claim outlives
/// its process, and no two processes can take over one left behind at
/// once (with claims made by creating files, two could both see a dead
/// owner's claim, and both take the slot).
#[derive(Debug)]
pub struct Slot {
    n: u32,
    path: PathBuf,
    /// Holds the lock.
    _file: std::fs::File,
}

impl Slot {
    /// Claims the lowest free slot for the process `owner` (written in the
    /// file, for people to read).
    pub fn claim(owner: Process) -> Result<Slot> {
        Self::claim_in(Path::new(SLOTS_DIR), owner)
    }

    fn claim_in(dir: &Path, owner: Process) -> Result<Slot> {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let json = serde_json::to_vec(&owner).map_err(|e| Error::Setup(e.to_string()))?;
        let mut n = 0;
        while n < MAX_SLOTS {
            let path = dir.join(n.to_string());
            let io = |e| Error::io(format!("claiming {}", path.display()), e);
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    n += 1;
                    continue;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            // Locked after its holder removed it (a release): that file is
            // no claim any more; try the path again.
            let same = std::fs::metadata(&path).is_ok_and(|m| file.metadata().is_ok_and(|f| f.ino() == m.ino()));
            if !same {
                continue;
            }
            file.set_len(0).and_then(|()| file.write_all(&json)).map_err(io)?;
            return Ok(Slot { n, path, _file: file });
        }
        Err(Error::Setup(format!("all {MAX_SLOTS} sandbox slots of this host are in use")))
    }

    /// The slot's number.
    pub fn number(&self) -> u32 {
        self.n
    }

    /// Removes the claims of slots no process holds (their owners were
    /// killed), only while it holds their lock.
    pub fn sweep() {
        Self::sweep_in(Path::new(SLOTS_DIR));
    }

    fn sweep_in(dir: &Path) {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(&path) else { continue };
            // Still the file at that path once locked: its owner may have
            // released it meanwhile and a new claim taken the path, whose
            // file must stay (as `claim_in` checks).
            let same = || std::fs::metadata(&path).is_ok_and(|m| file.metadata().is_ok_and(|f| f.ino() == m.ino()));
            if file.try_lock().is_ok() && same() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes with the file after.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sandboxes that can run at once on one host (their id ranges stay below 2^31).
const MAX_SLOTS: u32 = 16_384;

#[cfg(test)]
mod tests {

    #[test]
    fn resident_memory_of_a_process_tree() {
        let mut child = std::process::Command::new("sleep").arg("10").spawn().expect("sleep");
        let alone = tree_resident(child.id()).expect("the child");
        let tree = tree_resident(std::process::id()).expect("this process");
        assert!(alone > 0 && tree > alone, "{alone} {tree}");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree_resident(u32::MAX - 1), None);
    }
    use super::*;

    #[test]
    fn slots_are_exclusive_and_stale_claims_are_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = Process::current().expect("own stat");
        let a = Slot::claim_in(dir.path(), me).expect("first");
        let b = Slot::claim_in(dir.path(), me).expect("second");
        assert_eq!((a.number(), b.number()), (0, 1));
        drop(a);
        let again = Slot::claim_in(dir.path(), me).expect("freed");
        assert_eq!(again.number(), 0);
        // A claim file left by a dead owner holds no lock: free.
        let ghost = Process { pid: me.pid, start: me.start + 1 };
        std::fs::write(dir.path().join("2"), serde_json::to_vec(&ghost).expect("json")).expect("ghost claim");
        assert_eq!(Slot::claim_in(dir.path(), me).expect("taken over").number(), 2);
        // Many at once over the same dead claims: each slot once.
        for n in 3..40 {
            std::fs::write(dir.path().join(n.to_string()), serde_json::to_vec(&ghost).expect("json")).expect("ghost");
        }
        let claims: Vec<Slot> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..24).map(|_| s.spawn(|| Slot::claim_in(dir.path(), me).expect("claim"))).collect();
            racers.into_iter().map(|r| r.join().expect("racer")).collect()
        });
        let mut numbers: Vec<u32> = claims.iter().map(Slot::number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 24, "a slot was claimed twice");
    }

    /// `clean` removes the claims of dead owners (they stayed, one file
    /// each), never a held one.
    #[test]
    fn sweeping_removes_only_claims_no_one_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = Process::current().expect("own stat");
        let held = Slot::claim_in(dir.path(), me).expect("claim");
        for n in 1..5 {
            std::fs::write(dir.path().join(n.to_string()), b"{}").expect("dead claim");
        }
        Slot::sweep_in(dir.path());
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, ["0"], "held: slot {}", held.number());
        assert_eq!(Slot::claim_in(dir.path(), me).expect("claim").number(), 1);
    }

    fn record(id: &str, slot: u32, supervisor: Process) -> Record {
        Record {
            id: id.into(),
            image: "bb".into(),
            command: vec!["true".into()],
            created: 1,
            isolation: "namespace".into(),
            scope: Scope::None,
            slot,
            supervisor,
            init: None,
        }
    }

    #[test]
    fn records_round_trip_and_resolve_by_prefix() {
        let home = tempfile::tempdir().expect("tempdir");
        let me = Process::current().expect("own stat");
        assert!(me.alive());
        let a = record("abc123", 0, me);
        let b = record("abd456", 1, Process { pid: me.pid, start: me.start + 1 });
        a.create(home.path()).expect("create a");
        b.create(home.path()).expect("create b");
        std::fs::create_dir_all(sandboxes_dir(home.path()).join("half")).expect("mkdir");
        let (records, orphans) = list(home.path());
        assert_eq!(records.len(), 2);
        assert_eq!(orphans, vec!["half".to_owned()]);
        assert_eq!(find(home.path(), "abc").expect("abc").id, "abc123");
        assert!(find(home.path(), "ab").is_err());
        assert!(find(home.path(), "zz").is_err());
        assert!(!records.iter().find(|r| r.id == "abd456").expect("b").running(), "a reused pid is not the supervisor");
        a.remove(home.path()).expect("remove");
        assert!(!a.dir(home.path()).exists());
    }
}
