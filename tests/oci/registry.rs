//! Pulls from a local registry (Debian's `docker-registry`): fixtures are
//! pushed with `skopeo` and pulled back with `monocore pull --insecure`.
//!
//! The registry is the one `.ci/run` starts on 127.0.0.1:5000 or, when
//! none answers there, a private one this test starts on a free port. In
//! CI (`CI` set) a missing registry or tool fails the test; elsewhere the
//! test is skipped with the reason.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use monofs_fixtures::oci;

use super::{Env, have_tools, json};

struct Registry {
    addr: String,
    _child: Option<ChildGuard>,
}

/// The registry process and its storage, removed when dropped.
struct ChildGuard(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn answers(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).contains(" 200")
}

fn start_private(extra_yaml: &str, files: &[(&str, &str)]) -> Option<Registry> {
    let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"].into_iter().find(|p| Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let dir = tempfile::tempdir().ok()?;
    let config = dir.path().join("config.yml");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).ok()?;
    }
    let yaml = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{}",
        dir.path().join("data").display(),
        extra_yaml.replace("DIR", &dir.path().display().to_string())
    );
    std::fs::write(&config, yaml).ok()?;
    let child = Command::new(bin).arg("serve").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
    let guard = ChildGuard(child, dir);
    let addr = format!("127.0.0.1:{port}");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        if answers(&addr) || (!extra_yaml.is_empty() && TcpStream::connect(&addr).is_ok()) {
            return Some(Registry { addr, _child: Some(guard) });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The registry, or `None` (skip) outside CI when there is none.
fn registry(test: &str) -> Option<&'static Registry> {
    static REG: OnceLock<Option<Registry>> = OnceLock::new();
    let reg = REG.get_or_init(|| {
        let fixed = std::env::var("MONOCORE_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_owned());
        if answers(&fixed) {
            return Some(Registry { addr: fixed, _child: None });
        }
        start_private("", &[])
    });
    let skopeo = Command::new("skopeo").arg("--version").output().is_ok_and(|o| o.status.success());
    if reg.is_some() && skopeo && have_tools(test) {
        return reg.as_ref();
    }
    let why = "needs a registry on 127.0.0.1:5000 (or docker-registry installed), skopeo, umoci and busybox-static \
               (bash scripts/deps.sh; .ci/run starts the registry)";
    assert!(std::env::var("CI").is_err(), "{test}: {why}");
    eprintln!("SKIP {test}: {why}");
    None
}

fn push(layout: &Path, tag: &str, dest: &str) {
    oci::sh(
        Command::new("skopeo")
            .arg("copy")
            .arg("--quiet")
            .arg("--dest-tls-verify=false")
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{dest}")),
    );
}

/// A repository name no other test (or earlier run) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("monocore-test/{name}-{}-{nanos}", std::process::id())
}

#[test]
fn pull_from_a_local_registry_equals_umoci_and_second_pull_fetches_nothing() {
    let test = "pull_from_a_local_registry_equals_umoci_and_second_pull_fetches_nothing";
    let Some(reg) = registry(test) else { return };
    let env = Env::new();
    let layout = oci::multilayer_layout(env.dir.path());
    let name = format!("{}/{}:1", reg.addr, unique("ml"));
    push(&layout, "t", &name);

    let first = json(&env.ok(&[&"pull", &"--insecure", &name, &"--json"]));
    assert_eq!(first["up_to_date"], false);
    assert_eq!(first["blobs_fetched"], 4, "config and three layers: {first}");
    env.ok(&[&"unpack", &name, &env.path("out")]);
    monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, "t", &env.path("ref")), &env.path("out"));

    let second = json(&env.ok(&[&"pull", &"--insecure", &name, &"--json"]));
    assert_eq!(second["up_to_date"], true);
    assert_eq!(second["blobs_fetched"], 0);
    assert_eq!(second["manifest_digest"], first["manifest_digest"]);
    assert!(env.image_names().contains(&name));

    // By digest: a separate name, every layer stack already stored.
    let digest = first["manifest_digest"].as_str().expect("digest");
    let by_digest = format!("{}@{digest}", name.rsplit_once(':').expect("tag").0);
    let third = json(&env.ok(&[&"pull", &by_digest, &"--json"]));
    assert_eq!(third["blobs_fetched"], 1, "only the config: {third}");
    assert_eq!(third["import"]["layers_reused"], 3);
    env.ok(&[&"unpack", &by_digest, &env.path("out-digest")]);
    monofs_fixtures::assert_same_tree(&env.path("out"), &env.path("out-digest"));
}

#[test]
fn pulling_a_new_version_fetches_only_the_new_layer() {
    let test = "pulling_a_new_version_fetches_only_the_new_layer";
    let Some(reg) = registry(test) else { return };
    let env = Env::new();
    let (layout, _) = oci::two_versions_layout(env.dir.path());
    let repo = format!("{}/{}", reg.addr, unique("app"));
    push(&layout, "v1", &format!("{repo}:1"));
    push(&layout, "v2", &format!("{repo}:2"));
    let one = json(&env.ok(&[&"pull", &format!("{repo}:1"), &"--json"]));
    assert_eq!(one["blobs_fetched"], 2);
    let two = json(&env.ok(&[&"pull", &format!("{repo}:2"), &"--json"]));
    assert_eq!(two["blobs_fetched"], 2, "config and the one new layer: {two}");
    assert_eq!(two["import"]["layers_reused"], 1);
    // Unpack pulls a missing image by itself (local lookup first).
    let fresh = Env::new();
    fresh.ok(&[&"unpack", &format!("{repo}:2"), &fresh.path("out")]);
    monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, "v2", &env.path("ref")), &fresh.path("out"));
}

#[test]
fn registry_errors_are_one_clear_line() {
    let test = "registry_errors_are_one_clear_line";
    let Some(reg) = registry(test) else { return };
    let env = Env::new();
    let err = env.fails(&[&"pull", &"--insecure", &format!("{}/{}:nope", reg.addr, unique("missing"))]);
    assert!(
        err.contains("MANIFEST_UNKNOWN")
            || err.contains("not found")
            || err.contains("NameUnknown")
            || err.contains("ManifestUnknown"),
        "{err}"
    );
    assert!(env.image_names().is_empty());
}

#[test]
fn multi_arch_index_resolves_to_the_host_platform() {
    let test = "multi_arch_index_resolves_to_the_host_platform";
    let Some(reg) = registry(test) else { return };
    let env = Env::new();
    // An index with two platforms, each a one-layer image with a marker.
    let dir = env.path("multi");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |b: &[u8]| {
        let d = oci::sha256(b);
        std::fs::write(blobs.join(&d[7..]), b).expect("write");
        (d, b.len())
    };
    let host = monofs_overlay::spec::Platform::host();
    let mut manifests = Vec::new();
    for arch in [host.architecture.as_str(), "s390x"] {
        let tar = oci::one_file_tar("arch", arch.as_bytes());
        let (ld, ls) = put(&tar);
        let cfg =
            serde_json::json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}});
        let (cd, cs) = put(cfg.to_string().as_bytes());
        let man = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]});
        let (md, ms) = put(man.to_string().as_bytes());
        manifests.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
            "size": ms, "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (id, is) = put(index.to_string().as_bytes());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": id, "size": is, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(dir.join("index.json"), top.to_string()).expect("write");
    let name = format!("{}/{}:1", reg.addr, unique("multi"));
    oci::sh(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:multi", dir.display()))
            .arg(format!("docker://{name}")),
    );
    env.ok(&[&"pull", &"--insecure", &name]);
    env.ok(&[&"unpack", &name, &env.path("out")]);
    assert_eq!(std::fs::read(env.path("out/arch")).expect("arch"), host.architecture.as_bytes());
    // Also the layout import resolves the index.
    env.ok(&[&"import", &dir, &"--tag", &"multi-local"]);
    let other = Env::new();
    let err = other.fails(&[&"pull", &"--insecure", &"--platform", &"linux/riscv64", &name]);
    assert!(err.contains("no manifest for platform linux/riscv64") && err.contains("linux/s390x"), "{err}");
    let s = json(&other.ok(&[&"pull", &"--insecure", &"--platform", &"linux/s390x", &name, &"--json"]));
    assert_eq!(s["up_to_date"], false);
}

/// bcrypt of `monocore-secret` (cost 4), for the registry's htpasswd file.
const HTPASSWD: &str = "tester:$2b$04$KBnIxtrqIIPoSksmz0CAAeX9eaKIdQOZBhJdFJtM6rR/uXdB36xEG\n";

#[test]
fn registry_with_basic_auth_needs_credentials() {
    let test = "registry_with_basic_auth_needs_credentials";
    if registry(test).is_none() {
        return;
    }
    let auth = "auth:\n  htpasswd:\n    realm: monocore-test\n    path: DIR/htpasswd\n";
    let Some(reg) = start_private(auth, &[("htpasswd", HTPASSWD)]) else {
        assert!(std::env::var("CI").is_err(), "{test}: could not start docker-registry with htpasswd auth");
        eprintln!("SKIP {test}: docker-registry is not installed");
        return;
    };
    let env = Env::new();
    let layout = oci::busybox_layout(env.dir.path());
    let name = format!("{}/{}:1", reg.addr, unique("private"));
    oci::sh(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "tester:monocore-secret"])
            .arg(format!("oci:{}:t", layout.display()))
            .arg(format!("docker://{name}")),
    );
    let err = env.fails(&[&"pull", &"--insecure", &name]);
    assert!(err.contains("401") || err.contains("unauthorized"), "{err}");
    let mut c = Command::new(env!("CARGO_BIN_EXE_monocore"));
    c.env("MONOCORE_HOME", env.home()).env("HOME", env.path("user-home"));
    c.args(["pull", "--insecure", "--username", "tester", "--password-stdin", &name]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(b"monocore-secret\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&[&"unpack", &name, &env.path("out")]);
    monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, "t", &env.path("ref")), &env.path("out"));

    // Credentials from ~/.docker/config.json (`docker login`).
    let other = Env::new();
    let docker = other.path("user-home/.docker");
    std::fs::create_dir_all(&docker).expect("mkdir");
    // base64("tester:monocore-secret")
    let config = format!(r#"{{"auths":{{"{}":{{"auth":"dGVzdGVyOm1vbm9jb3JlLXNlY3JldA=="}}}}}}"#, reg.addr);
    std::fs::write(docker.join("config.json"), config).expect("write");
    other.ok(&[&"pull", &"--insecure", &name]);
    assert_eq!(other.image_names(), vec![name.clone()]);
}

#[test]
fn transient_server_errors_are_retried_then_reported_in_one_line() {
    // A fake registry that answers every request with 503.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            if String::from_utf8_lossy(&buf).contains("/manifests/") {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let body = "busy";
            let _ = write!(
                conn,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let env = Env::new();
    let err = env.fails(&[&"pull", &"--insecure", &format!("{addr}/busy/img:1")]);
    assert!(err.contains("503"), "{err}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 4, "one try and three retries");
    assert!(env.image_names().is_empty());
}

#[test]
fn a_killed_pull_leaves_no_image_and_the_next_pull_completes() {
    let test = "a_killed_pull_leaves_no_image_and_the_next_pull_completes";
    let Some(reg) = registry(test) else { return };
    let env = Env::new();
    let (layout, _) = oci::two_versions_layout(env.dir.path());
    let name = format!("{}/{}:2", reg.addr, unique("killed"));
    push(&layout, "v2", &name);
    for delay in [20u64, 80, 200] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_monocore"))
            .env("MONOCORE_HOME", env.home())
            .args(["pull", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let names = env.image_names();
        // Either the pull finished before the kill, or nothing is visible.
        assert!(status.success() || names.is_empty(), "after kill at {delay} ms: {names:?}");
        if !names.is_empty() {
            break;
        }
    }
    env.ok(&[&"pull", &name]);
    env.ok(&[&"unpack", &name, &env.path("out")]);
    monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, "v2", &env.path("ref")), &env.path("out"));
}

/// The head of an HTTP request (up to its blank line), or `None` when the
/// connection ends first.
fn read_request(conn: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&req).into_owned())
}

/// A minimal registry in a thread that serves one layout as `img:1` and
/// demands a bearer token from its token endpoint (the Docker Hub flow).
/// Returns its address and the number of tokens handed out.
fn bearer_registry(layout: &Path) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let tokens = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let issued = tokens.clone();
    let layout = layout.to_owned();
    let realm = format!("http://{addr}/token");
    std::thread::spawn(move || {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index")).expect("json");
        let manifest_digest = index["manifests"][0]["digest"].as_str().expect("digest").to_owned();
        let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).ok();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some(text) = read_request(&mut conn) else { continue };
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let authed = text.lines().any(|l| l.eq_ignore_ascii_case("authorization: bearer tok-123"));
            let (status, ctype, body, extra): (&str, &str, Vec<u8>, String) = if path.starts_with("/token") {
                issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ("200 OK", "application/json", br#"{"token":"tok-123"}"#.to_vec(), String::new())
            } else if !authed {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:img:pull\"\r\n"
                );
                (
                    "401 Unauthorized",
                    "application/json",
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}"#.to_vec(),
                    challenge,
                )
            } else if path == "/v2/" {
                ("200 OK", "application/json", b"{}".to_vec(), String::new())
            } else if let Some(r) = path.strip_prefix("/v2/img/manifests/") {
                let d = if r == "1" { manifest_digest.clone() } else { r.to_owned() };
                match blob(&d) {
                    Some(b) => (
                        "200 OK",
                        "application/vnd.oci.image.manifest.v1+json",
                        b,
                        format!("Docker-Content-Digest: {d}\r\n"),
                    ),
                    None => ("404 Not Found", "application/json", b"{}".to_vec(), String::new()),
                }
            } else if let Some(d) = path.strip_prefix("/v2/img/blobs/") {
                match blob(d) {
                    Some(b) => ("200 OK", "application/octet-stream", b, String::new()),
                    None => ("404 Not Found", "application/json", b"{}".to_vec(), String::new()),
                }
            } else {
                ("404 Not Found", "application/json", b"{}".to_vec(), String::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    (addr, tokens)
}

#[test]
fn bearer_token_challenge_is_followed() {
    if !have_tools("bearer_token_challenge_is_followed") {
        return;
    }
    let env = Env::new();
    let layout = oci::busybox_layout(env.dir.path());
    let (addr, tokens) = bearer_registry(&layout);
    let name = format!("{addr}/img:1");
    let s = json(&env.ok(&[&"pull", &"--insecure", &name, &"--json"]));
    assert_eq!(s["blobs_fetched"], 2);
    assert!(tokens.load(std::sync::atomic::Ordering::SeqCst) >= 1, "no token was requested");
    env.ok(&[&"unpack", &name, &env.path("out")]);
    monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, "t", &env.path("ref")), &env.path("out"));
}

/// A registry in a thread that sends without end: the manifest (`manifest`)
/// or the one layer its manifest declares 1024 bytes long (`layer`).
fn endless_registry(endless: &'static str) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        "0".repeat(64)
    )
    .into_bytes();
    let config_digest = oci::sha256(&config);
    let layer_digest = format!("sha256:{}", "1".repeat(64));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": 1024}],
    })
    .to_string()
    .into_bytes();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (config, manifest, layer_digest) = (config.clone(), manifest.clone(), layer_digest.clone());
            std::thread::spawn(move || {
                let Some(text) = read_request(&mut conn) else { return };
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let without_end = (endless == "manifest" && path.contains("/manifests/"))
                    || (endless == "layer" && path.ends_with(&layer_digest));
                if without_end {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n";
                    let _ = conn.write_all(head.as_bytes());
                    let piece = [b'A'; 65536];
                    while conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).is_ok()
                        && conn.write_all(&piece).is_ok()
                        && conn.write_all(b"\r\n").is_ok()
                    {}
                    return;
                }
                let body = if path.contains("/manifests/") {
                    manifest
                } else if path.contains("/blobs/") {
                    config
                } else {
                    b"{}".to_vec()
                };
                let ctype = if path.contains("/manifests/") {
                    "application/vnd.oci.image.manifest.v1+json"
                } else {
                    "application/octet-stream"
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    addr
}

/// A registry that sends a manifest without end, or a layer past the size
/// its manifest declares, is cut off at once with one clear error, and
/// leaves no partial download: it can fill neither memory nor the disk.
#[test]
fn an_endless_registry_is_cut_off() {
    for endless in ["manifest", "layer"] {
        let env = Env::new();
        let addr = endless_registry(endless);
        let mut child = env
            .command()
            .args(["pull", &format!("{addr}/evil:latest")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{endless}: the pull did not stop");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read");
        assert!(!status.success() && err.contains("the registry sent more than"), "{endless}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let partial = std::fs::read_dir(env.home().join("blobs/sha256"))
            .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "partial")).count())
            .unwrap_or(0);
        assert_eq!(partial, 0, "{endless}: a partial download was left");
    }
}
