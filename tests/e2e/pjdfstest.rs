//! The POSIX conformance suite pjdfstest (Rust version 0.2.2) against a real
//! FUSE mount with `allow_other`. CI installs it (see .ci/run); elsewhere the
//! test skips with a message when it is missing.

use std::path::PathBuf;
use std::process::Command;

use super::{Scratch, init};

fn pjdfstest() -> Option<PathBuf> {
    let candidates =
        [std::env::var_os("PJDFSTEST").map(PathBuf::from), Some(PathBuf::from("/opt/pjdfstest/bin/pjdfstest"))];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install pjdfstest (see .ci/run)");
        eprintln!(
            "skipping: pjdfstest is not installed (cargo install --locked pjdfstest --version 0.2.2 --root /opt/pjdfstest)"
        );
    }
    found
}

#[test]
fn posix_conformance_with_pjdfstest() {
    let Some(bin) = pjdfstest() else { return };
    if !monofs_fixtures::is_root() {
        eprintln!("skipping: pjdfstest needs root");
        return;
    }
    let s = Scratch::default();
    let (repo, mnt) = (s.path("repo"), s.path("mnt"));
    init(&repo);
    let m = super::mount::Mount::start(&repo, &mnt, &["-o", "allow_other"]);
    let config = s.path("pjdfstest.toml");
    std::fs::write(
        &config,
        "[features]\nposix_fallocate = {}\nrename_ctime = {}\nutime_now = {}\nutimensat = {}\n[settings]\n\
         [dummy_auth]\nentries = [[\"nobody\", \"nogroup\"], [\"tests\", \"tests\"]]\n",
    )
    .expect("config");
    let out = Command::new(&bin)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(&m.mnt)
        .current_dir(&m.mnt)
        .output()
        .expect("run pjdfstest");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let summary = text.lines().find(|l| l.starts_with("Summary:")).unwrap_or_else(|| panic!("no summary:\n{text}"));
    let count = |what: &str| -> u32 {
        summary
            .split(',')
            .find(|p| p.contains(what))
            .and_then(|p| p.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0)
    };
    let (failed, skipped, passed) = (count("failed"), count("skipped"), count("passed"));
    let applicable = passed + failed;
    let failures: Vec<&str> = text.lines().filter(|l| l.trim_end().ends_with("FAILED")).collect();
    eprintln!("pjdfstest: {summary}");
    assert!(applicable > 300, "too few tests ran: {summary}");
    assert!(passed * 100 >= applicable * 95, "pjdfstest below 95%: {summary}\nfailures:\n{}", failures.join("\n"));
    // Every failure is a regression: docs/POSIX.md lists the expected result.
    assert!(failures.is_empty(), "pjdfstest failures (see docs/POSIX.md): {summary}\n{}", failures.join("\n"));
    let _ = skipped;
    m.detach();
}
