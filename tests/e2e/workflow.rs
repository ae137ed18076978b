//! The main job: init, commit, change, commit, log, tag, diff, checkout.

use monofs_fixtures::{assert_same_tree, make_tree, write};

use super::{Scratch, fails, init, ok, ok_env};

#[test]
fn backup_history_diff_and_restore() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    make_tree(&data);
    init(&repo);
    let first = ok(&[&"commit", &repo, &"--from", &data, &"-m", &"first"]);
    let first = first.trim();
    assert_eq!(first.len(), 64, "commit prints the full revision id: {first}");
    write(&data.join("a/lines.txt"), b"changed\n");
    std::fs::remove_file(data.join("empty")).expect("rm");
    write(&data.join("a/new.txt"), b"new\n");
    let second = ok(&[&"commit", &repo, &"--from", &data, &"-m", &"second"]);

    let log = ok(&[&"log", &repo]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("second") && lines[0].contains("HEAD"), "{log}");
    assert!(lines[1].contains("first"), "{log}");
    let json: serde_json::Value = serde_json::from_str(&ok(&[&"rev", &repo, &"--json"])).expect("json");
    assert_eq!(json[0]["id"], second.trim());
    assert_eq!(json[1]["id"], first);
    assert_eq!(json[0]["parents"][0], first);

    ok(&[&"tag", &repo, &"v1", &"HEAD~1"]);
    ok(&[&"tag", &repo, &"v2"]);
    assert_eq!(ok(&[&"tag", &repo, &"--list"]).lines().count(), 2);
    fails(&[&"tag", &repo, &"v1"], &[]);
    ok(&[&"tag", &repo, &"--delete", &"v2"]);
    assert_eq!(ok(&[&"tag", &repo]).lines().count(), 1);

    let diff = ok(&[&"diff", &repo, &"v1", &"HEAD"]);
    assert_eq!(diff.lines().collect::<Vec<_>>(), ["M a/lines.txt", "A a/new.txt", "D empty"], "{diff}");
    let short = &first[..8];
    assert_eq!(ok(&[&"diff", &repo, &short, &second.trim()]), diff, "short and full ids");
    assert!(ok(&[&"diff", &repo, &"HEAD"]).is_empty(), "working tree equals HEAD");
    let stat = ok(&[&"diff", &repo, &"v1", &"HEAD", &"--stat"]);
    assert!(stat.contains("1 added, 1 modified, 1 deleted"), "{stat}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&[&"diff", &repo, &"v1", &"HEAD", &"--json"])).expect("json");
    assert_eq!(json[0]["status"], "M");
    assert_eq!(json[0]["what"][0], "content");

    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    assert_same_tree(&data, &s.path("out"));
    ok(&[&"checkout", &repo, &"v1", &"--to", &s.path("old")]);
    assert!(s.path("old/empty").exists() && !s.path("old/a/new.txt").exists());
    fails(&[&"checkout", &repo, &"v1", &"--to", &s.path("out")], &[]);
    ok(&[&"checkout", &repo, &"v1", &"--to", &s.path("out"), &"--force"]);
    assert_eq!(
        std::fs::read(s.path("out/a/lines.txt")).expect("read"),
        std::fs::read(s.path("old/a/lines.txt")).expect("read")
    );

    // Moving the working tree back and committing branches from v1; the
    // abandoned line stays visible in `log --all`.
    ok(&[&"checkout", &repo, &"v1"]);
    assert_eq!(ok(&[&"log", &repo]).lines().count(), 1);
    let err = fails(&[&"commit", &repo, &"-m", &"nothing"], &[]);
    assert!(err.contains("nothing to commit"), "{err}");
    write(&data.join("third"), b"3");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"third"]);
    assert_eq!(ok(&[&"log", &repo]).lines().count(), 2);
    assert_eq!(ok(&[&"log", &repo, &"--all"]).lines().count(), 3);

    let fsck = ok(&[&"fsck", &repo]);
    assert!(fsck.contains("0 problems"), "{fsck}");
    let stats: serde_json::Value = serde_json::from_str(&ok(&[&"stats", &repo, &"--json"])).expect("json");
    assert_eq!(stats["revisions"], 3);
    assert!(stats["dedup_ratio"].as_f64().expect("ratio") > 2.0, "{stats}");
    ok(&[&"gc", &repo]);
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));
}

#[test]
fn encrypted_repository_hides_names_and_content() {
    let s = Scratch::default();
    let (repo, data) = (s.path("enc"), s.path("data"));
    write(&data.join("secret-name.txt"), b"SECRET-MARKER-42 plaintext ".repeat(100).as_slice());
    write(&data.join("small-secret"), b"SECRET-MARKER-42");
    let pw = [("MONOFS_PASSPHRASE", "correct horse")];
    ok_env(&[&"init", &repo, &"--encrypt"], &pw);
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"enc-msg-7f3a"], &pw);
    ok_env(&[&"commit", &repo, &"--from", &data, &"-m", &"again"], &pw);
    for entry in std::fs::read_dir(&repo).expect("ls") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        for needle in [&b"SECRET-MARKER-42"[..], b"secret-name", b"small-secret", b"enc-msg-7f3a"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{:?} found", String::from_utf8_lossy(needle));
        }
    }
    assert!(ok_env(&[&"log", &repo], &pw).contains("enc-msg-7f3a"));
    let before = std::fs::read(repo.join("monofs.redb")).expect("read");
    let err = fails(&[&"log", &repo], &[("MONOFS_PASSPHRASE", "wrong")]);
    assert!(err.starts_with(&format!("error: wrong passphrase for {}", repo.display())), "{err}");
    assert!(std::fs::read(repo.join("monofs.redb")).expect("read") == before, "a failed open wrote to the store");
    let err = fails(&[&"log", &repo], &[]);
    assert!(err.contains("MONOFS_PASSPHRASE"), "{err}");
    let err = fails(&[&"log", &repo], &[("MONOFS_PASSPHRASE", "")]);
    assert!(err.contains("MONOFS_PASSPHRASE is empty"), "{err}");
    ok_env(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")], &pw);
    assert_eq!(std::fs::read(s.path("out/small-secret")).expect("read"), b"SECRET-MARKER-42");
}

#[test]
fn unchanged_recommit_reads_nothing() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    make_tree(&data);
    init(&repo);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    let again: serde_json::Value =
        serde_json::from_str(&ok(&[&"commit", &repo, &"--from", &data, &"-m", &"two", &"--json"])).expect("json");
    assert_eq!(again["reused_files"], again["files"], "{again}");
    assert!(ok(&[&"diff", &repo, &"HEAD~1", &"HEAD"]).is_empty());
}

/// Names with control characters or bytes that are not UTF-8 print as one
/// quoted line each in a diff, and exactly in its JSON.
#[test]
fn odd_names_print_unambiguously() {
    use std::os::unix::ffi::OsStrExt as _;
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    write(&data.join("keep"), b"k");
    init(&repo);
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"first"]);
    for name in [&b"new\nline2"[..], b"\x1b[31mred", b"bin\xffname", b"plain"] {
        write(&data.join(std::ffi::OsStr::from_bytes(name)), b"x");
    }
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"odd"]);
    let diff = ok(&[&"diff", &repo, &"HEAD~1", &"HEAD"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(lines, [r#"A "\033[31mred""#, r#"A "bin\377name""#, r#"A "new\nline2""#, "A plain"], "{diff}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&[&"diff", &repo, &"HEAD~1", &"HEAD", &"--json"])).expect("json");
    let hex: Vec<&str> = json.as_array().expect("array").iter().filter_map(|c| c["path_hex"].as_str()).collect();
    assert_eq!(hex, ["62696eff6e616d65"], "{json}");
}
