//! What users of a mounted tree can make the process serving it hold in
//! memory is bounded.

use monofs::{InitOptions, Repository};

/// What one user of a mount can make the process serving it hold in
/// memory is bounded: extended attributes per file (128 KiB, ENOSPC past
/// it; there was no bound), and for a tree limited with
/// `limit_growth` (a sandbox's), the number of files it adds (ENOSPC).
/// (Names per file stop at 65,000, EMLINK, as on ext4; each link costs
/// time in the number of names, so that is not tested here.)
#[test]
fn what_a_mount_user_can_make_the_server_hold_is_bounded() {
    use monofs::vfs::{ROOT, Vfs, VfsError};
    use nix::errno::Errno;

    let errno = |r: Result<(), VfsError>| r.err().map(|e| e.errno());
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = std::sync::Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo, None).expect("vfs");
    let f = vfs.create(ROOT, b"f", 0o644, 0, 0).expect("create").ino;
    vfs.release(f);
    let value = vec![7u8; 4000];
    let mut stored = 0;
    while vfs.setxattr(f, format!("user.x{stored:03}").as_bytes(), &value, false, false).is_ok() {
        stored += 1;
        assert!(stored < 100, "no bound on xattrs");
    }
    assert_eq!(stored, 32, "128 KiB of names and values");
    // One value of the largest size Linux allows fits on its own.
    let big = vfs.create(ROOT, b"big", 0o644, 0, 0).expect("create").ino;
    vfs.setxattr(big, b"user.max", &vec![1u8; 65536], false, false).expect("a 64 KiB value");
    let full = vfs.setxattr(f, b"user.x999", &value, false, false);
    assert_eq!(errno(full), Some(Errno::ENOSPC as i32));
    // Replacing one within the space still works.
    vfs.setxattr(f, b"user.x000", &[1u8; 10], false, true).expect("replace");

    vfs.limit_growth(3).expect("limit");
    for name in [&b"a"[..], b"b", b"c"] {
        vfs.create(ROOT, name, 0o644, 0, 0).expect("within the limit");
    }
    let over = vfs.mkdir(ROOT, b"d", 0o755, 0, 0).map(drop);
    assert_eq!(errno(over), Some(Errno::ENOSPC as i32));
    vfs.unlink(ROOT, b"a").expect("unlink");
}
