//! Real FUSE mounts through the kernel: bytes and metadata read back,
//! commands while mounted, checkout under a mount, detach, remount, kill -9,
//! corruption, and a randomized comparison against a plain directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use monofs_fixtures::{Rng, SmallFs, assert_same_tree, make_tree, write};

use super::{Scratch, fails, init, monofs, ok, run};

/// Whether this machine can mount FUSE file systems; CI must.
pub fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists() && monofs_fixtures::is_root();
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to mount FUSE (root and /dev/fuse)");
        eprintln!("skipping: FUSE mounts need root and /dev/fuse");
    }
    ok
}

fn is_mounted(mnt: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = mnt.to_string_lossy().into_owned();
    info.lines().any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

/// A `monofs mount` process, detached on drop.
pub struct Mount {
    child: Child,
    /// The mount point.
    pub mnt: PathBuf,
}

impl Mount {
    /// Mounts `repo` on `mnt` and waits until the mount answers.
    pub fn start(repo: &Path, mnt: &Path, extra: &[&str]) -> Mount {
        Mount::start_logging_to(repo, mnt, extra, Stdio::null())
    }

    /// [`Mount::start`] with the mount process's stderr (its log) on `log`.
    pub fn start_logging_to(repo: &Path, mnt: &Path, extra: &[&str], log: Stdio) -> Mount {
        Mount::start_env(repo, mnt, extra, log, &[])
    }

    /// [`Mount::start_logging_to`] with `env` set for the mount process.
    pub fn start_env(repo: &Path, mnt: &Path, extra: &[&str], log: Stdio, env: &[(&str, &str)]) -> Mount {
        // A stale mount point cannot even be stat'ed; the mount cleans it.
        let _ = std::fs::create_dir_all(mnt);
        let child = monofs()
            .envs(env.iter().copied())
            .arg("mount")
            .arg(repo)
            .arg(mnt)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mount");
        let mut m = Mount { child, mnt: std::path::absolute(mnt).expect("absolute") };
        for _ in 0..200 {
            // A stale mount left by a killed process is listed too, but
            // cannot be stat'ed.
            if is_mounted(&m.mnt) && std::fs::metadata(&m.mnt).is_ok() {
                return m;
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("mount exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mount did not come up");
    }

    /// Detaches and checks the mount process ended well.
    pub fn detach(mut self) {
        ok(&[&"detach", &self.mnt]);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "mount process exited with {status}");
        assert!(!is_mounted(&self.mnt));
        std::mem::forget(self);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = monofs().arg("detach").arg("--force").arg(&self.mnt).output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh repository mounted in a scratch directory. Fields drop in
/// order: the mount goes before the directory holding it.
struct Fresh {
    m: Mount,
    repo: PathBuf,
    s: Scratch,
}

/// [`Fresh`], mounted with `extra` options; `None` (the test skips) where
/// this machine cannot mount FUSE.
fn fresh_mount(extra: &[&str]) -> Option<Fresh> {
    if !fuse_available() {
        return None;
    }
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    Some(Fresh { m: Mount::start(&repo, &s.path("mnt"), extra), repo, s })
}

fn sh(cmd: &str) {
    let status = std::process::Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(status.success(), "{cmd}");
}

#[test]
fn drive_round_trip_commit_checkout_remount() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::default();
    let (repo, mnt, data) = (s.path("repo"), s.path("mnt"), s.path("data"));
    make_tree(&data);
    init(&repo);
    let m = Mount::start(&repo, &mnt, &[]);
    sh(&format!("cp -a {}/. {}/", data.display(), m.mnt.display()));
    assert_same_tree(&data, &m.mnt);
    // df -i: inodes in use are the total less the free ones (it showed a
    // negative count, the free ones being more than the total).
    let fs = nix::sys::statvfs::statvfs(&m.mnt).expect("statvfs");
    let used = fs.files() - fs.files_free();
    assert!(fs.files() >= fs.files_free() && (5..100_000).contains(&used), "{} - {}", fs.files(), fs.files_free());
    let first = ok(&[&"commit", &repo, &"-m", &"copied in"]);
    assert_eq!(first.trim().len(), 64);
    // A directory's snapshot would replace the mounted tree: refused.
    let err = fails(&[&"commit", &repo, &"--from", &data, &"-m", &"from elsewhere"], &[]);
    assert!(err.contains("is mounted") && err.contains("without --from"), "{err}");
    // Edits through the kernel, then a commit from another process.
    std::fs::rename(m.mnt.join("hello.txt"), m.mnt.join("hi.txt")).expect("rename");
    std::fs::remove_file(m.mnt.join("a/b/random.bin")).expect("unlink");
    sh(&format!("echo more >> {}/a/lines.txt", m.mnt.display()));
    let big = Rng::new(3).bytes(20 << 20);
    std::fs::write(m.mnt.join("big"), &big).expect("write big");
    assert!(std::fs::read(m.mnt.join("big")).expect("read big") == big);
    ok(&[&"commit", &repo, &"-m", &"edits"]);
    let diff = ok(&[&"diff", &repo, &"HEAD~1", &"HEAD"]);
    for line in ["A big", "M a/lines.txt", "D a/b/random.bin", "A hi.txt", "D hello.txt"] {
        assert!(diff.lines().any(|l| l == line), "missing {line:?} in\n{diff}");
    }
    let ino_before = std::fs::metadata(m.mnt.join("a")).expect("stat").ino();
    // Descriptors open across the checkout keep the files they opened (a
    // logger, an editor), whether their path changes or goes.
    let open = |p: &str| std::fs::OpenOptions::new().read(true).write(true).open(m.mnt.join(p)).expect("open");
    let (mut changed, mut gone) = (open("a/lines.txt"), open("big"));
    // checkout moves the mounted view at once.
    ok(&[&"checkout", &repo, &"HEAD~1"]);
    assert!(m.mnt.join("hello.txt").exists() && m.mnt.join("a/b/random.bin").exists());
    assert!(!m.mnt.join("big").exists());
    assert_same_tree(&data, &m.mnt);
    let mut old = String::new();
    std::io::Read::read_to_string(&mut changed, &mut old).expect("read the open file");
    let tail = &old[old.len().saturating_sub(20)..];
    assert!(old.ends_with("more\n"), "the open file changed under its descriptor: ...{tail:?}");
    std::io::Write::write_all(&mut changed, b"LOGLINE").expect("write");
    std::io::Write::write_all(&mut gone, b"LOGLINE").expect("write");
    drop((changed, gone));
    assert!(!m.mnt.join("big").exists());
    assert_same_tree(&data, &m.mnt);
    assert!(fails(&[&"commit", &repo, &"-m", &"nothing"], &[]).contains("nothing to commit"));
    m.detach();
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));
    // Remount: same tree, same inode numbers.
    let m = Mount::start(&repo, &mnt, &[]);
    assert_same_tree(&data, &m.mnt);
    assert_eq!(std::fs::metadata(m.mnt.join("a")).expect("stat").ino(), ino_before);
    // Uncommitted edits outlive the mount: commit --from would drop them.
    write(&m.mnt.join("precious"), b"not committed");
    m.detach();
    let err = fails(&[&"commit", &repo, &"--from", &data, &"-m", &"over the edits"], &[]);
    assert!(err.contains("uncommitted changes") && err.contains("--force"), "{err}");
    assert!(ok(&[&"diff", &repo, &"HEAD"]).contains("A precious"));
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"over the edits", &"--force"]);
    assert_eq!(ok(&[&"diff", &repo, &"HEAD"]), "");
}

/// Removing the entries of a large directory while listing it (a lazy
/// `read_dir`, read by the kernel a batch at a time) reaches every entry:
/// listing offsets do not shift when entries go.
#[test]
fn removing_while_listing_reaches_every_entry() {
    let Some(Fresh { s: _s, repo: _, m }) = fresh_mount(&[]) else { return };
    let dir = m.mnt.join("many");
    std::fs::create_dir(&dir).expect("mkdir");
    for i in 0..1500 {
        write(&dir.join(format!("a-rather-long-file-name-to-fill-pages-{i:05}")), b"x");
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir).expect("read_dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
        removed += 1;
    }
    assert_eq!(removed, 1500, "entries were skipped while removing");
    std::fs::remove_dir(&dir).expect("the directory is empty");
    m.detach();
}

/// `detach` returns once the repository is free: scripts run the next
/// command on it straight away (a daemon's process used to linger, still
/// holding the lock, after `detach` had returned). Its store is closed
/// cleanly: a read-only open, which cannot recover a store, works (the next
/// open after every mount used to read the whole file to recover it, and
/// a repository on read-only media could not be read at all).
#[test]
fn detach_leaves_the_repository_free() {
    let Some(Fresh { s, repo, m }) = fresh_mount(&[]) else { return };
    m.detach();
    let mnt = s.path("mnt");
    for i in 0..10u64 {
        ok(&[&"mount", &repo, &mnt, &"--daemon"]);
        write(&mnt.join("big"), &Rng::new(i).bytes(5 << 20));
        ok(&[&"detach", &mnt]);
        let store = repo.join(monofs::repo::STORE_FILE);
        assert!(monofs::store::RedbStore::open_read_only(&store).is_ok(), "the mount left its store to recover");
        ok(&[&"log", &repo]);
    }
}

/// A repository on a 48 MiB tmpfs of its own (its scratch directory, the
/// tmpfs, the repository); `None` (the test skips) where this machine
/// cannot mount FUSE or tmpfs.
fn repository_on_a_small_disk() -> Option<(Scratch, SmallFs, PathBuf)> {
    if !fuse_available() {
        return None;
    }
    let s = Scratch::default();
    let disk = SmallFs::mount(&s.path("disk"), 48)?;
    let repo = disk.0.join("repo");
    init(&repo);
    Some((s, disk, repo))
}

/// A full disk under a mount: the writer gets ENOSPC, the mount keeps
/// working, and once space is freed (here by removing the file that filled
/// it) everything else is stored; nothing stored before is lost. The same
/// for a commit from outside: one clear error, the repository intact.
#[test]
fn a_full_disk_loses_nothing() {
    use std::io::Write as _;

    let Some((s, disk, repo)) = repository_on_a_small_disk() else { return };
    // Its log cannot be written either (as with `--daemon`, whose log is in
    // the repository): the errors it logs must not stop it.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let m = Mount::start_logging_to(&repo, &s.path("mnt"), &[], full.into());
    let keep = Rng::new(41).bytes(8 << 20);
    let mut f = std::fs::File::create(m.mnt.join("keep")).expect("create");
    f.write_all(&keep).expect("write");
    f.sync_all().expect("fsync with room to spare");
    drop(f);

    let mut big = std::fs::File::create(m.mnt.join("big")).expect("create");
    let full = big.write_all(&Rng::new(42).bytes(48 << 20)).and_then(|()| big.sync_all());
    let err = full.expect_err("48 MiB more fit on a 48 MiB disk");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");
    drop(big);

    // Neither detach nor a signal unmounts while the pending changes
    // cannot be stored: that would lose them.
    write(&m.mnt.join("small"), b"hello");
    let err = fails(&[&"detach", &m.mnt], &[]);
    assert!(err.contains("stays mounted") && err.contains("--force"), "{err}");
    let pid = nix::unistd::Pid::from_raw(m.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(is_mounted(&m.mnt), "unmounted with changes it could not store");
    assert_eq!(std::fs::read(m.mnt.join("small")).expect("still served"), b"hello");
    // History stays readable meanwhile.
    ok(&[&"log", &repo]);
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));

    // Freeing the space lets the rest be stored, through the same mount.
    std::fs::remove_file(m.mnt.join("big")).expect("rm");
    std::fs::File::open(m.mnt.join("small")).expect("open").sync_all().expect("fsync once there is room");
    ok(&[&"commit", &repo, &"-m", &"after the disk filled"]);
    m.detach();
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));
    let out = s.path("out");
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &out]);
    assert_eq!(std::fs::read(out.join("keep")).expect("keep"), keep);
    assert_eq!(std::fs::read(out.join("small")).expect("small"), b"hello");
    assert!(!out.join("big").exists());

    // A commit from outside that does not fit: one error, nothing changed.
    let src = s.path("src");
    write(&src.join("huge"), &Rng::new(43).bytes(48 << 20));
    let log = ok(&[&"log", &repo]);
    let err = fails(&[&"commit", &repo, &"--from", &src, &"-m", &"too big"], &[]);
    assert!(err.contains("No space left on device") && err.contains("hint: free some space"), "{err}");
    assert_eq!(ok(&[&"log", &repo]), log);
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));
    disk.resize(128);
    ok(&[&"commit", &repo, &"--from", &src, &"-m", &"fits now"]);
}

/// On a full disk, removing a stored file from the mount frees nothing by
/// itself; gc through the mount then makes the room that the pending
/// changes need, and they are stored.
#[test]
fn gc_makes_room_on_a_full_mount() {
    use std::io::Write as _;

    let Some((s, _disk, repo)) = repository_on_a_small_disk() else { return };
    let m = Mount::start(&repo, &s.path("mnt"), &[]);
    let mut old = std::fs::File::create(m.mnt.join("old")).expect("create");
    old.write_all(&Rng::new(51).bytes(20 << 20)).expect("write");
    old.sync_all().expect("fsync with room to spare");
    drop(old);
    let new_bytes = Rng::new(52).bytes(26 << 20);
    let mut new = std::fs::File::create(m.mnt.join("new")).expect("create");
    new.write_all(&new_bytes).expect("write");
    let err = new.sync_all().expect_err("26 MiB more fit beside 20 on a 48 MiB disk");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");
    drop(new);

    std::fs::remove_file(m.mnt.join("old")).expect("rm");
    let out = ok(&[&"gc", &repo]);
    assert!(out.starts_with("removed ") && !out.starts_with("removed 0 "), "{out}");
    std::fs::File::open(m.mnt.join("new")).expect("open").sync_all().expect("fsync once gc made room");
    ok(&[&"commit", &repo, &"-m", &"after gc"]);
    m.detach();
    assert!(ok(&[&"fsck", &repo]).contains(" 0 problems"));
    let out = s.path("out");
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &out]);
    assert!(std::fs::read(out.join("new")).expect("new") == new_bytes);
    assert!(!out.join("old").exists());
}

/// sync and clone of a mounted repository are refused at once, naming the
/// mount, instead of waiting minutes for a lock the mount never releases.
#[test]
fn sync_and_clone_of_a_mounted_repository_fail_at_once() {
    let Some(Fresh { s, repo, m }) = fresh_mount(&[]) else { return };
    write(&m.mnt.join("f"), b"x");
    ok(&[&"commit", &repo, &"-m", &"one"]);
    for args in [["sync", "copy-a"], ["clone", "copy-b"]] {
        let started = std::time::Instant::now();
        let err = if args[0] == "sync" {
            fails(&[&"sync", &repo, &s.path(args[1])], &[])
        } else {
            fails(&[&"clone", &repo, &s.path(args[1])], &[])
        };
        assert!(err.contains("is mounted or served by process") && err.contains("detach"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} waited {:?}", started.elapsed());
    }
    m.detach();
    ok(&[&"clone", &repo, &s.path("copy-b")]);
}

/// SEEK_DATA and SEEK_HOLE through the kernel: tools that copy sparse
/// files (`cp`, `tar -S`, qemu-img) skip the holes of one on the mount.
#[test]
fn seek_data_and_hole_through_the_mount() {
    use std::os::unix::fs::FileExt as _;

    let Some(Fresh { s: _s, repo: _, m }) = fresh_mount(&[]) else { return };
    let path = m.mnt.join("disk.img");
    let file =
        std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).expect("open");
    file.set_len(1 << 30).expect("set_len");
    file.write_all_at(b"data", 512 << 20).expect("write");
    file.sync_all().expect("fsync");
    let seek = |offset, whence| nix::unistd::lseek(&file, offset, whence);
    let data = seek(0, nix::unistd::Whence::SeekData).expect("SEEK_DATA");
    assert!(((511 << 20)..=(512 << 20)).contains(&data), "data from {data}");
    let hole = seek(data, nix::unistd::Whence::SeekHole).expect("SEEK_HOLE");
    assert!(((512 << 20) + 4..=(513 << 20)).contains(&hole), "a hole from {hole}");
    assert_eq!(seek(0, nix::unistd::Whence::SeekHole).expect("SEEK_HOLE"), 0);
    assert_eq!(seek(hole, nix::unistd::Whence::SeekData), Err(nix::errno::Errno::ENXIO));
    let used = std::os::unix::fs::MetadataExt::blocks(&file.metadata().expect("stat")) * 512;
    assert!(used <= 2 << 20, "st_blocks: {used} bytes for 4 bytes of data");
    // Cut back into the stored data: the stored holes below still count.
    file.set_len((512 << 20) + 2).expect("ftruncate");
    let used = std::os::unix::fs::MetadataExt::blocks(&file.metadata().expect("stat")) * 512;
    assert!(used <= 2 << 20, "st_blocks: {used} bytes for 2 bytes of data, after ftruncate");
    // A small sparse file, as stored: its holes count too after a remount.
    let small = m.mnt.join("small.img");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&small)
        .expect("open")
        .write_all_at(b"end", 20 << 20)
        .expect("write");
    drop(file);
    m.detach();
    let m = Mount::start(&_s.path("repo"), &_s.path("mnt"), &[]);
    let used = std::fs::metadata(m.mnt.join("small.img")).expect("stat").blocks() * 512;
    assert!(used <= 1 << 20, "st_blocks: {used} bytes for 3 bytes of data at 20 MiB, after a remount");
    m.detach();
}

#[test]
fn killed_mount_is_cleaned_up_and_loses_only_unflushed_data() {
    let Some(Fresh { s: _s, repo, mut m }) = fresh_mount(&[]) else { return };
    write(&m.mnt.join("kept/file"), b"flushed before the kill");
    ok(&[&"commit", &repo, &"-m", &"one"]);
    write(&m.mnt.join("after-commit"), b"flushed by the timer");
    std::thread::sleep(Duration::from_millis(4500));
    m.child.kill().expect("kill -9");
    m.child.wait().expect("wait");
    assert!(!m.mnt.join("kept").exists(), "a dead mount still answers");
    // The next mount notices the stale one and cleans it up.
    let m2 = Mount::start(&repo, &m.mnt, &[]);
    assert_eq!(std::fs::read(m2.mnt.join("kept/file")).expect("read"), b"flushed before the kill");
    assert_eq!(std::fs::read(m2.mnt.join("after-commit")).expect("read"), b"flushed by the timer");
    m2.detach();
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));
    assert_eq!(ok(&[&"log", &repo]).lines().count(), 1);
    drop(m);
}

#[test]
fn mount_errors_are_clear() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::default();
    let (repo, mnt) = (s.path("repo"), s.path("mnt"));
    init(&repo);
    let err = fails(&[&"mount", &repo, &s.path("missing")], &[]);
    assert!(err.contains("missing"), "{err}");
    write(&s.path("full/x"), b"x");
    let err = fails(&[&"mount", &repo, &s.path("full")], &[]);
    assert!(err.contains("not empty"), "{err}");
    let m = Mount::start(&repo, &mnt, &[]);
    std::fs::create_dir(s.path("mnt2")).expect("mkdir");
    let err = fails(&[&"mount", &repo, &s.path("mnt2")], &[]);
    assert!(err.contains("locked by PID"), "{err}");
    // A busy mount names its users; --force detaches lazily.
    let mut user = std::process::Command::new("sleep").arg("30").current_dir(&m.mnt).spawn().expect("spawn");
    let err = fails(&[&"detach", &m.mnt], &[]);
    assert!(err.contains(&format!("{} (sleep)", user.id())), "{err}");
    let _ = user.kill();
    let _ = user.wait();
    m.detach();
    let err = fails(&[&"detach", &mnt], &[]);
    assert!(err.contains("not mounted"), "{err}");
    // A daemon that fails says why, as in the foreground (its hint too),
    // not what an earlier run left in its log.
    std::fs::write(repo.join("mount.log"), "error: an earlier run's error\n").expect("log");
    let err = fails(&[&"mount", &repo, &mnt, &"--daemon", &"--rev", &"nosuch"], &[]);
    assert!(err.starts_with("error: unknown revision") && err.contains("\nhint: "), "{err}");
    // Not a repository: said before the daemon's log is made (in it).
    let err = fails(&[&"mount", &s.path("nosuch"), &mnt, &"--daemon"], &[]);
    assert!(err.contains("no such repository"), "{err}");
    std::fs::create_dir(s.path("plain")).expect("mkdir");
    let err = fails(&[&"mount", &s.path("plain"), &mnt, &"--daemon"], &[]);
    assert!(err.contains("not a monofs repository"), "{err}");
    assert!(!s.path("plain/mount.log").exists(), "a log left in a directory that is no repository");
}

#[test]
fn corrupt_chunk_reads_as_eio_never_wrong_bytes() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::default();
    let (repo, mnt, data) = (s.path("repo"), s.path("mnt"), s.path("data"));
    write(&data.join("victim"), &Rng::new(9).bytes(200_000));
    write(&data.join("fine"), b"fine");
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"x"]);
    {
        let r = monofs::Repository::open(&repo, &mut || Ok(Vec::new())).expect("open");
        let root = r.read_dir(&r.worktree().expect("wt")).expect("root");
        let monofs::object::EntryKind::File { content, size } = &root.get(b"victim").expect("entry").kind else {
            panic!("not a file")
        };
        let (_, chunk, _) = r.layout(content, *size).expect("layout")[0];
        let mut stored = r.store().get(monofs::store::Table::Objects, chunk.as_bytes()).expect("get").expect("some");
        let n = stored.len();
        stored[n - 1] ^= 1;
        let mut tx = r.begin().expect("tx");
        tx.put(monofs::store::Table::Objects, chunk.as_bytes(), &stored).expect("put");
        tx.commit().expect("commit");
    }
    let m = Mount::start(&repo, &mnt, &[]);
    let err = std::fs::read(m.mnt.join("victim")).expect_err("corrupt data was returned");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EIO));
    assert_eq!(std::fs::read(m.mnt.join("fine")).expect("read"), b"fine");
    m.detach();
}

/// A file written and closed is stored a moment later, not at the next
/// round of the flusher (here an hour away): a kill -9 soon after the close
/// keeps it.
#[test]
fn closed_files_are_stored_at_once() {
    let Some(Fresh { s: _s, repo, mut m }) = fresh_mount(&["--flush-every", "1h"]) else { return };
    write(&m.mnt.join("closed"), b"written and closed");
    std::thread::sleep(Duration::from_millis(1000));
    m.child.kill().expect("kill -9");
    m.child.wait().expect("wait");
    let m2 = Mount::start(&repo, &m.mnt, &[]);
    assert_eq!(std::fs::read(m2.mnt.join("closed")).expect("stored"), b"written and closed");
    m2.detach();
}

/// gc runs on a mounted repository, through the mount: it removes what
/// the working tree dropped, keeps the content of a file that is open but
/// no longer named (stored, in no tree), and leaves a sound repository.
#[test]
fn gc_runs_while_mounted() {
    use std::io::Read;
    let Some(Fresh { s: _s, repo, m }) = fresh_mount(&[]) else { return };
    let mut rng = Rng::new(11);
    let (committed, held) = (rng.bytes(3 << 20), rng.bytes(2 << 20));
    write(&m.mnt.join("committed"), &committed);
    ok(&[&"commit", &repo, &"-m", &"one"]);
    write(&m.mnt.join("scratch"), &rng.bytes(1 << 20));
    write(&m.mnt.join("held"), &held);
    let mut open = std::fs::File::open(m.mnt.join("held")).expect("open");
    // Known to the kernel only (O_PATH is no open): it can open the file
    // again, through /proc/self/fd, once its name is gone. (Close-on-exec:
    // other tests' children must not inherit it and keep the mount busy.)
    let by_path = rng.bytes(1 << 20);
    write(&m.mnt.join("by-path"), &by_path);
    let path_fd = nix::fcntl::open(
        &m.mnt.join("by-path"),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .expect("O_PATH");
    // All stored by the flush after their close.
    std::thread::sleep(Duration::from_millis(800));
    std::fs::remove_file(m.mnt.join("scratch")).expect("rm");
    std::fs::remove_file(m.mnt.join("held")).expect("rm");
    std::fs::remove_file(m.mnt.join("by-path")).expect("rm");
    let out = ok(&[&"gc", &repo]);
    assert!(out.starts_with("removed ") && !out.starts_with("removed 0 "), "{out}");
    // Read through the mount, not from the kernel's cache of it.
    std::fs::write("/proc/sys/vm/drop_caches", "1").expect("drop caches");
    let mut back = Vec::new();
    open.read_to_end(&mut back).expect("read the open file after gc");
    assert!(back == held, "the open file changed");
    let again = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&path_fd));
    assert!(std::fs::read(again).expect("open again after gc") == by_path, "the file known by path changed");
    assert_eq!(std::fs::read(m.mnt.join("committed")).expect("read"), committed);
    assert!(ok(&[&"fsck", &repo]).contains(" 0 problems"), "fsck");
    drop((open, path_fd));
    m.detach();
    assert!(ok(&[&"fsck", &repo]).contains(" 0 problems"), "fsck after detach");
}

#[test]
fn random_operations_match_a_plain_directory() {
    use std::os::unix::fs::PermissionsExt;
    let Some(Fresh { s, repo, m }) = fresh_mount(&[]) else { return };
    let plain = s.path("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let mut rng = Rng::new(2024);
    let names = ["a", "b", "c", "d/e", "d/f", "g/h/i"];
    for step in 0..400 {
        let pick = |rng: &mut Rng| names[(rng.next_u64() % names.len() as u64) as usize];
        let (op, name) = (rng.next_u64() % 9, pick(&mut rng));
        let other = pick(&mut rng);
        let size = (rng.next_u64() % 200_000) as usize;
        let offset = rng.next_u64() % 150_000;
        let data = rng.bytes(size % 70_000);
        let mode = [0o644, 0o600, 0o755][(rng.next_u64() % 3) as usize];
        for root in [&plain, &m.mnt] {
            let p = root.join(name);
            let q = root.join(other);
            let _ = std::fs::create_dir_all(p.parent().expect("parent"));
            let _ = std::fs::create_dir_all(q.parent().expect("parent"));
            let r: std::io::Result<()> = match op {
                0 => std::fs::write(&p, &data),
                1 => std::fs::OpenOptions::new().append(true).open(&p).and_then(|mut f| {
                    use std::io::Write;
                    f.write_all(&data)
                }),
                2 => std::fs::OpenOptions::new().write(true).open(&p).and_then(|f| {
                    use std::os::unix::fs::FileExt;
                    f.write_all_at(&data, offset)
                }),
                3 => std::fs::OpenOptions::new().write(true).open(&p).and_then(|f| f.set_len(size as u64)),
                4 => std::fs::rename(&p, &q),
                5 => std::fs::remove_file(&p),
                6 => std::fs::hard_link(&p, &q),
                7 => std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)),
                _ => std::os::unix::fs::symlink(other, &p),
            };
            let _ = r;
        }
        if step % 50 == 49 {
            compare(&plain, &m.mnt);
        }
    }
    compare(&plain, &m.mnt);
    ok(&[&"commit", &repo, &"-m", &"random"]);
    m.detach();
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    compare(&plain, &s.path("out"));
}

/// Type, mode, size, bytes, link target and link count of every path.
fn compare(a: &Path, b: &Path) {
    let describe = |root: &Path| -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("read_dir") {
                let p = e.expect("entry").path();
                let md = std::fs::symlink_metadata(&p).expect("lstat");
                let rel = p.strip_prefix(root).expect("rel").display().to_string();
                if md.is_dir() {
                    out.push(format!("{rel} dir {:o}", md.mode()));
                    stack.push(p);
                } else if md.file_type().is_symlink() {
                    out.push(format!("{rel} -> {}", std::fs::read_link(&p).expect("readlink").display()));
                } else {
                    let bytes = std::fs::read(&p).expect("read");
                    let sum = bytes.iter().fold(0u64, |h, &x| h.wrapping_mul(31).wrapping_add(u64::from(x)));
                    out.push(format!("{rel} file {:o} {} {} {sum:x}", md.mode(), md.len(), md.nlink()));
                }
            }
        }
        out.sort();
        out
    };
    let (da, db) = (describe(a), describe(b));
    assert!(
        da == db,
        "trees differ:\n{}",
        da.iter().zip(&db).filter(|(x, y)| x != y).map(|(x, y)| format!("  {x}\n  {y}\n")).collect::<String>()
            + &format!("{} vs {} entries", da.len(), db.len())
    );
}

#[test]
fn autocommit_and_files_past_4_gib() {
    use std::os::unix::fs::FileExt;
    let Some(Fresh { s: _s, repo, m }) = fresh_mount(&["--autocommit", "1s"]) else { return };
    // One byte past 5 GiB: a sparse file whose hole reads as zeros.
    let f = std::fs::File::create(m.mnt.join("sparse")).expect("create");
    f.write_all_at(b"x", 5 << 30).expect("write past 4 GiB");
    drop(f);
    let f = std::fs::File::open(m.mnt.join("sparse")).expect("open");
    assert_eq!(f.metadata().expect("stat").len(), (5 << 30) + 1);
    let mut buf = [1u8; 4];
    f.read_exact_at(&mut buf, (5 << 30) - 3).expect("read across the hole");
    assert_eq!(buf, [0, 0, 0, b'x']);
    drop(f);
    // The autocommit timer turns the change into a revision by itself.
    let mut log = String::new();
    for _ in 0..60 {
        log = ok(&[&"log", &repo]);
        if log.contains("autocommit") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(log.contains("autocommit"), "no autocommit revision: {log}");
    m.detach();
    let stats: serde_json::Value = serde_json::from_str(&ok(&[&"log", &repo, &"--json"])).expect("json");
    assert_eq!(stats[0]["size"], (5u64 << 30) + 1);
}

/// Details a local disk gets right: set-group-ID directories, times before
/// 1970 with nanoseconds, directory link counts.
#[test]
fn metadata_details_match_a_local_disk() {
    let Some(Fresh { s: _s, repo, m }) = fresh_mount(&[]) else { return };
    let sg = m.mnt.join("shared");
    std::fs::create_dir(&sg).expect("mkdir");
    std::os::unix::fs::chown(&sg, Some(0), Some(1234)).expect("chown");
    std::fs::set_permissions(&sg, std::os::unix::fs::PermissionsExt::from_mode(0o2775)).expect("chmod");
    write(&sg.join("f"), b"x");
    std::fs::create_dir(sg.join("d")).expect("mkdir");
    let (f, d) = (std::fs::metadata(sg.join("f")).expect("stat"), std::fs::metadata(sg.join("d")).expect("stat"));
    assert_eq!((f.gid(), d.gid()), (1234, 1234), "the directory's group");
    assert_eq!(d.mode() & 0o7777, 0o2755, "set-group-ID passed on to directories");

    // -1.5 s: (-2 s, 500000000 ns), as ext4 keeps it.
    let old = std::time::UNIX_EPOCH - Duration::from_millis(1500);
    std::fs::File::options().write(true).open(sg.join("f")).expect("open").set_modified(old).expect("utimens");
    let f = std::fs::metadata(sg.join("f")).expect("stat");
    assert_eq!((f.mtime(), f.mtime_nsec()), (-2, 500_000_000));

    // 2 + one per subdirectory: `shared` holds a file and one directory.
    std::fs::create_dir(sg.join("e")).expect("mkdir");
    assert_eq!(std::fs::metadata(&sg).expect("stat").nlink(), 4);
    std::fs::remove_dir(sg.join("e")).expect("rmdir");
    std::fs::rename(sg.join("d"), m.mnt.join("d")).expect("rename");
    assert_eq!(std::fs::metadata(&sg).expect("stat").nlink(), 2);
    // An attribute the restore target refuses: the rest is restored, and
    // the command says so and fails, through the mount too.
    xattr::set(sg.join("f"), "system.monofs_test", b"v").expect("setxattr");
    ok(&[&"commit", &repo, &"-m", &"details"]);
    let out = _s.path("out");
    let err = fails(&[&"checkout", &repo, &"HEAD", &"--to", &out], &[]);
    assert!(
        err.contains("1 extended attributes could not be written there") && err.contains("system.monofs_test"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("shared/f")).expect("restored"), b"x");
    m.detach();
    let m = Mount::start(&repo, &_s.path("mnt"), &[]);
    let f = std::fs::metadata(m.mnt.join("shared/f")).expect("stat");
    assert_eq!((f.mtime(), f.mtime_nsec(), f.gid()), (-2, 500_000_000, 1234), "as stored");
    assert_eq!(std::fs::metadata(&m.mnt).expect("stat").nlink(), 4, "root: shared, d");
    // The root's own metadata is the tree's too: kept across mounts (it
    // went back to 755), shown by diff, committed and restored.
    std::fs::set_permissions(&m.mnt, std::os::unix::fs::PermissionsExt::from_mode(0o751)).expect("chmod /");
    m.detach();
    let m = Mount::start(&repo, &_s.path("mnt"), &[]);
    assert_eq!(std::fs::metadata(&m.mnt).expect("stat").mode() & 0o7777, 0o751);
    assert_eq!(ok(&[&"diff", &repo, &"HEAD"]), "M .\n");
    ok(&[&"commit", &repo, &"-m", &"chmod /"]);
    m.detach();
    let out = _s.path("out2");
    // (It fails for the xattr above, once everything else is written.)
    assert_eq!(run(&[&"checkout", &repo, &"HEAD", &"--to", &out], &[]).status.code(), Some(1));
    assert_eq!(std::fs::metadata(&out).expect("stat").mode() & 0o7777, 0o751);
}

/// `monofs tmp` mounts a throwaway repository and removes it at the end;
/// one killed with SIGKILL (no cleanup) leaves its scratch directory and a
/// dead mount, which the next `monofs tmp` takes away.
#[test]
fn tmp_cleans_up_after_itself_and_after_a_killed_one() {
    use std::io::BufRead as _;

    if !fuse_available() {
        return;
    }
    let s = Scratch::default();
    let temp = s.path("temp");
    std::fs::create_dir_all(&temp).expect("mkdir");
    let start = || {
        let mut child = monofs()
            .arg("tmp")
            .env("TMPDIR", &temp)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tmp");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out).read_line(&mut line).expect("mountpoint");
        let mnt = PathBuf::from(line.trim());
        for _ in 0..100 {
            if is_mounted(&mnt) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(is_mounted(&mnt), "monofs tmp did not mount {}", mnt.display());
        (child, mnt)
    };
    // A directory of the same name that is not one of tmp's, with a
    // repository in it: never touched.
    let mine = temp.join("monofs-tmp-mine");
    init(&mine.join("repo"));
    write(&mine.join("README"), b"mine");
    let scratch_dirs = || std::fs::read_dir(&temp).expect("ls").count() - 1;
    let (mut killed, old) = start();
    write(&old.join("f"), b"throwaway");
    killed.kill().expect("kill -9");
    killed.wait().expect("wait");
    assert_eq!(scratch_dirs(), 1, "the killed run's directory should be left");
    let (mut second, mnt) = start();
    assert_eq!(scratch_dirs(), 1, "the killed run's directory is still there");
    assert!(!is_mounted(&old));
    write(&mnt.join("g"), b"also throwaway");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    assert!(second.wait().expect("wait").success());
    assert_eq!(scratch_dirs(), 0, "monofs tmp left its directory");
    assert!(mine.join("README").exists() && mine.join("repo").exists(), "the sweep removed a directory not its own");
}
