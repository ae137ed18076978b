//! Bad input gets one clear error line and a non-zero exit, and loses nothing.

use monofs_fixtures::write;

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
