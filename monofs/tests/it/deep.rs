//! Trees far deeper than usual: a commit and a restore as deep as a path
//! on disk can go, and fsck, stats and gc on a deeper tree made through a
//! mount. Each aborted the process (stack overflow): commit at 460 levels,
//! restore at 850, the walks at 20,000 on an 8 MiB main thread (6,000
//! here, on a test's 2 MiB thread).

use std::path::PathBuf;
use std::sync::Arc;

use monofs::object::{Dir, Kind};
use monofs::vfs::{ROOT, Vfs};
use monofs::{InitOptions, Repository};

use super::{commit, opts, restore};

#[test]
fn a_tree_as_deep_as_a_path_commits_and_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init");
    // 1,500 levels: 3,000 bytes of path, within PATH_MAX (4,096) with the
    // restore target's own.
    let deep: PathBuf = std::iter::repeat_n("d", 1500).collect();
    monofs_fixtures::write(&dir.path().join("src").join(&deep).join("leaf"), b"at the bottom");
    let rev = commit(&repo, &dir.path().join("src"), "deep");
    let out = dir.path().join("out");
    restore(&repo, &rev, &out);
    assert_eq!(std::fs::read(out.join(&deep).join("leaf")).expect("read back"), b"at the bottom");
}

/// Paths past PATH_MAX (4,096 bytes), as `tar` and `rsync` copy them: a
/// commit used to fail on the first one ("File name too long") and a
/// restore could not write them.
#[test]
fn paths_longer_than_path_max_commit_and_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init");
    let name = "n".repeat(250);
    let deep: PathBuf = std::iter::repeat_n(name.as_str(), 24).collect();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    // Made and checked through a shell that walks down with `cd -P` (by
    // name, not by its logical path): the whole path is too long for any
    // one call.
    let sh = |script: &str, at: &std::path::Path| {
        let down = format!(
            "cd -P \"$1\" && for i in $(seq 24); do {{ [ -d {name} ] || mkdir {name}; }} && cd -P {name} || exit 1; done"
        );
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{down} && {script}"))
            .args(["sh", &at.display().to_string()])
            .status()
            .expect("sh")
            .success()
    };
    std::fs::create_dir(&src).expect("mkdir");
    let made = "printf 'at the bottom' > leaf && ln -s leaf link && ln leaf hard && mkfifo fifo && chmod 600 leaf";
    assert!(sh(made, &src));
    assert!(src.join(&deep).join("leaf").as_os_str().len() > 6_000);
    let rev = commit(&repo, &src, "long paths");
    restore(&repo, &rev, &out);
    let same = "[ \"$(cat leaf)\" = 'at the bottom' ] && [ \"$(readlink link)\" = leaf ] && [ -p fifo ] && \
                [ \"$(stat -c %i leaf)\" = \"$(stat -c %i hard)\" ] && [ \"$(stat -c %a leaf)\" = 600 ]";
    let check = sh(same, &out);
    assert!(check, "the restored tree differs at the bottom");
}

#[test]
fn walks_reach_the_bottom_of_a_deep_mounted_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let mut at = ROOT;
    for _ in 0..6_000 {
        at = vfs.mkdir(at, b"d", 0o755, 0, 0).expect("mkdir").ino;
    }
    let leaf = vfs.create(at, b"leaf", 0o644, 0, 0).expect("create").ino;
    vfs.write(leaf, 0, b"at the bottom").expect("write");
    vfs.release(leaf);
    vfs.flush().expect("flush");
    let first = repo.commit_worktree(&opts("deep")).expect("commit");
    let second = vfs.create(at, b"second", 0o644, 0, 0).expect("create").ino;
    vfs.release(second);
    vfs.flush().expect("flush");
    drop(vfs);
    let last = repo.commit_worktree(&opts("one more")).expect("commit");
    // diff: from one to the other, and all of it from nothing.
    let deep = vec!["d"; 6_000].join("/");
    let changes = repo.diff_trees(&first.root, &last.root).expect("diff");
    let listed: Vec<String> = changes.iter().map(|c| format!("{} {}", c.status.letter(), c.path)).collect();
    assert_eq!(listed, [format!("A {deep}/second")]);
    let mut tx = repo.begin().expect("begin");
    let empty = repo.put_object(tx.as_mut(), Kind::Dir, &Dir::default().encode()).expect("the empty tree");
    tx.commit().expect("commit");
    let all = repo.diff_trees(&empty, &last.root).expect("diff from nothing");
    assert_eq!(all.len(), 6_002);
    assert_eq!(all.last().map(|c| c.path.clone()), Some(format!("{deep}/second")));
    // The walks run on the test's thread, whose stack is 2 MiB.
    let report = repo.fsck().expect("fsck");
    assert!(report.is_sound(), "{report:?}");
    assert!(repo.stats().expect("stats").objects > 6_000);
    repo.gc().expect("gc");
    assert!(repo.fsck().expect("fsck after gc").is_sound());
}
