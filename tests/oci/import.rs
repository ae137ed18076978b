//! Offline import: layouts and archives, equality with `umoci unpack`,
//! layer semantics, shared layers, lookup order, rmi.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use monofs_fixtures::oci;

use super::{Env, have_tools, json};

#[test]
fn busybox_import_then_unpack_equals_umoci_unpack() {
    if !have_tools("busybox_import_then_unpack_equals_umoci_unpack") {
        return;
    }
    let env = Env::new();
    let layout = oci::busybox_layout(env.dir.path());
    env.ok(&[&"import", &layout, &"--tag", &"bb"]);
    assert_eq!(env.image_names(), vec!["bb"]);
    env.ok(&[&"unpack", &"bb", &env.path("out")]);
    let reference = oci::umoci_unpack(&layout, "t", &env.path("ref"));
    monofs_fixtures::assert_same_tree(&reference, &env.path("out"));
    assert_eq!(std::fs::read(env.path("out/etc/marker")).expect("marker"), b"image-file\n");

    // The config is kept with the tree (library API for sandboxes).
    let store = monofs_overlay::ImageStore::open(&env.home()).expect("open store");
    let (root, config) = store.image_root("bb").expect("image");
    assert_eq!(config.cmd, Some(vec!["/bin/sh".to_owned()]));
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    assert!(config.env.as_ref().is_some_and(|e| e.iter().any(|v| v == "FROM_IMAGE=yes")));
    assert!(store.repo().read_dir(&root).is_ok());
}

#[test]
fn multilayer_image_equals_umoci_unpack_with_whiteouts_opaque_dirs_and_links() {
    if !have_tools("multilayer_image_equals_umoci_unpack_with_whiteouts_opaque_dirs_and_links") {
        return;
    }
    let env = Env::new();
    let layout = oci::multilayer_layout(env.dir.path());
    let s = json(&env.ok(&[&"import", &layout, &"--tag", &"ml", &"--json"]));
    assert_eq!(s["layers_applied"], 3);
    let out = env.path("out");
    env.ok(&[&"unpack", &"ml", &out]);
    let reference = oci::umoci_unpack(&layout, "t", &env.path("ref"));
    monofs_fixtures::assert_same_tree(&reference, &out);

    // Whiteouts of a file and of a directory, opaque directory.
    assert!(!out.join("etc/remove-me").exists());
    assert!(!out.join("gone-dir").exists());
    assert!(!out.join("opaque/old1").exists() && !out.join("opaque/sub").exists());
    assert_eq!(std::fs::read(out.join("opaque/new")).expect("new"), b"fresh\n");
    assert!(!out.join("opaque/.wh..wh..opq").exists());
    // An entry through a relative symlink lands where the symlink points.
    assert_eq!(std::fs::read(out.join("usr/bin/tool")).expect("tool"), b"via symlink\n");
    assert!(std::fs::symlink_metadata(out.join("ubin")).expect("ubin").file_type().is_symlink());
    // A hard link whose first name was whited out keeps the content.
    assert!(!out.join("var/lib/data.bin").exists());
    assert_eq!(std::fs::metadata(out.join("var/lib/data-link")).expect("link").len(), 300_000);
    // Hard link to a lower layer's file, type changes, specials.
    let a = std::fs::metadata(out.join("etc/conf.d/a")).expect("a");
    let h = std::fs::metadata(out.join("etc/hard-a")).expect("hard-a");
    assert_eq!((a.dev(), a.ino()), (h.dev(), h.ino()));
    assert!(std::fs::symlink_metadata(out.join("to-replace")).expect("file").is_file());
    assert!(std::fs::symlink_metadata(out.join("dangling")).expect("dir").is_dir());
    assert!(std::fs::symlink_metadata(out.join("etc/fifo")).expect("fifo").file_type().is_fifo());
    assert_eq!(std::fs::read_link(out.join("abs-link")).expect("link").as_os_str(), "/etc/conf.d/a");
    assert_eq!(std::fs::metadata(out.join("bin/suid")).expect("suid").mode() & 0o7777, 0o4755);
    if monofs_fixtures::is_root() {
        let d = std::fs::symlink_metadata(out.join("dev/null-ish")).expect("dev");
        assert!(d.file_type().is_char_device());
        assert_eq!(std::fs::metadata(out.join("etc/conf.d/b")).expect("b").uid(), 1234);
    }
    assert_eq!(std::fs::metadata(out.join("etc/conf.d/a")).expect("a").mtime(), 1_430_802_305);

    let store = monofs_overlay::ImageStore::open(&env.home()).expect("open store");
    let (_, config) = store.image_root("ml").expect("image");
    assert_eq!(config.entrypoint, Some(vec!["/bin/sh".to_owned()]));
    assert!(config.env.as_ref().is_some_and(|e| e.iter().any(|v| v == "FOO=bar")));
}

#[test]
fn second_version_reuses_the_shared_layer_and_costs_little() {
    if !have_tools("second_version_reuses_the_shared_layer_and_costs_little") {
        return;
    }
    let env = Env::new();
    let (layout, _patch) = oci::two_versions_layout(env.dir.path());
    // Several images in one layout: --ref is required.
    let err = env.fails(&[&"import", &layout, &"--tag", &"app"]);
    assert!(err.contains("v1") && err.contains("v2") && err.contains("--ref"), "{err}");
    let one = json(&env.ok(&[&"import", &layout, &"--tag", &"app:1", &"--ref", &"v1", &"--json"]));
    let two = json(&env.ok(&[&"import", &layout, &"--tag", &"app:2", &"--ref", &"v2", &"--json"]));
    assert_eq!(one["layers_applied"], 1);
    assert_eq!(two["layers_applied"], 1);
    assert_eq!(two["layers_reused"], 1);
    // v2's layer holds the whole 4 MB file again; the store keeps only the
    // chunks that changed.
    let growth = two["new_bytes"].as_u64().expect("bytes");
    assert!(growth < 400_000, "second version grew the store by {growth} bytes");
    assert!(growth as f64 <= 1.2 * 4_000_002.0);

    for (tag, r) in [("app:1", "v1"), ("app:2", "v2")] {
        let out = env.path(&format!("out-{r}"));
        env.ok(&[&"unpack", &tag, &out]);
        monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, r, &env.path(&format!("ref-{r}"))), &out);
    }
    // Image trees are ordinary revisions: `monofs diff` works on them.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monofs"))
        .arg("diff")
        .arg(env.store())
        .arg("images/app:1")
        .arg("images/app:2")
        .output()
        .expect("monofs diff");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("data/blob.bin") && text.contains("etc/version"), "{text}");
    assert_eq!(text.lines().filter(|l| !l.trim().is_empty()).count(), 2, "{text}");
}

#[test]
fn archives_import_like_layouts() {
    if !have_tools("archives_import_like_layouts") {
        return;
    }
    let env = Env::new();
    let layout = oci::busybox_layout(env.dir.path());
    let archive = env.path("bb.tar");
    oci::sh(std::process::Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg("."));
    env.ok(&[&"import", &archive, &"--tag", &"from-archive"]);
    env.ok(&[&"unpack", &"from-archive", &env.path("out")]);
    monofs_fixtures::assert_same_tree(&oci::umoci_unpack(&layout, "t", &env.path("ref")), &env.path("out"));
}

#[test]
fn docker_save_archive_imports() {
    let env = Env::new();
    let dir = env.path("save");
    std::fs::create_dir_all(dir.join("abc")).expect("mkdir");
    let tar = oci::one_file_tar("hello.txt", b"from docker save\n");
    std::fs::write(dir.join("abc/layer.tar"), &tar).expect("write");
    let cfg = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [oci::sha256(&tar)]}});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).expect("write");
    let manifest = serde_json::json!([{"Config": "cfg.json", "RepoTags": ["saved:1"], "Layers": ["abc/layer.tar"]}]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("write");
    let archive = env.path("saved.tar");
    oci::sh(std::process::Command::new("tar").arg("-C").arg(&dir).arg("-cf").arg(&archive).arg("."));
    env.ok(&[&"import", &archive, &"--tag", &"saved"]);
    env.ok(&[&"unpack", &"saved", &env.path("out")]);
    assert_eq!(std::fs::read(env.path("out/hello.txt")).expect("file"), b"from docker save\n");
}

#[test]
fn lookup_is_local_first_as_given_then_latest() {
    let env = Env::new();
    let (layout, _) = oci::write_layout(
        &env.path("l"),
        "x",
        &[oci::RawLayer {
            tar: oci::one_file_tar("f", b"local\n"),
            compression: oci::Compression::Gzip,
            media_type: None,
        }],
    );
    // Names that would otherwise go to a registry resolve locally, with no
    // network: a closed port and Docker Hub.
    env.ok(&[&"import", &layout, &"--tag", &"127.0.0.1:9/team/img:latest"]);
    env.ok(&[&"import", &layout, &"--tag", &"alpine"]);
    env.ok(&[&"import", &layout, &"--tag", &"bb:latest"]);
    env.ok(&[&"unpack", &"127.0.0.1:9/team/img", &env.path("a")]);
    env.ok(&[&"unpack", &"alpine", &env.path("b")]);
    env.ok(&[&"unpack", &"bb", &env.path("c")]);
    for d in ["a", "b", "c"] {
        assert_eq!(std::fs::read(env.path(d).join("f")).expect("f"), b"local\n");
    }
    // A missing image is pulled: with nothing listening, a clear error.
    let err = env.fails(&[&"unpack", &"127.0.0.1:9/team/other", &env.path("d")]);
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

#[test]
fn rmi_removes_the_image_and_unused_layer_chains() {
    let env = Env::new();
    let (layout, _) = oci::write_layout(
        &env.path("l"),
        "x",
        &[oci::RawLayer {
            tar: oci::one_file_tar("f", b"data\n"),
            compression: oci::Compression::None,
            media_type: None,
        }],
    );
    env.ok(&[&"import", &layout, &"--tag", &"one"]);
    env.ok(&[&"import", &layout, &"--tag", &"two"]);
    let listed = super::json(&env.ok(&[&"images", &"--json"]));
    assert_eq!(listed[0]["logical_bytes"], 5);
    assert!(listed[0]["stored_bytes"].as_u64().expect("stored") > 0);
    env.ok(&[&"rmi", &"one"]);
    assert_eq!(env.image_names(), vec!["two"]);
    // `monofs gc` keeps what the remaining image needs.
    let gc = std::process::Command::new(env!("CARGO_BIN_EXE_monofs")).arg("gc").arg(env.store()).output().expect("gc");
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    env.ok(&[&"unpack", &"two", &env.path("after-gc")]);
    assert_eq!(std::fs::read(env.path("after-gc/f")).expect("f"), b"data\n");
    let err = env.fails(&[&"rmi", &"one"]);
    assert!(err.contains("no image 'one'"), "{err}");
    env.ok(&[&"rmi", &"two"]);
    assert!(env.image_names().is_empty());
    let store = monofs_overlay::ImageStore::open(&env.home()).expect("store");
    assert!(store.repo().refs_with_prefix("chains/").expect("refs").is_empty());
    assert!(store.repo().all_revisions().expect("index").is_empty(), "revisions of removed images stay indexed");
    drop(store);
    // And gc frees what they held (it kept every indexed revision).
    let gc = std::process::Command::new(env!("CARGO_BIN_EXE_monofs")).arg("gc").arg(env.store()).output().expect("gc");
    let said = String::from_utf8_lossy(&gc.stdout);
    assert!(gc.status.success() && said.starts_with("removed ") && !said.starts_with("removed 0 "), "{said}");
}

#[test]
fn gzip_zstd_and_plain_layers_stack() {
    let env = Env::new();
    let layers = [
        oci::RawLayer { tar: oci::one_file_tar("a", b"gzip\n"), compression: oci::Compression::Gzip, media_type: None },
        oci::RawLayer { tar: oci::one_file_tar("b", b"zstd\n"), compression: oci::Compression::Zstd, media_type: None },
        oci::RawLayer {
            tar: oci::one_file_tar("c", b"plain\n"),
            compression: oci::Compression::None,
            media_type: None,
        },
    ];
    let (layout, _) = oci::write_layout(&env.path("l"), "x", &layers);
    let s = json(&env.ok(&[&"import", &layout, &"--tag", &"mixed", &"--json"]));
    assert_eq!(s["layers_applied"], 3);
    env.ok(&[&"unpack", &"mixed", &env.path("out")]);
    for (f, want) in [("a", "gzip\n"), ("b", "zstd\n"), ("c", "plain\n")] {
        assert_eq!(std::fs::read_to_string(env.path("out").join(f)).expect("read"), want);
    }
}
