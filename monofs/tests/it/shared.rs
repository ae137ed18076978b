//! Repositories opened shared by several processes at once (monocore's
//! image store): each sees the others' commits; exclusive users wait.

use monofs::{Error, InitOptions, Repository};
use monofs_fixtures::write;

use super::commit;

fn none() -> std::io::Result<Vec<u8>> {
    Ok(Vec::new())
}

#[test]
fn shared_handles_see_each_others_commits_and_exclude_exclusive_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    drop(Repository::init(&path, InitOptions::default()).expect("init"));
    // Two handles stand for two processes: flock and redb's file locks are
    // per open file, not per process.
    let a = Repository::open_shared(&path, &mut none).expect("first shared open");
    let b = Repository::open_shared(&path, &mut none).expect("second shared open");
    let data = dir.path().join("data");
    write(&data.join("f"), b"written through a");
    let rev = commit(&a, &data, "from a");
    assert_eq!(b.head().expect("head"), Some(rev), "b sees a's commit");
    assert_eq!(b.read_revision(&rev).expect("revision").message, "from a");
    write(&data.join("g"), b"written through b");
    let rev2 = commit(&b, &data, "from b");
    assert_eq!(a.read_revision(&rev2).expect("a reads b's objects").parents, vec![rev]);
    match Repository::open(&path, &mut none) {
        Err(Error::Locked { .. }) => {}
        other => panic!("an exclusive open beside shared ones: {:?}", other.map(|_| ())),
    }
    drop((a, b));
    let exclusive = Repository::open(&path, &mut none).expect("exclusive once nobody shares");
    assert!(matches!(Repository::open_shared(&path, &mut none), Err(Error::Locked { .. })));
    assert_eq!(exclusive.head().expect("head"), Some(rev2));
}
