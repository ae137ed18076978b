//! Bad input gets one clear error line and a non-zero exit, and loses nothing.

use monofs_fixtures::{make_tree, write};

use super::{Scratch, fails, init, ok};

#[test]
fn missing_and_wrong_repositories() {
    let s = Scratch::default();
    let err = fails(&[&"log", &s.path("nope")], &[]);
    assert!(err.contains("no such repository"), "{err}");
    std::fs::create_dir(s.path("plain")).expect("mkdir");
    let err = fails(&[&"log", &s.path("plain")], &[]);
    assert!(err.contains("not a monofs repository"), "{err}");
    init(&s.path("repo"));
    let err = fails(&[&"init", &s.path("repo")], &[]);
    assert!(err.contains("already a monofs repository"), "{err}");
    write(&s.path("full/file"), b"x");
    let err = fails(&[&"init", &s.path("full")], &[]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn unknown_revisions_and_tags() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    assert!(ok(&[&"log", &repo, &"--all"]).is_empty());
    let err = fails(&[&"diff", &repo, &"HEAD"], &[]);
    assert!(err.contains("no revisions"), "{err}");
    write(&s.path("d/f"), b"x");
    ok(&[&"commit", &repo, &"--from", &s.path("d"), &"-m", &"m"]);
    for bad in ["nosuchrev", "HEAD~9", "HEAD^2", "abc", "ffffffff"] {
        let err = fails(&[&"diff", &repo, &bad, &"HEAD"], &[]);
        assert!(err.contains("unknown revision"), "{bad}: {err}");
    }
    for bad in ["bad name", "x~1", "a..b", "deadbeef", "@"] {
        let err = fails(&[&"tag", &repo, &bad], &[]);
        assert!(err.contains("invalid tag name"), "{bad}: {err}");
    }
    let err = fails(&[&"tag", &repo, &"--delete", &"missing"], &[]);
    assert!(err.contains("no tag named"), "{err}");
}

#[test]
fn bad_source_directories() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let err = fails(&[&"commit", &repo, &"--from", &s.path("missing"), &"-m", &"x"], &[]);
    assert!(err.contains(&s.path("missing").display().to_string()), "{err}");
    write(&s.path("file"), b"x");
    fails(&[&"commit", &repo, &"--from", &s.path("file"), &"-m", &"x"], &[]);
    assert!(ok(&[&"log", &repo, &"--all"]).is_empty(), "a failed commit left a revision");
}

#[test]
fn a_locked_repository_names_its_holder() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let held = monofs::repo::RepoLock::acquire(&repo).expect("lock");
    let err = fails(&[&"log", &repo], &[]);
    assert!(err.contains(&format!("locked by PID {}", std::process::id())), "{err}");
    drop(held);
    ok(&[&"log", &repo]);
}

#[test]
fn unreadable_entries_are_named_and_nothing_is_committed() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let s = Scratch::default();
    // Root reads everything, so the commands run as an unprivileged user.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let as_user = |args: &[&std::ffi::OsStr]| {
        let mut c = super::monofs();
        c.args(args);
        if monofs_fixtures::is_root() {
            c.uid(65534).gid(65534);
        }
        c.output().expect("run monofs")
    };
    let (repo, data) = (s.path("repo"), s.path("data"));
    write(&data.join("ok"), b"fine");
    write(&data.join("locked/inner"), b"hidden");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(data.join("locked"), std::fs::Permissions::from_mode(0o000)).expect("chmod");
    assert!(as_user(&[("init").as_ref(), repo.as_os_str()]).status.success());
    let out = as_user(&[
        "commit".as_ref(),
        repo.as_os_str(),
        "--from".as_ref(),
        data.as_os_str(),
        "-m".as_ref(),
        "x".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.contains("locked") && err.contains("ermission denied"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let log = as_user(&["log".as_ref(), repo.as_os_str(), "--all".as_ref()]);
    assert!(log.status.success() && log.stdout.is_empty(), "a failed commit left a revision");
    std::fs::set_permissions(data.join("locked"), std::fs::Permissions::from_mode(0o755)).expect("chmod back");
}

/// A store file damaged where redb keeps its b-tree roots: redb panics on
/// some of those pages; every command still ends with one error line and
/// exit status 1 (the panic's backtrace notice and status 101 before).
#[test]
fn a_damaged_store_file_is_an_error_not_a_panic() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    make_tree(&data);
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    let store = repo.join("monofs.redb");
    let mut bytes = std::fs::read(&store).expect("read");
    for b in &mut bytes[4096..4160] {
        *b ^= 0x5a;
    }
    std::fs::write(&store, bytes).expect("write");
    for args in [&[&"log" as &dyn AsRef<std::ffi::OsStr>, &repo][..], &[&"fsck", &repo]] {
        fails(args, &[("RUST_BACKTRACE", "0")]);
    }
}

/// A byte flipped inside file data in the store file: redb's page check
/// refuses the file ("Primary is corrupted despite 2-phase commit"), and
/// `fsck` printed that as an error (no report, no JSON) where its report
/// belongs: the store damaged, the repository not sound, exit 1.
#[test]
fn fsck_reports_a_store_file_that_fails_its_page_check() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    let random = monofs_fixtures::Rng::new(5).bytes(300_000);
    write(&data.join("rand"), &random);
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    let store = repo.join("monofs.redb");
    let mut bytes = std::fs::read(&store).expect("read");
    let needle = &random[150_000..150_064];
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the data is stored as it is");
    bytes[at + 10] ^= 0x01;
    std::fs::write(&store, bytes).expect("write");
    let text = super::run(&[&"fsck", &repo], &[("RUST_BACKTRACE", "0")]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(1), "{out}{}", String::from_utf8_lossy(&text.stderr));
    assert!(out.contains("the store file is damaged beyond repair"), "{out}");
    let json = super::run(&[&"fsck", &repo, &"--json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("a JSON report");
    assert_eq!(report["sound"], false, "{report}");
    assert!(report["store"].as_str().is_some_and(|s| s.contains("damaged")), "{report}");
}
