//! clone, sync --mode backup, remote and serve --http, driven through the
//! binary: local and over HTTP on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monofs_fixtures::{Rng, SmallFs, assert_same_tree, make_source_tree, make_tree, write};

use super::{Scratch, fails, init, monofs, ok, ok_env};

/// A `monofs serve --http` on a free loopback port, killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(repo: &Path, token_file: &Path) -> Served {
    serve_with(repo, token_file, &[])
}

fn serve_with(repo: &Path, token_file: &Path, extra: &[&str]) -> Served {
    let mut child = monofs()
        .args(["serve"])
        .arg(repo)
        .args(["--http", "127.0.0.1:0", "--token-file"])
        .arg(token_file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let url = line.split_whitespace().find(|w| w.starts_with("http")).expect("url in the banner").to_owned();
    Served { child, url }
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).expect("json summary")
}

#[test]
fn local_clone_incremental_sync_and_divergence() {
    let s = Scratch::default();
    let (repo, data, copy) = (s.path("repo"), s.path("data"), s.path("copy"));
    make_tree(&data);
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    ok(&[&"tag", &repo, &"v1"]);
    let summary = json(&ok(&[&"clone", &repo, &copy, &"--json"]));
    assert!(summary["objects_sent"].as_u64().expect("n") > 10, "{summary}");
    ok(&[&"checkout", &copy, &"v1", &"--to", &s.path("out1")]);
    assert_same_tree(&data, &s.path("out1"));
    assert_eq!(ok(&[&"log", &copy, &"--json"]), ok(&[&"log", &repo, &"--json"]));
    assert!(ok(&[&"diff", &copy, &"HEAD"]).is_empty(), "the clone's working tree is HEAD's");
    assert!(ok(&[&"fsck", &copy]).contains("0 problems"));
    let err = fails(&[&"clone", &repo, &copy], &[]);
    assert!(err.contains("already exists"), "{err}");

    // Incremental: a small change sends a few objects, a second run none.
    write(&data.join("a/lines.txt"), b"changed\n");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"two"]);
    ok(&[&"tag", &repo, &"v2"]);
    ok(&[&"remote", &"add", &repo, &"backup", &copy]);
    assert!(ok(&[&"remote", &"list", &repo]).contains("backup"));
    let summary = json(&ok(&[&"sync", &repo, &"backup", &"--mode", &"backup", &"--json"]));
    assert_eq!(summary["mode"], "walk");
    let sent = summary["objects_sent"].as_u64().expect("n");
    assert!((2..=6).contains(&sent), "{summary}");
    let again = json(&ok(&[&"sync", &repo, &copy, &"--json"]));
    assert_eq!(again["objects_sent"], 0, "{again}");
    assert!(ok(&[&"log", &copy]).contains("two"));
    assert!(ok(&[&"tag", &copy]).contains("v2"));
    ok(&[&"checkout", &copy, &"HEAD", &"--to", &s.path("out2")]);
    assert_same_tree(&data, &s.path("out2"));
    assert!(ok(&[&"diff", &copy, &"HEAD"]).is_empty(), "the working tree followed HEAD");

    // Both sides commit: backup mode refuses, says why, moves nothing.
    write(&data.join("hello.txt"), b"on the source\n");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"src-three"]);
    write(&data.join("hello.txt"), b"on the copy\n");
    ok(&[&"commit", &copy, &"--from", &data, &"-m", &"copy-three"]);
    let before = ok(&[&"log", &copy, &"--all"]);
    let err = fails(&[&"sync", &repo, &copy], &[]);
    assert!(err.contains("not an ancestor") && err.contains("crdt"), "{err}");
    assert_eq!(ok(&[&"log", &copy, &"--all"]), before);

    // --pull brings the copy's line back only if it is a fast-forward: it is not.
    let err = fails(&[&"sync", &repo, &copy, &"--pull"], &[]);
    assert!(err.contains("not an ancestor"), "{err}");
    ok(&[&"remote", &"remove", &repo, &"backup"]);
    assert!(ok(&[&"remote", &"list", &repo]).is_empty());
    // Addresses no sync could use, and names read as options, are refused.
    for (name, url, says) in [
        ("x", "ftp://host/r", "only http:// and https://"),
        ("x", "http://", "bad URL"),
        ("x", "http://user:secret@127.0.0.1:9/", "not used; give the token"),
        ("--", "/tmp", "bad remote name"),
        ("...", "/tmp", "starting with a letter"),
    ] {
        let err = fails(&[&"remote", &"add", &repo, &"--", &name, &url], &[]);
        assert!(err.contains(says) && !err.contains("secret"), "{name} {url}: {err}");
    }
    assert!(ok(&[&"remote", &"list", &repo]).is_empty());
}

/// A repository with one revision of a test tree (`repo`, from `data`),
/// its clone `mirror`, and a token file holding `token`.
fn repo_and_mirror(s: &Scratch, token: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let (repo, data, mirror) = (s.path("repo"), s.path("data"), s.path("mirror"));
    make_tree(&data);
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    ok(&[&"clone", &repo, &mirror]);
    let file = s.path("token");
    std::fs::write(&file, token).expect("token");
    (repo, data, mirror, file)
}

#[test]
fn http_clone_push_pull_and_tokens() {
    let s = Scratch::default();
    let (repo, data, mirror, token) = repo_and_mirror(&s, "  tok-123 \n");
    let server = serve(&mirror, &token);

    let err = fails(&[&"clone", &server.url, &s.path("c0")], &[]);
    assert!(err.contains("401") && err.contains("token"), "{err}");
    let err = fails(&[&"clone", &server.url, &s.path("c0")], &[("MONOFS_TOKEN", "wrong")]);
    assert!(err.contains("401"), "{err}");
    assert!(!s.path("c0").join("monofs.redb").exists() || fails(&[&"log", &s.path("c0")], &[]).contains("error"));

    // Push over HTTP, token from the environment.
    write(&data.join("a/new.txt"), b"new file\n");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"pushed-over-http"]);
    let summary = json(&ok_env(&[&"sync", &repo, &server.url, &"--json"], &[("MONOFS_TOKEN", "tok-123")]));
    assert!(summary["objects_sent"].as_u64().expect("n") >= 2, "{summary}");
    let noop = json(&ok_env(&[&"sync", &repo, &server.url, &"--json"], &[("MONOFS_TOKEN", "tok-123")]));
    assert_eq!(noop["objects_sent"], 0);
    assert!(noop["wire_bytes"].as_u64().expect("n") < 100_000, "{noop}");

    // A named remote remembers where its token is (not the token itself).
    ok(&[&"remote", &"add", &repo, &"mirror", &server.url, &"--token-file", &token]);
    let listed = ok(&[&"remote", &"list", &repo]);
    assert!(listed.contains("mirror") && listed.contains("token in"), "{listed}");
    assert!(!std::fs::read(repo.join("monofs.redb")).expect("read").windows(7).any(|w| w == b"tok-123"));
    write(&data.join("a/named.txt"), b"via the named remote\n");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"named-remote"]);
    let named = json(&ok(&[&"sync", &repo, &"mirror", &"--json"]));
    assert!(named["objects_sent"].as_u64().expect("n") >= 2, "{named}");
    let err = fails(&[&"sync", &repo, &"mirror", &"--token-file", &s.path("missing-token")], &[]);
    assert!(err.contains("missing-token"), "the flag wins over the remote's file: {err}");

    // Clone over HTTP (the flag wins over a wrong variable), check out.
    let c1 = s.path("c1");
    ok_env(&[&"clone", &server.url, &c1, &"--token-file", &token], &[("MONOFS_TOKEN", "wrong")]);
    ok(&[&"checkout", &c1, &"HEAD", &"--to", &s.path("out")]);
    assert_same_tree(&data, &s.path("out"));
    assert!(ok(&[&"log", &c1]).contains("pushed-over-http"));

    // Pull a revision made elsewhere into the first repository.
    drop(server);
    write(&data.join("hello.txt"), b"from the mirror\n");
    ok(&[&"commit", &c1, &"--from", &data, &"-m", &"made-on-c1"]);
    let server = serve(&c1, &token);
    ok_env(&[&"sync", &repo, &server.url, &"--pull"], &[("MONOFS_TOKEN", "tok-123")]);
    assert!(ok(&[&"log", &repo]).contains("made-on-c1"));
}

/// Allocated bytes of a repository's store file (grows as batches commit),
/// or of the partial copy a whole-file clone writes first.
fn stored(repo: &Path) -> u64 {
    let size = |f: &str| std::fs::metadata(repo.join(f)).map(|m| m.blocks() * 512).unwrap_or(0);
    size("monofs.redb").max(size("monofs.redb.partial"))
}

/// Makes a clone copy packs rather than the whole store file.
const PACKS_ONLY: (&str, &str) = ("MONOFS_CLONE_WHOLE_FILE", "0");

/// How long a commit that has started writing takes to finish, at most
/// (the throttled transfers below leave several times that before the
/// next commit).
const SETTLE: Duration = Duration::from_millis(300);

/// Polls `cond` every 20 ms for up to 60 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `monofs ARGS` with the token from `token`, output captured.
fn spawn(args: &[&dyn AsRef<std::ffi::OsStr>], token: &Path) -> Child {
    spawn_env(args, token, &[])
}

/// [`spawn`] with extra environment variables.
fn spawn_env(args: &[&dyn AsRef<std::ffi::OsStr>], token: &Path, env: &[(&str, &str)]) -> Child {
    let mut c = monofs();
    c.envs(env.iter().copied());
    for a in args {
        c.arg(a);
    }
    c.arg("--token-file").arg(token).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn")
}

/// A repository of `mib` MiB of random data (stored raw, so its size is
/// known) and one small file.
fn big_repo(s: &Scratch, mib: usize, seed: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let (repo, data) = (s.path("repo"), s.path("data"));
    write(&data.join("big.bin"), &Rng::new(seed).bytes(mib << 20));
    write(&data.join("small.txt"), b"small\n");
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"big"]);
    (repo, data)
}

/// What a clone that was stopped half-way shows: no revision, and fsck
/// passes (a pack clone); or no repository at all, at most a partial copy
/// of the store file (a whole-file clone).
fn nothing_half_visible(copy: &Path) {
    let log = monofs().arg("log").arg(copy).output().expect("log");
    assert!(log.stdout.is_empty(), "an unfinished clone shows revisions: {}", String::from_utf8_lossy(&log.stdout));
    assert!(!log.status.success(), "an unfinished clone opens as a repository");
    if copy.join("monofs.redb").exists() || copy.join("monofs.redb.partial").exists() {
        // Refused as what it is, so that nothing is committed into it.
        let err = String::from_utf8_lossy(&log.stderr);
        assert!(err.contains("an unfinished clone"), "{err}");
    }
}

#[test]
fn killed_clone_and_sync_resume_without_resending() {
    let s = Scratch::default();
    let (repo, data) = big_repo(&s, 24, 7);
    let token = s.path("token");
    std::fs::write(&token, "t").expect("token");
    let all = json(&ok_env(&[&"clone", &repo, &s.path("reference"), &"--json"], &[PACKS_ONLY]));
    assert_eq!(all["mode"], "packs", "{all}");
    let all = all["objects_sent"].as_u64().expect("n");

    // A pack clone from a throttled server, killed (SIGKILL) once a batch
    // is in.
    let copy = s.path("copy");
    let slow = serve_with(&repo, &token, &["--bwlimit", "8M"]);
    let mut client = spawn_env(&[&"clone", &slow.url, &copy], &token, &[PACKS_ONLY]);
    wait_for("a committed batch", || stored(&copy) >= 4 << 20);
    std::thread::sleep(SETTLE);
    client.kill().expect("kill");
    client.wait().expect("wait");
    drop(slow);
    nothing_half_visible(&copy);
    let server = serve(&repo, &token);
    // The unfinished pack clone is resumed as one, whole-file copies allowed or not.
    let resumed = json(&ok(&[&"clone", &server.url, &copy, &"--token-file", &token, &"--json"]));
    assert_eq!(resumed["mode"], "packs", "{resumed}");
    let rest = resumed["objects_sent"].as_u64().expect("n");
    assert!(rest < all && rest > 0, "resumed clone sent {rest} of {all} objects");
    ok(&[&"checkout", &copy, &"HEAD", &"--to", &s.path("out")]);
    assert_same_tree(&data, &s.path("out"));
    drop(server);

    // A whole-file clone, killed the same way, keeps the whole pieces
    // (1 MiB) it has.
    let size = std::fs::metadata(repo.join("monofs.redb")).expect("store").len();
    let copy = s.path("copy-file");
    let slow = serve_with(&repo, &token, &["--bwlimit", "8M"]);
    let mut client = spawn(&[&"clone", &slow.url, &copy], &token);
    wait_for("part of the store file", || stored(&copy) >= 4 << 20);
    client.kill().expect("kill");
    client.wait().expect("wait");
    nothing_half_visible(&copy);
    let had = std::fs::metadata(copy.join("monofs.redb.partial")).expect("partial copy").len();
    let resumed = json(&ok(&[&"clone", &slow.url, &copy, &"--token-file", &token, &"--json"]));
    assert_eq!(resumed["mode"], "file", "{resumed}");
    assert_resumed(&resumed, had, size);
    assert!(!copy.join("monofs.redb.partial").exists());
    drop(slow);
    ok(&[&"checkout", &copy, &"HEAD", &"--to", &s.path("out-file")]);
    assert_same_tree(&data, &s.path("out-file"));
    assert!(ok(&[&"fsck", &copy]).contains("0 problems"));

    // The same for a sync (pull, batches of 32 MiB), killed after a batch,
    // into the clone made in one go (whose store file has no free pages
    // left by a kill, so it grows as batches commit).
    let copy = s.path("reference");
    // 80 MiB: about 1280 chunks, three batches of at most 512. The kill
    // comes once the first is in; the 48 MiB after it take 3 s at this
    // rate, so a loaded machine, where committing that first batch is slow
    // while the next is fetched, still kills the sync before it ends.
    write(&data.join("big2.bin"), &Rng::new(8).bytes(80 << 20));
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"big2"]);
    let slow = serve_with(&repo, &token, &["--bwlimit", "16M"]);
    let before = stored(&copy);
    let mut client = spawn(&[&"sync", &copy, &slow.url, &"--pull"], &token);
    wait_for("a committed batch", || stored(&copy) >= before + (16 << 20));
    std::thread::sleep(SETTLE);
    client.kill().expect("kill");
    client.wait().expect("wait");
    assert!(!ok(&[&"log", &copy]).contains("big2"), "the revision showed before its objects");
    let resumed = json(&ok(&[&"sync", &copy, &slow.url, &"--pull", &"--token-file", &token, &"--json"]));
    let rest = resumed["objects_sent"].as_u64().expect("n");
    assert!(rest > 0 && rest < 1100, "resumed sync sent {rest} objects: {resumed}");
    drop(slow);
    assert!(ok(&[&"log", &copy]).contains("big2"));
    assert!(ok(&[&"fsck", &copy]).contains("0 problems"));
}

#[test]
fn server_killed_mid_clone_then_restarted() {
    let s = Scratch::default();
    let (repo, data) = big_repo(&s, 16, 11);
    let token = s.path("token");
    std::fs::write(&token, "t").expect("token");
    for whole_file in [true, false] {
        let env: &[(&str, &str)] = if whole_file { &[] } else { &[PACKS_ONLY] };
        let copy = s.path(if whole_file { "copy-file" } else { "copy" });
        let out = s.path(if whole_file { "out-file" } else { "out" });
        server_killed_mid_clone(&repo, &data, &token, &copy, &out, env);
    }
}

/// A whole-file clone resumed from a partial copy of `had` bytes kept
/// most of them, and was sent the rest of the `size` bytes.
fn assert_resumed(summary: &serde_json::Value, had: u64, size: u64) {
    let kept = summary["resumed_at"].as_u64().unwrap_or(0);
    let sent = summary["bytes_sent"].as_u64().expect("bytes_sent");
    assert!(had >= 3 << 20 && kept >= had - (2 << 20) && kept <= had, "kept {kept} of {had} bytes: {summary}");
    assert_eq!(kept + sent, size, "{summary}");
}

fn server_killed_mid_clone(repo: &Path, data: &Path, token: &Path, copy: &Path, out_dir: &Path, env: &[(&str, &str)]) {
    let (repo, data, token, copy) = (repo.to_owned(), data.to_owned(), token.to_owned(), copy.to_owned());
    let mut slow = serve_with(&repo, &token, &["--bwlimit", "6M"]);
    let client = spawn_env(&[&"clone", &slow.url, &copy], &token, env);
    wait_for("a committed batch", || stored(&copy) >= 3 << 20);
    slow.child.kill().expect("kill -9 the server");
    let out = client.wait_with_output().expect("client");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    nothing_half_visible(&copy);
    drop(slow);
    let had = std::fs::metadata(copy.join("monofs.redb.partial")).map_or(0, |m| m.len());
    let server = serve(&repo, &token);
    let done = json(&ok_env(&[&"clone", &server.url, &copy, &"--token-file", &token, &"--json"], env));
    if env.is_empty() {
        // The restarted server reopened its store, which rewrote a few of
        // its pages (redb's header and allocator state): only those are
        // sent again.
        assert_eq!(done["mode"], "file", "{done}");
        let size = std::fs::metadata(repo.join("monofs.redb")).expect("store").len();
        assert_resumed(&done, had, size);
    } else {
        assert!(done["objects_sent"].as_u64().expect("n") < 200, "re-sent everything: {done}");
    }
    drop(server);
    ok(&[&"checkout", &copy, &"HEAD", &"--to", &out_dir]);
    assert_same_tree(&data, out_dir);
    assert!(ok(&[&"fsck", &copy]).contains("0 problems"));
}

#[test]
fn disk_full_on_the_receiver() {
    let s = Scratch::default();
    let Some(fs) = SmallFs::mount(&s.path("small"), 10) else { return };
    let (repo, data) = big_repo(&s, 24, 12);
    for (name, env) in [("copy-file", &[][..]), ("copy", &[PACKS_ONLY][..])] {
        fs.resize(10);
        let copy = fs.0.join(name);
        let err = fails(&[&"clone", &repo, &copy], env);
        assert!(err.contains("No space left") || err.contains("space"), "{err}");
        nothing_half_visible(&copy);
        // A whole-file clone removes its partial copy: the disk is not left full.
        assert!(!copy.join("monofs.redb.partial").exists());
        fs.resize(256);
        let done = json(&ok_env(&[&"clone", &repo, &copy, &"--json"], env));
        assert_eq!(done["mode"], if env.is_empty() { "file" } else { "packs" }, "{done}");
        let out = s.path(&format!("out-{name}"));
        ok(&[&"checkout", &copy, &"HEAD", &"--to", &out]);
        assert_same_tree(&data, &out);
        assert!(ok(&[&"fsck", &copy]).contains("0 problems"));
        std::fs::remove_dir_all(&copy).expect("rm");
    }
}

#[test]
fn concurrent_syncs_into_one_repository() {
    let s = Scratch::default();
    let (repo, data) = big_repo(&s, 8, 13);
    let copy = s.path("copy");
    ok(&[&"clone", &repo, &copy]);
    let token = s.path("token");
    std::fs::write(&token, "t").expect("token");
    let run_two = |a: Vec<std::ffi::OsString>, b: Vec<std::ffi::OsString>| -> Vec<std::process::Output> {
        let start = |args: &[std::ffi::OsString]| {
            monofs()
                .args(args)
                .env("MONOFS_TOKEN", "t")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        };
        let (x, y) = (start(&a), start(&b));
        vec![x.wait_with_output().expect("wait"), y.wait_with_output().expect("wait")]
    };
    let args = |v: &[&dyn AsRef<std::ffi::OsStr>]| v.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>();

    // Into a local repository: the second waits for the first, both succeed.
    write(&data.join("two.bin"), &Rng::new(14).bytes(6 << 20));
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"two"]);
    for out in run_two(args(&[&"sync", &repo, &copy]), args(&[&"sync", &repo, &copy])) {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(ok(&[&"log", &copy]).contains("two"));
    assert!(ok(&[&"fsck", &copy]).contains("0 problems"));

    // Into one server, from two replicas with diverging new revisions: one
    // wins, the other is refused with a clear message, nothing is mixed.
    let other = s.path("other");
    ok(&[&"clone", &repo, &other]);
    write(&data.join("three.bin"), &Rng::new(15).bytes(6 << 20));
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"three-a"]);
    write(&data.join("three.bin"), &Rng::new(16).bytes(6 << 20));
    ok(&[&"commit", &other, &"--from", &data, &"-m", &"three-b"]);
    let server = serve(&copy, &token);
    let outs = run_two(args(&[&"sync", &repo, &server.url]), args(&[&"sync", &other, &server.url]));
    let won: Vec<bool> = outs.iter().map(|o| o.status.success()).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "exactly one wins: {outs:?}");
    let loser = outs.iter().find(|o| !o.status.success()).expect("a loser");
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(err.starts_with("error: ") && (err.contains("run it again") || err.contains("not an ancestor")), "{err}");
    drop(server);
    let log = ok(&[&"log", &copy]);
    assert!(log.contains("three-a") != log.contains("three-b"), "{log}");
    assert!(ok(&[&"fsck", &copy]).contains("0 problems"));
}

#[test]
fn encrypted_clone_stays_sealed_and_opens_with_the_passphrase() {
    let s = Scratch::default();
    let (repo, data, copy) = (s.path("repo"), s.path("data"), s.path("copy"));
    make_tree(&data);
    let pw = [("MONOFS_PASSPHRASE", "pw")];
    ok_env(&[&"init", &repo, &"--encrypt"], &pw);
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"secret-rev"], &pw);
    let out = monofs().arg("clone").arg(&repo).arg(&copy).stdin(Stdio::null()).output().expect("clone");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let raw = std::fs::read(copy.join("monofs.redb")).expect("read");
    assert!(!raw.windows(12).any(|w| w == b"hello monofs"), "plaintext in the clone");
    assert!(ok_env(&[&"log", &copy], &pw).contains("secret-rev"));
    let err = fails(&[&"log", &copy], &[("MONOFS_PASSPHRASE", "wrong")]);
    assert!(err.contains("passphrase"), "{err}");
    ok_env(&[&"checkout", &copy, &"HEAD", &"--to", &s.path("out")], &pw);
    assert_same_tree(&data, &s.path("out"));

    // Incremental sync of the encrypted pair: with the passphrase it walks,
    // without it compares ids; both work and stay sealed.
    write(&data.join("a/more.txt"), b"more secret\n");
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"second"], &pw);
    let walked = json(&ok_env(&[&"sync", &repo, &copy, &"--json"], &pw));
    assert_eq!(walked["mode"], "walk");
    write(&data.join("a/more2.txt"), b"more\n");
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"third"], &pw);
    let out = monofs().args(["sync", "--json"]).arg(&repo).arg(&copy).stdin(Stdio::null()).output().expect("sync");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout))["mode"], "id-set");
    assert!(ok_env(&[&"log", &copy], &pw).contains("third"));
}

/// The repository's dictionary count, from `monofs stats`.
fn dictionaries(repo: &Path, env: &[(&str, &str)]) -> u64 {
    let out: serde_json::Value = json(&ok_env(&[&"stats", &repo, &"--json"], env));
    out["dictionaries"].as_u64().expect("dictionaries in stats")
}

#[test]
fn dictionaries_reach_replicas_before_the_objects_that_need_them() {
    for encrypted in [false, true] {
        let s = Scratch::default();
        let (repo, data, copy, mirror) = (s.path("repo"), s.path("data"), s.path("copy"), s.path("mirror"));
        let env: &[(&str, &str)] = if encrypted { &[("MONOFS_PASSPHRASE", "pw")] } else { &[] };
        if encrypted {
            ok_env(&[&"init", &repo, &"--encrypt"], env);
        } else {
            init(&repo);
        }
        // Too little to learn from: no dictionary yet, and replicas made now have none.
        write(&data.join("hello.txt"), b"hello\n");
        ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"small"], env);
        assert_eq!(dictionaries(&repo, env), 0);
        ok(&[&"clone", &repo, &copy]);
        ok(&[&"clone", &repo, &mirror]);

        make_source_tree(&data.join("src"), 400, "DICT-MARKER-7");
        ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"source"], env);
        assert_eq!(dictionaries(&repo, env), 1, "a source tree trains one");

        // A local push, then one over HTTP: each replica gets the
        // dictionary, verifies the objects with it and reads them back.
        ok_env(&[&"sync", &repo, &copy], env);
        let token = s.path("token");
        std::fs::write(&token, "tok").expect("token");
        let server = serve(&mirror, &token);
        ok_env(&[&"sync", &repo, &server.url, &"--token-file", &token], env);
        // Once both have it, a sync compares dictionary keys, not records.
        let noop = json(&ok_env(&[&"sync", &repo, &server.url, &"--token-file", &token, &"--json"], env));
        assert!(noop["wire_bytes"].as_u64().expect("n") < 10_000, "{noop}");
        drop(server);
        // A clone made now carries it from the start.
        let fresh = s.path("fresh");
        ok(&[&"clone", &repo, &fresh]);
        for (i, r) in [&copy, &mirror, &fresh].into_iter().enumerate() {
            assert_eq!(dictionaries(r, env), 1, "{}", r.display());
            assert!(ok_env(&[&"fsck", r], env).contains("0 problems"), "{}", r.display());
            let out = s.path(&format!("out{i}"));
            ok_env(&[&"checkout", r, &"HEAD", &"--to", &out], env);
            assert_same_tree(&data, &out);
        }
        if encrypted {
            for r in [&repo, &copy, &mirror, &fresh] {
                let raw = std::fs::read(r.join("monofs.redb")).expect("read");
                assert!(!raw.windows(13).any(|w| w == b"DICT-MARKER-7"), "plaintext in {}", r.display());
            }
        }
    }
}

#[test]
fn tampered_object_is_rejected() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    let random = Rng::new(9).bytes(2_000_000);
    write(&data.join("random.bin"), &random);
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    // Random data is stored raw: flip one byte of it inside the store file.
    let store = repo.join("monofs.redb");
    let mut bytes = std::fs::read(&store).expect("read");
    let needle = &random[500_000..500_064];
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("chunk bytes in the store");
    bytes[at + 10] ^= 0x55;
    std::fs::write(&store, &bytes).expect("write");
    // Both ways of cloning verify every object: the whole-file copy after
    // the copy and before it becomes a repository, the pack copy on arrival.
    for (name, env) in [("copy-file", &[][..]), ("copy", &[PACKS_ONLY][..])] {
        let copy = s.path(name);
        let err = fails(&[&"clone", &repo, &copy], env);
        assert!(err.contains("failed verification") || err.contains("corrupt"), "{err}");
        assert!(monofs().arg("log").arg(&copy).output().expect("log").stdout.is_empty(), "nothing visible");
        assert!(!copy.join("monofs.redb.partial").exists(), "a copy that failed verification is removed");
    }
    // The same over HTTP (the server sends the tampered store file whole).
    let token = s.path("token");
    std::fs::write(&token, "t").expect("token");
    let server = serve(&repo, &token);
    let copy = s.path("copy-http");
    let err = fails(&[&"clone", &server.url, &copy, &"--token-file", &token], &[]);
    assert!(err.contains("failed verification") || err.contains("corrupt"), "{err}");
    assert!(monofs().arg("log").arg(&copy).output().expect("log").stdout.is_empty(), "nothing visible");
}

#[test]
fn bad_arguments() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let err = fails(&[&"sync", &repo, &s.path("nope")], &[]);
    assert!(err.contains("nope"), "{err}");
    let err = fails(&[&"sync", &repo, &repo], &[]);
    assert!(err.contains("same repository"), "{err}");
    let err = fails(&[&"sync", &repo, &s.path("x"), &"--mode", &"crdt"], &[]);
    assert!(err.contains("not available"), "{err}");
    let other = s.path("other");
    init(&other);
    let err = fails(&[&"sync", &repo, &other], &[]);
    assert!(err.contains("different repositories"), "{err}");
    let err = fails(&[&"clone", &"http://127.0.0.1:1", &s.path("c")], &[("MONOFS_TOKEN", "x")]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!s.path("c").exists(), "a failed clone left the directory it made");
    // A destination that cannot be made fails first, without waiting for
    // the source.
    let err = fails(&[&"clone", &repo, &"/proc/no/such"], &[]);
    assert!(err.contains("creating /proc/no/such"), "{err}");
    let _ = Command::new("true").status();
}

/// A self-signed certificate and key for `localhost` (by name only) as
/// `openssl req -x509` makes them, plus `extra` options; `None` without
/// openssl.
fn self_signed(s: &Scratch, name: &str, extra: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (s.path(&format!("{name}.crt")), s.path(&format!("{name}.key")));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    made.is_ok_and(|st| st.success()).then_some((cert, key))
}

#[test]
fn https_with_self_signed_certificates() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    write(&data.join("f.txt"), b"over tls\n");
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"tls-rev"]);
    let Some((other, _)) = self_signed(&s, "other", &[]) else {
        eprintln!("SKIP https_with_self_signed_certificates: openssl is not installed");
        return;
    };
    // openssl's -x509 marks a certificate as a CA unless told otherwise,
    // which webpki alone refuses as a server's own.
    for (name, extra) in [("ca", &[][..]), ("leaf", &["-addext", "basicConstraints=critical,CA:FALSE"][..])] {
        let (cert, key) = self_signed(&s, name, extra).expect("openssl");
        let token = s.path(&format!("token-{name}"));
        let tls = ["--tls-cert", cert.to_str().expect("utf-8"), "--tls-key", key.to_str().expect("utf-8")];
        let server = serve_with(&repo, &token, &tls);
        assert!(server.url.starts_with("https://"), "{}", server.url);
        assert!(token.exists(), "a token was generated");
        let by_name = server.url.replace("127.0.0.1", "localhost");
        let err = fails(&[&"clone", &by_name, &s.path(&format!("{name}-0")), &"--token-file", &token], &[]);
        assert!(err.contains("not trusted") && err.contains("--ca-cert"), "{name}: {err}");
        let err = fails(
            &[&"clone", &by_name, &s.path(&format!("{name}-1")), &"--token-file", &token, &"--ca-cert", &other],
            &[],
        );
        assert!(err.contains("not trusted"), "{name}, another certificate: {err}");
        // The name is checked even for the very certificate given: this one
        // names localhost, not 127.0.0.1.
        let err = fails(
            &[&"clone", &server.url, &s.path(&format!("{name}-2")), &"--token-file", &token, &"--ca-cert", &cert],
            &[],
        );
        assert!(err.contains("another name"), "{name}, by address: {err}");
        let copy = s.path(&format!("{name}-3"));
        ok(&[&"clone", &by_name, &copy, &"--token-file", &token, &"--ca-cert", &cert]);
        assert!(ok(&[&"log", &copy]).contains("tls-rev"), "{name}");
        // HTTP/1.1 only: an HTTP/2 connection escaped the header and idle
        // limits.
        let port = server.url.rsplit(':').next().expect("port").trim_end_matches('/');
        let alpn = std::process::Command::new("openssl")
            .args(["s_client", "-alpn", "h2,http/1.1", "-connect", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("openssl s_client");
        let said = String::from_utf8_lossy(&alpn.stdout);
        assert!(said.contains("ALPN protocol: http/1.1"), "{name}: {said}");
    }
}

#[test]
fn served_repository_is_free_between_syncs() {
    let s = Scratch::default();
    let (repo, data, mirror, token) = repo_and_mirror(&s, "tok-free");
    let env = [("MONOFS_TOKEN", "tok-free")];
    let server = serve(&mirror, &token);
    write(&data.join("a/pushed.txt"), b"pushed\n");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"pushed-while-served"]);
    ok_env(&[&"sync", &repo, &server.url], &env);

    // Idle, the server lets go (2 s after its last request): log and
    // commit work on the served repository, right after a sync too.
    let log = ok(&[&"log", &mirror]);
    assert!(log.contains("pushed-while-served"), "{log}");
    write(&data.join("a/server.txt"), b"made on the server\n");
    ok(&[&"commit", &mirror, &"--from", &data, &"-m", &"made-on-the-server"]);

    // Another process holding it (an NFS server, which takes other commands
    // through its control socket but not a sync): the sync is refused,
    // naming that process.
    let mut holder = monofs()
        .arg("serve")
        .arg(&mirror)
        .args(["--nfs", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn holder");
    // (Its control socket appears once it has the repository.)
    wait_for("the holder to take the repository", || mirror.join("control.sock").exists());
    let err = fails(&[&"sync", &repo, &server.url, &"--pull"], &env);
    assert!(err.contains("503") && err.contains(&holder.id().to_string()), "{err}");
    let _ = holder.kill();
    let _ = holder.wait();
    ok_env(&[&"sync", &repo, &server.url, &"--pull"], &env);
    assert!(ok(&[&"log", &repo]).contains("made-on-the-server"));
}

/// A clone into its own source is refused at once (it used to wait two
/// minutes for its own lock); so is a sync of a repository with itself.
#[test]
fn a_clone_into_itself_is_refused_at_once() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let slash = format!("{}/", repo.display());
    for target in [&repo as &dyn AsRef<std::ffi::OsStr>, &slash] {
        let started = Instant::now();
        let err = fails(&[&"clone", &repo, target], &[]);
        assert!(err.contains("into itself"), "{err}");
        let err = fails(&[&"sync", &repo, target], &[]);
        assert!(err.contains("the same repository"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

/// A server that stops answering mid-transfer (stopped, not dead: the
/// connection stays open) is given up once it has been silent for the idle
/// limit, not after hours; the clone resumes once it answers again.
#[test]
fn a_stalled_server_is_given_up_and_the_clone_resumes() {
    let s = Scratch::default();
    let (repo, data) = big_repo(&s, 16, 21);
    let token = s.path("token");
    std::fs::write(&token, "t").expect("token");
    let copy = s.path("copy");
    let slow = serve_with(&repo, &token, &["--bwlimit", "4M"]);
    let client = spawn_env(&[&"clone", &slow.url, &copy], &token, &[("MONOFS_HTTP_IDLE_SECS", "2")]);
    wait_for("part of the store file", || stored(&copy) >= 2 << 20);
    let pid = nix::unistd::Pid::from_raw(slow.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP the server");
    let stopped = Instant::now();
    let out = client.wait_with_output().expect("client");
    let waited = stopped.elapsed();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT the server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    assert!(waited < Duration::from_secs(20), "the client waited {waited:?} for a silent server");
    nothing_half_visible(&copy);
    ok(&[&"clone", &slow.url, &copy, &"--token-file", &token]);
    let out = s.path("out");
    ok(&[&"checkout", &copy, &"HEAD", &"--to", &out]);
    assert_same_tree(&data, &out);
}

#[test]
fn a_sync_without_the_key_leaves_no_stale_working_tree() {
    let s = Scratch::default();
    let (repo, data, copy) = (s.path("repo"), s.path("data"), s.path("copy"));
    make_tree(&data);
    let pw = [("MONOFS_PASSPHRASE", "pw")];
    let no_key = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let out = monofs().args(args).env_remove("MONOFS_PASSPHRASE").stdin(Stdio::null()).output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok_env(&[&"init", &repo, &"--encrypt"], &pw);
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"one"], &pw);
    no_key(&[&"clone", &repo, &copy]);

    // A clean replica: its working tree follows HEAD at the next open with
    // the key, so a commit there does not undo what the sync brought.
    write(&data.join("a/new.txt"), b"brought by the sync\n");
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"two"], &pw);
    assert_eq!(json(&no_key(&[&"sync", &repo, &copy, &"--json"]))["worktree_kept"], true);
    // Clones of it, whole-file or by packs, take the note along.
    for (name, env) in [("c-file", None), ("c-packs", Some(PACKS_ONLY))] {
        let mut clone = monofs();
        clone.args(["clone"]).arg(&copy).arg(s.path(name)).env_remove("MONOFS_PASSPHRASE").stdin(Stdio::null());
        let out = clone.envs(env).output().expect("clone");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let err = fails(&[&"commit", &s.path(name), &"-m", &"on a clone of the replica"], &pw);
        assert!(err.contains("nothing to commit"), "{name}: {err}");
    }
    // A sync with the key before that open takes it along too.
    write(&data.join("a/new2.txt"), b"and another\n");
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"two-b"], &pw);
    assert_eq!(json(&ok_env(&[&"sync", &repo, &copy, &"--json"], &pw))["worktree_kept"], false);
    let err = fails(&[&"commit", &copy, &"-m", &"on the replica"], &pw);
    assert!(err.contains("nothing to commit"), "{err}");
    ok_env(&[&"checkout", &copy, &"HEAD", &"--to", &s.path("out")], &pw);
    assert_same_tree(&data, &s.path("out"));

    // A replica with uncommitted changes keeps them, and says so once.
    if !super::mount::fuse_available() {
        return;
    }
    let m = super::mount::Mount::start_env(&copy, &s.path("mnt"), &[], Stdio::null(), &pw);
    write(&m.mnt.join("local.txt"), b"not committed\n");
    m.detach();
    write(&data.join("a/third.txt"), b"three\n");
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"three"], &pw);
    no_key(&[&"sync", &repo, &copy]);
    let out = monofs().args(["diff"]).arg(&copy).arg("HEAD").env("MONOFS_PASSPHRASE", "pw").output().expect("diff");
    let (said, diff) = (String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("changes made before a sync"), "{said}");
    assert!(diff.contains("local.txt"), "{diff}");
    let again = monofs().args(["log"]).arg(&copy).env("MONOFS_PASSPHRASE", "pw").output().expect("log");
    assert!(!String::from_utf8_lossy(&again.stderr).contains("changes made before"), "said once");
}
