//! `monofs serve --nfs` with the real libnfs client: write, read back and
//! list through NFS, restart the server, then commit and check out.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use monofs_fixtures::Rng;

use super::{Scratch, init, monofs, ok};

fn have_libnfs() -> bool {
    let ok = Command::new("nfs-ls").arg("--help").output().is_ok();
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI must install libnfs-utils");
        eprintln!("skipping: needs libnfs-utils (nfs-cp, nfs-ls)");
    }
    ok
}

struct Server {
    child: Child,
}

impl Drop for Server {
    /// SIGTERM: the server flushes what clients wrote, then exits.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn url(port: u16, path: &str) -> String {
    format!("nfs://127.0.0.1/{path}?nfsport={port}&mountport={port}&version=3")
}

fn nfs(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().expect("run libnfs tool")
}

fn start(repo: &Path, port: u16) -> Server {
    let server = Server {
        child: monofs()
            .arg("serve")
            .arg(repo)
            .arg("--nfs")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    };
    for _ in 0..100 {
        if nfs(&["nfs-ls", &url(port, "")]).status.success() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the NFS server did not answer");
}

#[test]
fn libnfs_client_round_trip_restart_commit() {
    if !have_libnfs() {
        return;
    }
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 10000 + (std::process::id() % 10000) as u16;
    let server = start(&repo, port);
    let blob = Rng::new(11).bytes(3_000_000);
    std::fs::write(s.path("blob"), &blob).expect("write");
    let put = nfs(&["nfs-cp", &s.path("blob").display().to_string(), &url(port, "/blob")]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let get = nfs(&["nfs-cp", &url(port, "/blob"), &s.path("back").display().to_string()]);
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    assert!(std::fs::read(s.path("back")).expect("read") == blob);
    let listing = String::from_utf8_lossy(&nfs(&["nfs-ls", &url(port, "")]).stdout).into_owned();
    assert!(listing.contains("blob"), "{listing}");
    std::fs::write(s.path("small"), b"small file").expect("write");
    assert!(nfs(&["nfs-cp", &s.path("small").display().to_string(), &url(port, "/small")]).status.success());
    // Commands still work while the server owns the repository.
    ok(&[&"commit", &repo, &"-m", &"via nfs"]);
    // Restart: the data is still there.
    drop(server);
    let server = start(&repo, port);
    let cat = nfs(&["nfs-cat", &url(port, "/blob")]);
    assert!(cat.status.success() && cat.stdout == blob, "read after restart");
    drop(server);
    let log = ok(&[&"log", &repo]);
    assert!(log.contains("via nfs"), "{log}");
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    assert!(std::fs::read(s.path("out/blob")).expect("read") == blob);
    assert_eq!(std::fs::read(s.path("out/small")).expect("read"), b"small file");
}

/// Eight libnfs clients at once, each copying its own file in and back out
/// (each close COMMITs, so stores of the tree overlap); every byte checked,
/// then the committed tree holds all eight.
#[test]
fn concurrent_libnfs_clients_lose_nothing() {
    if !have_libnfs() {
        return;
    }
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 10000 + ((std::process::id() + 4099) % 10000) as u16;
    let server = start(&repo, port);
    let blobs: Vec<Vec<u8>> = (0..8).map(|i| Rng::new(100 + i).bytes(2_000_000 + i as usize * 4099)).collect();
    std::thread::scope(|t| {
        for (i, blob) in blobs.iter().enumerate() {
            let (s, name) = (&s, format!("c{i}"));
            t.spawn(move || {
                std::fs::write(s.path(&name), blob).expect("write");
                let put = nfs(&["nfs-cp", &s.path(&name).display().to_string(), &url(port, &format!("/{name}"))]);
                assert!(put.status.success(), "{name}: {}", String::from_utf8_lossy(&put.stderr));
                let back = s.path(&format!("{name}.back")).display().to_string();
                let get = nfs(&["nfs-cp", &url(port, &format!("/{name}")), &back]);
                assert!(get.status.success(), "{name}: {}", String::from_utf8_lossy(&get.stderr));
                assert!(std::fs::read(&back).expect("read") == *blob, "{name}: bytes differ");
            });
        }
    });
    ok(&[&"commit", &repo, &"-m", &"eight clients"]);
    drop(server);
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    for (i, blob) in blobs.iter().enumerate() {
        assert!(std::fs::read(s.path(&format!("out/c{i}"))).expect("read") == *blob, "c{i} as committed");
    }
}
