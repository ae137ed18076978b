//! `monocore tmp` end to end, as root: real user/mount/pid/net namespaces,
//! cgroups and a FUSE root file system. Each test has its own
//! `MONOCORE_HOME` and a busybox image built offline.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Env, have_tools};

/// An environment with image `bb` imported, or `None` when the test cannot
/// run here (not root, or tools missing outside CI).
fn sandbox_env(test: &str) -> Option<Env> {
    if !monofs_fixtures::is_root() {
        assert!(std::env::var("CI").is_err(), "{test}: CI runs as root");
        eprintln!("SKIP {test}: needs root");
        return None;
    }
    if !have_tools(test) {
        return None;
    }
    let env = Env::new();
    let layout = monofs_fixtures::oci::busybox_layout(env.dir.path());
    env.ok(&[&"import", &layout, &"--tag", &"bb"]);
    Some(env)
}

fn tmp(env: &Env, args: &[&str]) -> Output {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"tmp"];
    for a in args {
        all.push(a);
    }
    env.run(&all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a shell command line in a sandbox of `bb`; asserts success; stdout.
fn sh(env: &Env, extra: &[&str], script: &str) -> String {
    let mut args = extra.to_vec();
    args.extend(["bb", "--", "/bin/sh", "-c", script]);
    let out = tmp(env, &args);
    assert!(out.status.success(), "{script}: {:?}\n{}{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

/// Everything a sandbox of `env` could leave behind on the host.
fn leftovers(env: &Env) -> Vec<String> {
    let mut found = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let sandboxes: Vec<String> = std::fs::read_dir(env.home().join("sandboxes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for id in &sandboxes {
        found.push(format!("state dir {id}"));
    }
    for id in sandboxes.iter().chain(owned_ids(env).iter()) {
        if mounts.contains(&format!("/run/monocore/{id}")) {
            found.push(format!("mount of {id}"));
        }
        if Path::new("/run/monocore").join(id).exists() {
            found.push(format!("run dir {id}"));
        }
        for c in ["memory", "pids", "cpu"] {
            if Path::new("/sys/fs/cgroup").join(c).join(format!("monocore-{id}")).exists() {
                found.push(format!("cgroup {c} of {id}"));
            }
        }
    }
    let out = env.ok(&[&"ps", &"--json"]);
    if super::json(&out).as_array().is_some_and(|a| !a.is_empty()) {
        found.push(format!("ps lists {out}"));
    }
    found
}

/// Ids of sandboxes this environment started (recorded by `started`).
fn owned_ids(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("ids")).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// A background `monocore tmp`, killed if the test fails before it ends.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `monocore tmp bb -- ARGS` in the background and waits until `ps`
/// shows it; returns the process and the sandbox id.
fn started(env: &Env, args: &[&str]) -> (Background, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_monocore"));
    c.args(["tmp", "bb", "--"]).args(args);
    started_by(env, c)
}

/// [`started`] for a command that runs `monocore tmp` (in the end: it may
/// be a shell that execs it).
fn started_by(env: &Env, mut c: Command) -> (Background, String) {
    c.env("MONOCORE_HOME", env.home());
    let child = Background(c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let known = owned_ids(env);
    loop {
        let ps = super::json(&env.ok(&[&"ps", &"--json"]));
        // The new one: not started before, and its command running (init recorded).
        let new = ps
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"].as_str().is_some_and(|id| !known.iter().any(|k| k == id)) && s["init"].is_object());
        if let Some(id) = new.and_then(|s| s["id"].as_str()) {
            let mut ids = known.clone();
            ids.push(id.to_owned());
            std::fs::write(env.path("ids"), ids.join("\n")).expect("record id");
            return (child, id.to_owned());
        }
        assert!(Instant::now() < deadline, "sandbox did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the command of sandbox `id` (a child of its init) catches
/// `signal`: its trap is set. A signal relayed before that takes its
/// default action (the test saw 138 instead of the trap's status on a
/// loaded machine).
fn wait_until_caught(env: &Env, id: &str, signal: nix::sys::signal::Signal) {
    let ps = super::json(&env.ok(&[&"ps", &"--json"]));
    let init = ps
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == id)
        .and_then(|s| s["init"]["pid"].as_u64())
        .expect("the sandbox's init");
    let bit = 1u64 << (signal as i32 - 1);
    let caught = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & bit != 0)
    };
    let children = |pid: &str| {
        let listed = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        listed.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Below the init (which catches every signal it relays): its pid 1,
        // then the command.
        let below: Vec<String> = children(&init.to_string()).iter().flat_map(|p| children(p)).collect();
        if below.iter().any(|p| caught(p)) {
            return;
        }
        assert!(Instant::now() < deadline, "the command never set its trap");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `monocore tmp ARGS` on a terminal (util-linux `script` makes one)
/// and types `input` into it; its stdin stays open until it ends.
fn on_a_terminal(env: &Env, args: &str, input: &[u8]) -> Output {
    use std::io::Write;
    let cmd = format!("{} tmp {args}", env!("CARGO_BIN_EXE_monocore"));
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("MONOCORE_HOME", env.home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("type");
    let out = child.wait_with_output().expect("wait");
    drop(stdin);
    out
}

fn wait_exit(child: &mut Background, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.0.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn exit_status_and_separate_streams_pass_through() {
    let Some(env) = sandbox_env("exit_status_and_separate_streams_pass_through") else { return };
    let out = tmp(&env, &["bb", "--", "/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "to-out\n");
    assert_eq!(stderr(&out), "to-err\n");
    let killed = tmp(&env, &["bb", "--", "/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(killed.status.code(), Some(137), "a signal death is 128+N");
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocore"))
        .env("MONOCORE_HOME", env.home())
        .args(["tmp", "bb", "--", "/bin/sh", "-c", "read line; echo got:$line"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(b"piped\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out), "got:piped\n");
    // Reopened by name (nginx logs to /dev/stdout), as root and as another
    // user: the output streams are the sandbox's to open, whoever owns ours.
    for user in ["0", "65534"] {
        let script = "echo by-name > /dev/stdout; echo err-by-name > /dev/stderr";
        let out = tmp(&env, &["--user", user, "bb", "--", "/bin/sh", "-c", script]);
        assert_eq!(stdout(&out), "by-name\n", "user {user}: {}", stderr(&out));
        assert_eq!(stderr(&out), "err-by-name\n", "user {user}");
    }
    // Stdin is not read ahead of the command (a `while read` loop around
    // monocore kept its input), and 2>&1 keeps the order of the lines.
    let script = format!(
        "printf 'a\\nb\\n' | {{ {bin} tmp bb -- true; cat; }}; {bin} tmp bb -- /bin/sh -c 'echo 1; echo 2 >&2; echo 3' 2>&1",
        bin = env!("CARGO_BIN_EXE_monocore")
    );
    let both = Command::new("sh").arg("-c").arg(&script).env("MONOCORE_HOME", env.home()).output().expect("sh");
    assert_eq!(String::from_utf8_lossy(&both.stdout), "a\nb\n1\n2\n3\n");
    // busybox (2 MB) was read through FUSE passthrough from a whole-file copy.
    let copies = std::fs::read_dir(env.home().join("cache/files")).map(Iterator::count).unwrap_or(0);
    assert!(copies >= 1, "no passthrough copy was made");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn image_config_and_options_shape_the_process() {
    let Some(env) = sandbox_env("image_config_and_options_shape_the_process") else { return };
    assert_eq!(sh(&env, &[], "echo $FROM_IMAGE $(pwd) $(id -u):$(id -g)"), "yes /tmp 0:0\n");
    // The image's default command is its cmd (/bin/sh, reading stdin).
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocore"))
        .env("MONOCORE_HOME", env.home())
        .args(["tmp", "bb"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(b"echo from-default-cmd\n").expect("write");
    assert_eq!(stdout(&child.wait_with_output().expect("wait")), "from-default-cmd\n");
    std::fs::write(env.path("envfile"), "# comment\nFROM_FILE=f1\nFROM_IMAGE=overridden-by-e\n").expect("envfile");
    let envfile = env.path("envfile");
    let out = sh(
        &env,
        &["--env-file", envfile.to_str().expect("utf-8"), "-e", "FROM_IMAGE=cli", "-w", "/work/dir", "-u", "1234:55"],
        "echo $FROM_IMAGE $FROM_FILE $(pwd) $(id -u):$(id -g) $HOME",
    );
    assert_eq!(out, "cli f1 /work/dir 1234:55 /\n");
    // A relative command runs from the working directory, as Docker runs it.
    let out = tmp(&env, &["-w", "/bin", "bb", "--", "./busybox", "echo", "relative"]);
    assert_eq!(stdout(&out), "relative\n", "{}", stderr(&out));
    let host = sh(&env, &[], "hostname");
    assert_eq!(host.trim().len(), 12, "the hostname is the sandbox id: {host}");
    // SIGPIPE has its default action, as on the host: a writer whose reader
    // is gone ends quietly.
    let script = "m=$(grep SigIgn /proc/self/status | cut -f2); echo $(( 0x$m & 0x1000 )); yes | head -n1";
    assert_eq!(sh(&env, &[], script), "0\ny\n");
    // An environment larger than the socket between supervisor and init
    // (an image may hold one) goes through; one larger than Linux takes is
    // refused by exec, at once; an env file past any such size is not read.
    let big = env.path("big.env");
    std::fs::write(&big, format!("BIG={}\n", "A".repeat(100_000))).expect("env file");
    assert_eq!(sh(&env, &["--env-file", big.to_str().expect("utf-8")], "echo ${#BIG}"), "100000\n");
    std::fs::write(&big, format!("BIG={}\n", "A".repeat(400_000))).expect("env file");
    let out = tmp(&env, &["--env-file", big.to_str().expect("utf-8"), "bb", "--", "true"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains("Argument list too long"), "{}", stderr(&out));
    std::fs::write(&big, vec![b'#'; 9 << 20]).expect("env file");
    let out = tmp(&env, &["--env-file", big.to_str().expect("utf-8"), "bb", "--", "true"]);
    assert!(stderr(&out).contains("larger than 8 MiB"), "{}", stderr(&out));
    // Nor does the command inherit what its caller ignores: a script's
    // background job ignores SIGINT and SIGQUIT, and a relayed Ctrl-C was
    // then lost on the command.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' INT QUIT HUP; exec {} tmp bb -- grep SigIgn /proc/self/status",
            env!("CARGO_BIN_EXE_monocore")
        ))
        .env("MONOCORE_HOME", env.home())
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let ignored = stdout(&out).trim().strip_prefix("SigIgn:\t").and_then(|m| u64::from_str_radix(m, 16).ok());
    // Signals 1-31 (the realtime ones are the C library's business).
    assert_eq!(ignored.map(|m| m & 0x7fff_ffff), Some(0), "{}", stdout(&out));
}

#[test]
fn the_sandbox_is_isolated_from_the_host() {
    let Some(env) = sandbox_env("the_sandbox_is_isolated_from_the_host") else { return };
    let secret = env.path("host-secret");
    std::fs::write(&secret, "x").expect("secret");
    let seen = sh(&env, &[], &format!("[ -e {} ] && echo seen || echo hidden", secret.display()));
    assert_eq!(seen, "hidden\n");
    // Own pid namespace: pid 1 is the sandbox's init, few processes.
    let ps = sh(&env, &[], "ps -o pid,comm");
    assert!(ps.lines().count() <= 4, "{ps}");
    assert!(ps.lines().any(|l| l.trim_start().starts_with("1 ")), "{ps}");
    // No route out with --scope none; loopback works.
    let net = sh(&env, &[], "ip route; ip -o link | grep -c LOOPBACK; ip -o addr show lo | grep -c 127.0.0.1");
    assert!(!net.contains("default"), "{net}");
    assert_eq!(net.lines().collect::<Vec<_>>(), ["1", "1"], "{net}");
    // Root inside is an unprivileged host id.
    let map = sh(&env, &[], "cat /proc/self/uid_map");
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields[0], "0");
    assert!(fields[1].parse::<u32>().expect("host id") >= 100_000, "{map}");
    // Files owned by root in the image are root's inside.
    assert_eq!(sh(&env, &[], "stat -c %u:%g /etc/marker /bin/busybox"), "0:0\n0:0\n");
    // /sys is read-only; no new privileges.
    assert!(sh(&env, &[], "touch /sys/x 2>&1; grep NoNewPrivs /proc/self/status").contains("NoNewPrivs:\t1"));
    let dev = sh(&env, &[], "ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 4 /dev/zero | wc -c");
    for d in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"] {
        assert!(dev.split_whitespace().any(|n| n == d), "/dev lacks {d}: {dev}");
    }
    assert!(dev.ends_with("4\n"), "{dev}");
    // No namespaces of its own (in a new user namespace it would have every
    // capability back), no keyring; fork and plain work still go.
    let script = "for ns in -U -m -n -p; do busybox unshare $ns true 2>&1 || echo refused; done; \
                  (true) && echo forked; seq 3 | wc -l; grep Seccomp: /proc/self/status";
    let out = sh(&env, &[], script);
    assert_eq!(out.matches("refused").count(), 4, "{out}");
    assert!(out.contains("Operation not permitted") && out.contains("forked\n3\n"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "no filter: {out}");
    // Without it (Docker's `--security-opt seccomp=unconfined`) a user
    // namespace of its own is allowed.
    let out = sh(&env, &["--security-opt", "seccomp=unconfined"], script);
    assert!(!out.contains("Seccomp:\t2") && out.contains("forked\n3\n"), "{out}");
    assert!(out.matches("refused").count() < 4, "still filtered: {out}");
}

#[test]
fn writes_are_thrown_away_unless_kept() {
    let Some(env) = sandbox_env("writes_are_thrown_away_unless_kept") else { return };
    sh(&env, &[], "echo hi > /etc/written; rm /etc/marker");
    assert_eq!(sh(&env, &[], "cat /etc/marker; [ -e /etc/written ] && echo kept || echo gone"), "image-file\ngone\n");
    // Mount points the runtime had to make (a volume's) are not the command's changes.
    let vol = env.path("vol");
    std::fs::create_dir(&vol).expect("vol");
    let volume = format!("{}:/mnt/vol", vol.display());
    let out = tmp(
        &env,
        &[
            "--keep",
            "-v",
            &volume,
            "bb",
            "--",
            "/bin/sh",
            "-c",
            "echo hi > /f; rm /etc/marker; mkdir /newdir; echo x >> /tmp/t; touch \"/tmp/x\nD bin-fake\"",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let id = err.split_whitespace().skip_while(|w| *w != "sandbox").nth(1).expect("kept id in message").to_owned();
    let diff = env.ok(&[&"diff", &id]);
    let mut lines: Vec<&str> = diff.lines().collect();
    lines.sort_unstable();
    // A name with a newline prints quoted, as one line: a sandbox cannot
    // fake a line of the report.
    assert_eq!(lines, ["A \"tmp/x\\nD bin-fake\"", "A f", "A newdir", "A tmp/t", "D etc/marker"], "{diff}");
    assert!(env.fails(&[&"diff", &"ffffffff"]).contains("no kept sandbox"));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn volumes_bind_host_paths_and_read_only_means_it() {
    let Some(env) = sandbox_env("volumes_bind_host_paths_and_read_only_means_it") else { return };
    let vol = env.path("vol");
    std::fs::create_dir(&vol).expect("vol");
    std::fs::write(vol.join("file"), "host data\n").expect("file");
    let ro = format!("{}:/data:ro", vol.display());
    let out = sh(
        &env,
        &["-v", &ro],
        "cat /data/file; echo y > /data/new 2>/dev/null && echo wrote || echo refused; mount -o remount,rw /data 2>/dev/null && echo remounted || echo stuck",
    );
    assert_eq!(out, "host data\nrefused\nstuck\n");
    assert!(!vol.join("new").exists());
    let rw = format!("{}:/data", vol.display());
    sh(&env, &["-v", &rw], "echo from-sandbox > /data/new");
    assert_eq!(std::fs::read_to_string(vol.join("new")).expect("written through the volume"), "from-sandbox\n");
    // Nested volumes are mounted parents first, whatever their order (the
    // inner one was hidden); two at one path are refused.
    let inner = env.path("inner");
    std::fs::create_dir(&inner).expect("inner");
    std::fs::write(inner.join("deep"), "inner\n").expect("file");
    let (a, b) = (format!("{}:/data/in", inner.display()), format!("{}:/data", vol.display()));
    assert_eq!(sh(&env, &["-v", &a, "-v", &b], "cat /data/in/deep /data/file"), "inner\nhost data\n");
    let twice = env.fails(&[&"tmp", &"-v", &b, &"-v", &format!("{}://data/", inner.display()), &"bb", &"--", &"true"]);
    assert!(twice.contains("two volumes are mounted there"), "{twice}");
    // A file where the image has a directory: said so, in the sandbox's terms.
    let file = format!("{}:/etc", vol.join("file").display());
    let err = stderr(&tmp(&env, &["-v", &file, "bb", "--", "true"]));
    assert!(err.contains("volume /etc: a file, where the image has a directory"), "{err}");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// What Docker users count on around a sandbox's streams and signals: its
/// output into a file others write too lands where they leave off (a
/// relay waiting in splice wrote back a stale position and overwrote
/// them), SIGUSR1 reaches the command (it killed the supervisor, which left
/// its sandbox behind), and a directory as stdin is refused (through
/// `/proc/self/fd/0` it was the host's tree).
#[test]
fn streams_and_signals_behave_as_under_docker() {
    use std::io::Write;
    let Some(env) = sandbox_env("streams_and_signals_behave_as_under_docker") else { return };
    let log = env.path("log");
    let mut shared = std::fs::File::create(&log).expect("log");
    let mut c = Command::new(env!("CARGO_BIN_EXE_monocore"));
    c.env("MONOCORE_HOME", env.home()).args(["tmp", "bb", "--", "/bin/sh", "-c", "sleep 2; echo sandbox"]);
    let mut child = c.stdout(shared.try_clone().expect("dup")).stderr(Stdio::null()).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(800));
    shared.write_all(b"meanwhile\n").expect("write");
    assert!(child.wait().expect("wait").success());
    shared.write_all(b"end\n").expect("write");
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "meanwhile\nsandbox\nend\n");

    let (mut child, id) = started(&env, &["/bin/sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done"]);
    wait_until_caught(&env, &id, nix::sys::signal::Signal::SIGUSR1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGUSR1)
        .expect("kill");
    let status = wait_exit(&mut child, Duration::from_secs(20)).expect("monocore exits after the command");
    assert_eq!(status.code(), Some(9), "the command's trap ran");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));

    let mut c = Command::new(env!("CARGO_BIN_EXE_monocore"));
    c.env("MONOCORE_HOME", env.home()).args(["tmp", "bb", "--", "ls", "/proc/self/fd/0/"]);
    let out = c.stdin(std::fs::File::open("/").expect("open /")).output().expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input is a directory"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// The peak resident memory of `monocore tmp ARGS` (the supervisor), read
/// from its `VmHWM` while it runs; asserts it succeeds.
fn supervisor_peak_rss(env: &Env, args: &[&str]) -> u64 {
    let mut child = env.command().arg("tmp").args(args).stdout(Stdio::null()).spawn().expect("spawn");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(line) = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        {
            let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            peak = peak.max(kib << 10);
        }
        if let Some(exit) = child.try_wait().expect("wait") {
            assert!(exit.success(), "{args:?}: {exit:?}");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn limits_are_enforced_and_reported() {
    let Some(env) = sandbox_env("limits_are_enforced_and_reported") else { return };
    let out = tmp(
        &env,
        &[
            "--memory",
            "16m",
            "bb",
            "--",
            "/bin/sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(!stdout(&out).contains("survived"));
    assert!(stderr(&out).contains("out of memory"), "{}", stderr(&out));
    // Files the sandbox writes are held by its supervisor, outside its
    // cgroup, until stored: a quarter of its limit, not up to 256 MiB. (Its
    // caches take up to 128 MiB more: chunks read, and the store's pages.)
    let idle = supervisor_peak_rss(&env, &["--memory", "32m", "bb", "--", "sleep", "1"]);
    let write = "head -c 300000000 /dev/urandom >/big";
    let peak = supervisor_peak_rss(&env, &["--memory", "32m", "bb", "--", "/bin/sh", "-c", write]);
    assert!(peak < idle + (170 << 20), "the supervisor peaked at {} MiB ({} idle)", peak >> 20, idle >> 20);
    // So are the files and directories it makes, which that process keeps
    // in memory however small they are: 16 MiB allows 8,192 more.
    let many = tmp(&env, &["--memory", "16m", "bb", "--", "/bin/sh", "-c", "cd /tmp && seq 1 10000 | xargs mkdir"]);
    assert!(!many.status.success());
    assert!(stderr(&many).contains("No space left on device"), "{}", stderr(&many));
    assert_eq!(sh(&env, &["--memory", "16m"], "cd /tmp && seq 1 5000 | xargs mkdir && ls | wc -l").trim(), "5000");
    // config.toml's defaults apply when the command line says nothing.
    std::fs::write(env.home().join("config.toml"), "memory = \"16m\"\n").expect("config");
    let by_config = tmp(&env, &["bb", "--", "/bin/sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a)"]);
    assert_eq!(by_config.status.code(), Some(137), "{}", stderr(&by_config));
    std::fs::write(env.home().join("config.toml"), "memroy = \"16m\"\n").expect("config");
    assert!(env.fails(&[&"tmp", &"bb", &"--", &"true"]).contains("bad config"));
    std::fs::remove_file(env.home().join("config.toml")).expect("rm config");
    let forks =
        tmp(&env, &["--pids", "4", "bb", "--", "/bin/sh", "-c", "for i in 1 2 3 4 5 6; do sleep 2 & done; wait"]);
    assert!(stderr(&forks).contains("can't fork"), "{}", stderr(&forks));
    let start = Instant::now();
    let slow = tmp(&env, &["--timeout", "1s", "bb", "--", "sleep", "30"]);
    assert_eq!(slow.status.code(), Some(124));
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(stderr(&slow).contains("--timeout"), "{}", stderr(&slow));
    sh(&env, &["--cpus", "0.5"], "true");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn sandboxes_run_side_by_side_with_their_own_ids() {
    let Some(env) = sandbox_env("sandboxes_run_side_by_side_with_their_own_ids") else { return };
    let (first, _) = started(&env, &["/bin/sh", "-c", "cat /proc/self/uid_map; sleep 1000"]);
    let (second, _) = started(&env, &["sleep", "1000"]);
    let listed = super::json(&env.ok(&[&"ps", &"--json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let slots: Vec<u64> = listed.as_array().into_iter().flatten().filter_map(|s| s["slot"].as_u64()).collect();
    assert_eq!(slots.len(), 2);
    assert_ne!(slots[0], slots[1], "each sandbox has its own id range");
    let map = sh(&env, &[], "cat /proc/self/uid_map");
    let first_ids = 100_000 + 65_536 * slots[0];
    assert!(!map.contains(&first_ids.to_string()), "a third sandbox got a running one's ids: {map}");
    drop((first, second));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !super::json(&env.ok(&[&"ps", &"--json"])).as_array().is_none_or(|a| a.iter().all(|s| s["status"] == "dead"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&[&"clean"]);
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    let Some(env) = sandbox_env("bad_input_is_one_clear_line_and_leaves_nothing") else { return };
    for (args, says) in [
        (vec!["--memory", "lots", "bb", "--", "true"], "invalid --memory"),
        (vec!["--cpus", "0", "bb", "--", "true"], "invalid --cpus"),
        (vec!["--scope", "galaxy", "bb", "--", "true"], "invalid --scope"),
        (vec!["--isolation", "container", "bb", "--", "true"], "invalid --isolation"),
        (vec!["--security-opt", "apparmor=x", "bb", "--", "true"], "invalid --security-opt"),
        (vec!["-v", "/nonexistent-host-path:/x", "bb", "--", "true"], "invalid -v"),
        (vec!["-v", "/tmp:relative", "bb", "--", "true"], "invalid -v"),
        (vec!["-u", "ghost", "bb", "--", "true"], "no user 'ghost'"),
        // (uid_t)-1 would mean "no change": the command would stay root.
        (vec!["-u", "4294967295", "bb", "--", "true"], "is not a usable user or group id"),
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"tmp"];
        for a in &args {
            all.push(a);
        }
        if says.starts_with("invalid") {
            assert!(env.fails(&all).contains(says), "{args:?}");
        } else {
            let out = env.run(&all);
            assert_eq!(out.status.code(), Some(125), "{args:?}");
            assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        }
    }
    // Usage errors: one line, exit 2, before anything starts.
    for (args, says) in [(["-w", "relative/dir"], "must be an absolute path"), (["--timeout", "0"], "longer than 0")] {
        let out = tmp(&env, &[args[0], args[1], "bb", "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).starts_with("error: ") && stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let missing = tmp(&env, &["bb", "--", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127));
    assert_eq!(stderr(&missing).lines().count(), 1, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("no-such-command"));
    assert!(env.fails(&[&"tmp", &"no-such-image-here.invalid/x", &"--", &"true"]).contains("no-such-image-here"));
    // Not root: said before anything is touched.
    let nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_monocore"),
            "tmp",
            "bb",
            "--",
            "true",
        ])
        .env("MONOCORE_HOME", env.home())
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(nobody.status.code(), Some(1));
    assert!(stderr(&nobody).contains("needs root"), "{}", stderr(&nobody));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn interrupt_stop_and_clean_leave_nothing_behind() {
    let Some(env) = sandbox_env("interrupt_stop_and_clean_leave_nothing_behind") else { return };
    let signal = |child: &Background, sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), sig).expect("kill");
    };
    // Ctrl-C (SIGINT to monocore) reaches the command; everything goes. A
    // test run whose caller ignores SIGINT (a script's background job)
    // passes that on, and monocore rightly ignores it too.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:\t")).expect("SigIgn");
    if u64::from_str_radix(ignored, 16).expect("hex") & 0x2 == 0 {
        let (mut child, _) = started(&env, &["sleep", "1000"]);
        signal(&child, nix::sys::signal::Signal::SIGINT);
        let status = wait_exit(&mut child, Duration::from_secs(20)).expect("monocore exits after SIGINT");
        assert_eq!(status.code(), Some(130));
        assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
    } else {
        eprintln!("SKIP the SIGINT part: this test's caller ignores SIGINT");
    }

    // Under nohup a hangup is not passed on: the sandbox runs on.
    let mut c = Command::new("sh");
    let monocore = env!("CARGO_BIN_EXE_monocore");
    c.arg("-c").arg(format!("trap '' HUP; exec {monocore} tmp bb -- sleep 1000"));
    let (mut child, _) = started_by(&env, c);
    signal(&child, nix::sys::signal::Signal::SIGHUP);
    assert!(wait_exit(&mut child, Duration::from_secs(1)).is_none(), "a hangup ended a sandbox started under nohup");
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)).expect("monocore exits after SIGTERM").code(), Some(143));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));

    // `stop` ends one that ignores SIGTERM after the grace period.
    let (mut child, id) = started(&env, &["/bin/sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"]);
    // `ps` shows its memory, although it has no memory cgroup (no limit).
    let listed = super::json(&env.ok(&[&"ps", &"--json"]));
    let mine = listed.as_array().expect("array").iter().find(|s| s["id"] == id.as_str()).expect("listed");
    assert!(mine["memory"].as_u64().is_some_and(|m| m > 100_000), "{mine}");
    // Others run beside it, from the same image store.
    assert_eq!(sh(&env, &[], "echo beside"), "beside\n");
    assert!(env.image_names().contains(&"bb".to_owned()));
    let out = env.ok(&[&"stop", &"--time", &"1", &&id[..6]]);
    assert_eq!(out.trim(), id);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).is_some());
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
    assert!(env.fails(&[&"stop", &"0000000"]).contains("no sandbox"));

    // kill -9 of monocore: its sandbox dies with it; `clean` releases the rest.
    let (mut child, id) = started(&env, &["sleep", "1000"]);
    child.0.kill().expect("kill -9");
    let _ = child.0.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new("/sys/fs/cgroup/pids").join(format!("monocore-{id}")).exists()
        && std::fs::read_to_string(Path::new("/sys/fs/cgroup/pids").join(format!("monocore-{id}/cgroup.procs")))
            .is_ok_and(|p| !p.trim().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = super::json(&env.ok(&[&"ps", &"--json"]));
    assert_eq!(listed[0]["status"], "dead", "{listed}");
    let cleaned = super::json(&env.ok(&[&"clean", &"--json"]));
    assert!(Path::new("/run/monocore/slots").read_dir().map_or(true, |d| d.count() < 100));
    assert_eq!(cleaned["sandboxes"][0], id.as_str(), "{cleaned}");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
    // The image store is intact and usable afterwards.
    assert_eq!(sh(&env, &[], "cat /etc/marker"), "image-file\n");
}

#[test]
fn a_terminal_gives_an_interactive_shell() {
    let Some(env) = sandbox_env("a_terminal_gives_an_interactive_shell") else { return };
    let out = on_a_terminal(&env, "-t bb -- /bin/sh", b"tty; echo sum=$((40+2)); exit 3\n");
    let text = stdout(&out);
    assert!(text.contains("sum=42"), "{text}");
    assert!(text.contains("/dev/pts/0"), "the terminal is the sandbox's own: {text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
}

/// Held by the tests that give sandboxes a network: each checks that no
/// nftables table of any sandbox is left, which another one running at the
/// same time would have.
static NETWORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A host service on all addresses that answers `pong` to sandbox
/// addresses (10.200/16) only; its port.
fn pong_server() -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            if conn.peer_addr().is_ok_and(|a| a.to_string().starts_with("10.200.")) {
                use std::io::Write;
                let _ = conn.write_all(b"pong\n");
            }
        }
    });
    port
}

/// An image file read by one process and written by another, either way
/// round. (A data file's reads used to be passed through to the file
/// cache, and the kernel refused a cached open beside such an open: EIO.)
#[test]
fn an_image_file_open_for_reading_can_be_written_too() {
    let Some(env) = sandbox_env("an_image_file_open_for_reading_can_be_written_too") else { return };
    let script = "sleep 3 </srv/data.bin & sleep 0.5; echo x >> /srv/data.bin && echo appended; \
                  exec 4>>/srv/data.bin; wc -c </srv/data.bin; tail -c 2 /srv/data.bin";
    assert_eq!(sh(&env, &[], script), format!("appended\n{}\nx\n", (256 << 10) + 2));
    let reverse = "exec 4>>/srv/data.bin; wc -c </srv/data.bin; echo y >&4; exec 4>&-; tail -c 2 /srv/data.bin";
    assert_eq!(sh(&env, &[], reverse), format!("{}\ny\n", 256 << 10));
    // A program is passed through: more readers join, whatever became of
    // its mode meanwhile; a writer waits until no one reads it (ETXTBSY).
    let program = "sleep 3 </srv/tool & sleep 0.5; chmod -x /srv/tool; wc -c </srv/tool; \
                   echo x >>/srv/tool 2>/dev/null || echo busy";
    assert_eq!(sh(&env, &[], program), format!("{}\nbusy\n", 256 << 10));
}

#[test]
fn network_scopes_reach_what_they_say() {
    let Some(env) = sandbox_env("network_scopes_reach_what_they_say") else { return };
    let _network = NETWORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A host service the sandbox may reach through its veth pair; only
    // sandbox addresses get an answer.
    let port = pong_server();
    let probe = format!(
        "ip route | grep -q default && echo routed || echo unrouted; gw=$(ip route | grep default | cut -d' ' -f3); \
         [ -n \"$gw\" ] && busybox nc -w 3 $gw {port} </dev/null || echo no-answer"
    );
    assert_eq!(sh(&env, &[], &probe), "unrouted\nno-answer\n");
    assert_eq!(sh(&env, &["--scope", "local"], &probe), "routed\npong\n");
    assert_eq!(sh(&env, &["--scope", "any"], &probe), "routed\npong\n");
    // Public scope: the internet only, not the host or private networks.
    assert_eq!(sh(&env, &["--scope", "public"], &probe), "routed\nno-answer\n");
    // Nor the host over IPv6: no neighbour answers on the link but the
    // sandbox itself (the host end once had a link-local address). The
    // sandbox's own link-local address is usable once its duplicate address
    // detection is over.
    let neighbours =
        "sleep 3; ping6 -c 2 -w 3 ff02::1%eth0 2>/dev/null | grep -o 'fe80::[0-9a-f:]*[0-9a-f]' | sort -u | wc -l";
    let seen: u32 = sh(&env, &["--scope", "public"], neighbours).trim().parse().expect("a count");
    assert!(seen <= 1, "{seen} IPv6 neighbours answer on the sandbox's link");
    let tables = Command::new("nft").args(["list", "tables"]).output().expect("nft");
    assert!(!stdout(&tables).contains("monocore_"), "leftover nftables table: {}", stdout(&tables));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// [`sandbox_env`] for `--isolation microvm`, or `None` when this host
/// cannot boot one (no QEMU or guest kernel; in CI that fails the test).
fn microvm_env(test: &str) -> Option<Env> {
    if let Some(why) = monocore_sandbox::microvm::unavailable_reason() {
        assert!(std::env::var("CI").is_err(), "{test}: CI must run microVMs (scripts/deps.sh): {why}");
        eprintln!("SKIP {test}: {why}");
        return None;
    }
    sandbox_env(test)
}

/// One boot under TCG (or KVM where there is one): output, exit status,
/// stdin, the image's env and workdir, writes kept and diffed.
#[test]
fn microvm_runs_a_command_from_the_image() {
    let Some(env) = microvm_env("microvm_runs_a_command_from_the_image") else { return };
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocore"))
        .env("MONOCORE_HOME", env.home())
        .args(["tmp", "--isolation", "microvm", "--keep", "-e", "X=cli", "--timeout", "120s", "bb", "--"])
        .args([
            "/bin/sh",
            "-c",
            "echo out $FROM_IMAGE $X $(pwd) $(id -u):$(id -g) $HOME; echo err >&2; read l; echo got:$l; \
             echo hi > /f; rm /etc/marker; exit 7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(b"piped\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    eprintln!("microvm boot and run: {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out yes cli /tmp 0:0 /root\ngot:piped\n", "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("err\n"), "{err}");
    let id = err.split_whitespace().skip_while(|w| *w != "sandbox").nth(1).expect("kept id in message").to_owned();
    let diff = env.ok(&[&"diff", &id]);
    let mut lines: Vec<&str> = diff.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["A f", "D etc/marker"], "{diff}");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// A second boot: user, working directory and a missing command (127);
/// then a VM stopped by --timeout (124). Nothing is left behind.
#[test]
fn microvm_user_workdir_missing_command_and_timeout() {
    let Some(env) = microvm_env("microvm_user_workdir_missing_command_and_timeout") else { return };
    let out = tmp(
        &env,
        &[
            "--isolation",
            "microvm",
            "-u",
            "1234:55",
            "-w",
            "/work/dir",
            "bb",
            "--",
            "/bin/sh",
            "-c",
            "echo $(id -u):$(id -g) $(pwd) $HOME; exec no-such-command",
        ],
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1234:55 /work/dir /\n", "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-command"), "{}", stderr(&out));
    let t = Instant::now();
    let out = tmp(&env, &["--isolation", "microvm", "--timeout", "2s", "bb", "--", "/bin/sleep", "60"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let file = env.path("single-file");
    std::fs::write(&file, "x").expect("file");
    let vol = format!("{}:/f", file.display());
    let refused = tmp(&env, &["--isolation", "microvm", "-v", &vol, "bb", "--", "true"]);
    assert!(stderr(&refused).contains("only directories can be volumes"), "{}", stderr(&refused));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// `-t` in a microVM: the command's controlling terminal is the guest's
/// virtio console, relayed to ours; an interactive shell works, and
/// resizing our terminal (SIGWINCH) resizes the guest's.
#[test]
fn microvm_terminal_gives_an_interactive_shell() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let Some(env) = microvm_env("microvm_terminal_gives_an_interactive_shell") else { return };
    let size = nix::pty::Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let tty = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    let slave = || Stdio::from(pty.slave.try_clone().expect("dup"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocore"))
        .env("MONOCORE_HOME", env.home())
        .args(["tmp", "--isolation", "microvm", "-t", "--timeout", "120s", "bb", "--", "/bin/sh"])
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("spawn");
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (mut master, seen) = (master.try_clone().expect("dup"), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once monocore, the last holder of the other end, is gone.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = || String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned();
    let deadline = Instant::now() + Duration::from_secs(100);
    while !text().contains("# ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(text().contains("# "), "no shell prompt: {}", text());
    let resized = Command::new("stty").arg("-F").arg(&tty).args(["rows", "33", "cols", "99"]).status().expect("stty");
    assert!(resized.success());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGWINCH)
        .expect("SIGWINCH");
    std::thread::sleep(Duration::from_millis(500));
    master.write_all(b"tty; stty size; echo sum=$((40+2)); exit 3\n").expect("type");
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    let text = text();
    eprintln!("{text}");
    assert!(text.contains("sum=42"), "{text}");
    assert!(text.contains("/dev/hvc0"), "the terminal is the guest's console: {text}");
    assert!(text.contains("33 99"), "the guest's console took the new size: {text}");
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// `-v` in a microVM, and `--scope none` (one boot): each volume is a virtio-fs device served
/// by virtiofsd's passthrough file system; writes through a rw volume land
/// on the host, a read-only one refuses them even after a remount.
#[test]
fn microvm_volumes_bind_host_directories() {
    let Some(env) = microvm_env("microvm_volumes_bind_host_directories") else { return };
    let (rw, ro) = (env.path("rw"), env.path("ro"));
    std::fs::create_dir(&rw).expect("rw");
    std::fs::create_dir(&ro).expect("ro");
    std::fs::write(ro.join("file"), "host data\n").expect("file");
    let out = tmp(
        &env,
        &[
            "--isolation",
            "microvm",
            "--timeout",
            "120s",
            "-v",
            &format!("{}:/data:ro", ro.display()),
            "-v",
            &format!("{}:/new/rw", rw.display()),
            "bb",
            "--",
            "/bin/sh",
            "-c",
            "cat /data/file; echo y > /data/new 2>/dev/null && echo wrote || echo refused; \
             mount -o remount,rw /data 2>/dev/null; echo y > /data/new 2>/dev/null && echo wrote || echo refused; \
             echo from-vm > /new/rw/out; mkdir /new/rw/d; echo done; \
             mknod /new/rw/disk b 254 0 2>/dev/null && echo device || echo no-device; \
             mknod /new/rw/pipe p && echo fifo; \
             ip route | grep -q default && echo routed || echo unrouted; ip link show lo | grep -q ',UP' && echo lo-up",
        ],
    );
    // --scope none (the default): loopback only.
    // The guest's root makes no device node in a host directory.
    assert_eq!(
        stdout(&out),
        "host data\nrefused\nrefused\ndone\nno-device\nfifo\nunrouted\nlo-up\n",
        "{}",
        stderr(&out)
    );
    assert!(!rw.join("disk").exists());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!ro.join("new").exists());
    assert_eq!(std::fs::read_to_string(rw.join("out")).expect("written through the volume"), "from-vm\n");
    assert!(rw.join("d").is_dir());
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// `--scope` in a microVM: a tap device with the namespace runtime's
/// addresses and nftables rules, configured by the guest's init (two boots:
/// local reaches the host, public does not).
#[test]
fn microvm_network_scopes_reach_what_they_say() {
    let Some(env) = microvm_env("microvm_network_scopes_reach_what_they_say") else { return };
    let _network = NETWORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let port = pong_server();
    let probe = format!(
        "grep -q nameserver /etc/resolv.conf && echo resolv; \
         ip route | grep -q default && echo routed || echo unrouted; gw=$(ip route | grep default | cut -d' ' -f3); \
         [ -n \"$gw\" ] && busybox nc -w 3 $gw {port} </dev/null || echo no-answer"
    );
    let vm = ["--isolation", "microvm", "--timeout", "120s"];
    let local = sh(&env, &[&vm[..], &["--scope", "local"]].concat(), &probe);
    assert_eq!(local, "resolv\nrouted\npong\n");
    let public = sh(&env, &[&vm[..], &["--scope", "public"]].concat(), &probe);
    assert_eq!(public, "resolv\nrouted\nno-answer\n");
    let tables = Command::new("nft").args(["list", "tables"]).output().expect("nft");
    assert!(!stdout(&tables).contains("monocore_"), "leftover nftables table: {}", stdout(&tables));
    let links = Command::new("ip").args(["-o", "link"]).output().expect("ip");
    assert!(!stdout(&links).contains(": mc"), "leftover tap: {}", stdout(&links));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// Signals reach the command in a microVM (one boot): SIGTERM to
/// `monocore` is relayed over the control port to the guest's init, which
/// sends it to the command; the command's trap runs and its status is the
/// run's. The VM is not stopped from outside.
#[test]
fn microvm_command_gets_relayed_signals() {
    let Some(env) = microvm_env("microvm_command_gets_relayed_signals") else { return };
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocore"))
        .env("MONOCORE_HOME", env.home())
        .args(["tmp", "--isolation", "microvm", "--timeout", "120s", "bb", "--", "/bin/sh", "-c"])
        .arg("trap 'echo got-term; exit 5' TERM; echo ready; sleep 1000 & wait")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut text = String::new();
    out.read_line(&mut text).expect("read");
    assert_eq!(text, "ready\n");
    let t = Instant::now();
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(term.success());
    out.read_to_string(&mut text).expect("read");
    let status = child.wait().expect("wait");
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    assert_eq!(text, "ready\ngot-term\n", "{err}");
    assert_eq!(status.code(), Some(5), "{err}");
    assert!(t.elapsed() < Duration::from_secs(9), "not the timeout's SIGKILL: {:?}", t.elapsed());
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}
