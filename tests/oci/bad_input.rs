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
