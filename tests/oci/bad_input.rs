//! Hostile and damaged images: one clear error, nothing visible afterwards.

use monofs_fixtures::oci::{self, RawLayer};

use super::{Env, assert_absent};

fn layout_with(env: &Env, name: &str, tar: Vec<u8>) -> std::path::PathBuf {
    oci::write_layout(&env.path(name), name, &[RawLayer { tar, compression: oci::Compression::Gzip, media_type: None }])
        .0
}

fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().expect("tar")
}

#[test]
fn entries_escaping_the_root_are_rejected_naming_layer_and_entry() {
    let env = Env::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dotdot", oci::one_file_tar("../../escaped-by-layer", b"pwned\n"), "../../escaped-by-layer"),
        ("absolute", oci::one_file_tar("/abs-escape", b"pwned\n"), "/abs-escape"),
        (
            "symlink-parent",
            tar_of(|b| {
                oci::link_entry(b, "lnk", "/", false);
                oci::file_entry(b, "lnk/tmp/through-symlink", b"pwned\n", 0o644, 0);
            }),
            "lnk/tmp/through-symlink",
        ),
        (
            "symlink-dotdot",
            tar_of(|b| {
                oci::link_entry(b, "up", "../../..", false);
                oci::file_entry(b, "up/etc/evil", b"pwned\n", 0o644, 0);
            }),
            "up/etc/evil",
        ),
        (
            "hardlink",
            tar_of(|b| {
                oci::link_entry(b, "pw", "../../etc/passwd", true);
            }),
            "pw",
        ),
    ];
    for (name, tar, entry) in cases {
        let layout = layout_with(&env, name, tar);
        let err = env.fails(&[&"import", &layout, &"--tag", &name]);
        assert!(err.contains(entry) && err.contains("layer sha256:"), "{name}: {err}");
        assert!(err.contains("escapes the image root"), "{name}: {err}");
    }
    assert!(env.image_names().is_empty());
    assert_absent(&env.path("escaped-by-layer"));
    assert_absent(std::path::Path::new("/abs-escape"));
    assert_absent(std::path::Path::new("/tmp/through-symlink"));
}

/// `/` alone names the root (`umoci insert IMAGE DIR /` writes such an
/// entry): it is the root's metadata, not an escape; `/etc/x` still is one.
#[test]
fn an_entry_for_the_root_itself_is_not_an_escape() {
    let env = Env::new();
    let layout = layout_with(
        &env,
        "root-entry",
        tar_of(|b| {
            oci::dir_entry(b, "/", 0o755, 1_500_000_000);
            oci::dir_entry(b, "bin/", 0o755, 1_500_000_000);
            oci::file_entry(b, "bin/tool", b"tool\n", 0o755, 1_500_000_000);
        }),
    );
    env.ok(&[&"import", &layout, &"--tag", &"rooted"]);
    env.ok(&[&"unpack", &"rooted", &env.path("out")]);
    assert_eq!(std::fs::read(env.path("out/bin/tool")).expect("tool"), b"tool\n");
}

#[test]
fn hard_link_to_a_missing_file_is_a_clear_error() {
    let env = Env::new();
    let layout = layout_with(&env, "dangling", tar_of(|b| oci::link_entry(b, "a", "nothing-here", true)));
    let err = env.fails(&[&"import", &layout, &"--tag", &"x"]);
    assert!(err.contains("'a'") && err.contains("nothing-here"), "{err}");
    assert!(env.image_names().is_empty());
}

#[test]
fn damaged_blobs_are_clear_errors_and_leave_nothing() {
    let env = Env::new();
    let tar = oci::one_file_tar("f", &monofs_fixtures::Rng::new(3).bytes(50_000));

    // Same length, one byte changed.
    let (layout, blobs) = oci::write_layout(
        &env.path("flip"),
        "x",
        &[RawLayer { tar: tar.clone(), compression: oci::Compression::None, media_type: None }],
    );
    let mut bytes = std::fs::read(&blobs[0]).expect("read");
    bytes[20_000] ^= 0xff;
    std::fs::write(&blobs[0], &bytes).expect("write");
    let err = env.fails(&[&"import", &layout, &"--tag", &"flip"]);
    assert!(err.contains("digest mismatch") && err.contains("layer sha256:"), "{err}");

    // Truncated.
    let (layout, blobs) = oci::write_layout(
        &env.path("cut"),
        "x",
        &[RawLayer { tar: tar.clone(), compression: oci::Compression::Gzip, media_type: None }],
    );
    let bytes = std::fs::read(&blobs[0]).expect("read");
    std::fs::write(&blobs[0], &bytes[..bytes.len() / 2]).expect("write");
    let err = env.fails(&[&"import", &layout, &"--tag", &"cut"]);
    assert!(err.contains("truncated"), "{err}");

    // Unknown media type.
    let (layout, _) = oci::write_layout(
        &env.path("mt"),
        "x",
        &[RawLayer {
            tar: tar.clone(),
            compression: oci::Compression::None,
            media_type: Some("application/vnd.example.weird".into()),
        }],
    );
    let err = env.fails(&[&"import", &layout, &"--tag", &"mt"]);
    assert!(err.contains("unknown media type 'application/vnd.example.weird'"), "{err}");

    // Missing blob.
    let (layout, blobs) = oci::write_layout(
        &env.path("gone"),
        "x",
        &[RawLayer { tar, compression: oci::Compression::None, media_type: None }],
    );
    std::fs::remove_file(&blobs[0]).expect("rm");
    let err = env.fails(&[&"import", &layout, &"--tag", &"gone"]);
    assert!(err.contains("missing"), "{err}");

    // Not an image at all.
    std::fs::create_dir_all(env.path("empty")).expect("mkdir");
    let err = env.fails(&[&"import", &env.path("empty"), &"--tag", &"e"]);
    assert!(err.contains("not an OCI image layout"), "{err}");

    assert!(env.image_names().is_empty());
}

/// Files an image names that are no files of its own: a layout's blob
/// replaced by a symlink to `/dev/zero` (read for ever), an archive's
/// config or layer that is a symlink out of the archive (a host file read
/// as the image's). A link from one layer to another inside a `docker save`
/// archive, as docker writes for a layer it holds twice, still imports.
#[test]
fn blobs_that_are_devices_or_lead_outside_the_archive_are_refused() {
    let env = Env::new();
    let (layout, blobs) = oci::write_layout(
        &env.path("zero"),
        "x",
        &[RawLayer { tar: oci::one_file_tar("f", b"x"), compression: oci::Compression::None, media_type: None }],
    );
    std::fs::remove_file(&blobs[0]).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &blobs[0]).expect("symlink");
    let err = env.fails(&[&"import", &layout, &"--tag", &"zero"]);
    assert!(err.contains("not a regular file"), "{err}");

    // A `docker save` archive; each layer or the config may be a symlink.
    let save = |name: &str, config: (&str, Option<&str>), layers: &[(&str, Option<&str>)]| {
        let dir = env.path(name);
        let tar = oci::one_file_tar("hello.txt", b"saved\n");
        let place = |path: &str, link: Option<&str>, bytes: &[u8]| {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            match link {
                Some(to) => std::os::unix::fs::symlink(to, &path).expect("symlink"),
                None => std::fs::write(&path, bytes).expect("write"),
            }
        };
        let diffs: Vec<String> = layers.iter().map(|_| oci::sha256(&tar)).collect();
        for (path, link) in layers {
            place(path, *link, &tar);
        }
        let cfg = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diffs}});
        place(config.0, config.1, cfg.to_string().as_bytes());
        let names: Vec<&str> = layers.iter().map(|l| l.0).collect();
        let manifest = serde_json::json!([{"Config": config.0, "RepoTags": ["s:1"], "Layers": names}]);
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("write");
        let archive = env.path(&format!("{name}.tar"));
        oci::sh(std::process::Command::new("tar").arg("-C").arg(&dir).arg("-cf").arg(&archive).arg("."));
        archive
    };
    let out_config = save("out-config", ("host.json", Some("/etc/hostname")), &[("a/layer.tar", None)]);
    let err = env.fails(&[&"import", &out_config, &"--tag", &"c"]);
    assert!(err.contains("host.json") && err.contains("leads outside the archive"), "{err}");
    let out_layer = save("out-layer", ("cfg.json", None), &[("a/layer.tar", Some("/dev/zero"))]);
    let err = env.fails(&[&"import", &out_layer, &"--tag", &"l"]);
    assert!(err.contains("layer.tar") && err.contains("leads outside the archive"), "{err}");
    assert!(env.image_names().is_empty());

    let twice = save("twice", ("cfg.json", None), &[("a/layer.tar", None), ("b/layer.tar", Some("../a/layer.tar"))]);
    env.ok(&[&"import", &twice, &"--tag", &"twice"]);
    env.ok(&[&"unpack", &"twice", &env.path("out")]);
    assert_eq!(std::fs::read(env.path("out/hello.txt")).expect("file"), b"saved\n");
}

/// A layer whose PAX header claims more than 1 MiB (Go's limit) is refused
/// as the header passes: the tar parser read such a header whole, and a
/// 6.5 MB layer claiming 1.5 GB took 4.4 GB of memory before anything
/// looked at it.
#[test]
fn oversized_pax_headers_are_refused_before_they_are_read() {
    let env = Env::new();
    let big = vec![b'a'; 2 << 20];
    let layout = layout_with(
        &env,
        "pax-bomb",
        tar_of(|b| {
            oci::pax_entry(b, &[("SCHILY.xattr.user.big", &big[..])]);
            oci::file_entry(b, "f", b"x", 0o644, 1_500_000_000);
        }),
    );
    let err = env.fails(&[&"import", &layout, &"--tag", &"bomb"]);
    assert!(err.contains("layer sha256:") && err.contains("PAX header of") && err.contains("at most"), "{err}");
    assert!(env.image_names().is_empty());
}

/// `monocore unpack` into a file system that refuses an attribute of the
/// image (ext4 holds at most a block's worth): every file is written, and
/// the command fails saying what was lost, as `monofs checkout --to` does.
#[test]
fn unpack_that_loses_xattrs_fails_after_writing_everything() {
    let env = Env::new();
    let big = vec![b'v'; 200_000];
    let layout = layout_with(
        &env,
        "big-xattr",
        tar_of(|b| {
            oci::pax_entry(b, &[("SCHILY.xattr.user.big", &big[..])]);
            oci::file_entry(b, "f", b"content\n", 0o644, 1_500_000_000);
            oci::file_entry(b, "g", b"more\n", 0o644, 1_500_000_000);
        }),
    );
    env.ok(&[&"import", &layout, &"--tag", &"x"]);
    let err = env.fails(&[&"unpack", &"x", &env.path("out")]);
    assert!(err.contains("1 extended attributes could not be written") && err.contains("user.big"), "{err}");
    assert_eq!(std::fs::read(env.path("out/f")).expect("f"), b"content\n");
    assert_eq!(std::fs::read(env.path("out/g")).expect("g"), b"more\n");
}

#[test]
fn a_layer_that_fails_halfway_leaves_no_image_and_the_next_import_works() {
    let env = Env::new();
    let good = oci::one_file_tar("ok", b"fine\n");
    let (layout, _) = oci::write_layout(
        &env.path("l"),
        "x",
        &[
            RawLayer { tar: good.clone(), compression: oci::Compression::Gzip, media_type: None },
            RawLayer { tar: oci::one_file_tar("../bad", b"x"), compression: oci::Compression::Gzip, media_type: None },
        ],
    );
    env.fails(&[&"import", &layout, &"--tag", &"half"]);
    assert!(env.image_names().is_empty());
    let (layout, _) = oci::write_layout(
        &env.path("l2"),
        "x",
        &[
            RawLayer { tar: good, compression: oci::Compression::Gzip, media_type: None },
            RawLayer { tar: oci::one_file_tar("more", b"y"), compression: oci::Compression::Gzip, media_type: None },
        ],
    );
    let s = super::json(&env.ok(&[&"import", &layout, &"--tag", &"whole", &"--json"]));
    // The first layer's tree from the failed attempt is reused.
    assert_eq!(s["layers_reused"], 1);
    assert_eq!(env.image_names(), vec!["whole"]);
}

#[test]
fn invalid_names_are_refused() {
    let env = Env::new();
    let (layout, _) = oci::write_layout(
        &env.path("l"),
        "x",
        &[RawLayer { tar: oci::one_file_tar("f", b"1"), compression: oci::Compression::None, media_type: None }],
    );
    for bad in ["", "a b", "../x", "-x"] {
        let err = env.fails(&[&"import", &layout, &format!("--tag={bad}")]);
        assert!(err.contains("invalid image name"), "{bad}: {err}");
    }
    let err = env.fails(&[&"pull", &"UPPER/case"]);
    assert!(err.contains("invalid image name"), "{err}");
}
