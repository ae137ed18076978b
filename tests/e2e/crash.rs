//! kill -9 in the middle of a commit loses nothing that was committed.

use std::time::Duration;

use monofs_fixtures::{Rng, write};

use super::{Scratch, init, monofs, ok};

#[test]
fn killed_commits_leave_a_consistent_repository() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    init(&repo);
    write(&data.join("base"), b"base");
    let first = ok(&[&"commit", &repo, &"--from", &data, &"-m", &"before"]);
    let mut rng = Rng::new(5);
    for i in 0..24 {
        write(&data.join(format!("f{i}.bin")), &rng.bytes(2 << 20));
    }
    for delay in [30, 120, 300, 700] {
        let mut child = monofs()
            .args([
                "commit".as_ref(),
                repo.as_os_str(),
                "--from".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "killed".as_ref(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        let fsck = ok(&[&"fsck", &repo]);
        assert!(fsck.contains("0 problems"), "after kill at {delay} ms: {fsck}");
        let log = ok(&[&"log", &repo, &"--all", &"--json"]);
        let revs: serde_json::Value = serde_json::from_str(&log).expect("json");
        let ids: Vec<&str> = revs.as_array().expect("array").iter().map(|r| r["id"].as_str().expect("id")).collect();
        assert!(ids.contains(&first.trim()), "the earlier revision vanished");
        if !status.success() {
            assert!(
                revs.as_array().expect("array").iter().all(|r| r["message"] == "before" || r["message"] == "killed")
            );
        }
    }
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"after"]);
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    assert_eq!(std::fs::read(s.path("out/f7.bin")).expect("read"), std::fs::read(data.join("f7.bin")).expect("read"));
}
