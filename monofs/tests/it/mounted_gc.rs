//! gc while the working tree is mounted ([`Vfs::gc`]): the mount keeps
//! writing and flushing, writes again what gc is about to remove, and
//! holds an open file no longer named; nothing it refers to may go.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use monofs::vfs::{ROOT, SetAttr, Vfs};
use monofs::{InitOptions, Repository};
use monofs_fixtures::Rng;

/// Sets its flag when dropped, a panic included, so that a thread waiting
/// for it stops.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Writes `bytes` as the whole content of `name`, creating it if needed.
fn put(vfs: &Vfs, name: &str, bytes: &[u8]) {
    let ino = match vfs.lookup(ROOT, name.as_bytes()) {
        Ok(attr) => attr.ino,
        Err(_) => vfs.create(ROOT, name.as_bytes(), 0o644, 0, 0).expect("create").ino,
    };
    vfs.setattr(ino, SetAttr { size: Some(0), ..Default::default() }).expect("truncate");
    vfs.write(ino, 0, bytes).expect("write");
    vfs.release(ino);
}

fn read(vfs: &Vfs, name: &str) -> Vec<u8> {
    let ino = vfs.lookup(ROOT, name.as_bytes()).expect("lookup").ino;
    vfs.read(ino, 0, 1 << 20).expect("read").to_vec()
}

#[test]
fn gc_while_mounted_keeps_what_the_mount_refers_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let mut rng = Rng::new(9);
    // Open and no longer named: only the mount refers to its content.
    let held = rng.bytes(300 << 10);
    let held_ino = vfs.create(ROOT, b"held", 0o644, 0, 0).expect("create").ino;
    vfs.write(held_ino, 0, &held).expect("write");
    vfs.flush().expect("flush");
    vfs.unlink(ROOT, b"held").expect("unlink");
    // Contents written, removed (garbage then) and written again.
    let contents: Vec<Vec<u8>> = (0..4).map(|_| rng.bytes(200 << 10)).collect();
    let mut model: BTreeMap<String, usize> = BTreeMap::new();
    let stop = AtomicBool::new(false);
    let (collections, removed) = std::thread::scope(|s| {
        let collector = s.spawn(|| {
            let (mut n, mut removed) = (0u32, 0u64);
            while !stop.load(Ordering::Relaxed) {
                removed += vfs.gc().expect("gc while mounted").removed;
                n += 1;
            }
            (n, removed)
        });
        let _stop = StopOnDrop(&stop);
        for step in 0..240u32 {
            let name = format!("f{}", rng.next_u64() % 6);
            if model.contains_key(&name) && rng.next_u64().is_multiple_of(3) {
                vfs.unlink(ROOT, name.as_bytes()).expect("unlink");
                model.remove(&name);
            } else {
                let k = (rng.next_u64() % contents.len() as u64) as usize;
                put(&vfs, &name, &contents[k]);
                model.insert(name, k);
            }
            if step.is_multiple_of(3) {
                vfs.flush().expect("flush");
            }
        }
        drop(_stop);
        collector.join().expect("collector")
    });
    assert!(collections >= 3, "only {collections} collections ran alongside the writes");
    assert!(removed > 0, "no collection found garbage");
    assert!(vfs.read(held_ino, 0, 1 << 20).expect("read the held file") == held);
    for (name, k) in &model {
        assert!(read(&vfs, name) == contents[*k], "{name}");
    }
    vfs.flush().expect("flush");
    vfs.gc().expect("gc");
    assert!(vfs.read(held_ino, 0, 1 << 20).expect("read the held file") == held);
    let report = repo.fsck().expect("fsck");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    vfs.release(held_ino);
    drop(vfs);
    let again = Vfs::new(repo, None).expect("reload");
    for (name, k) in &model {
        assert!(read(&again, name) == contents[*k], "{name} as stored");
    }
}

/// What is written to a file open but no longer named is stored like any
/// file's (not held in memory until it is closed), kept while it is held,
/// and collected once it is gone.
#[test]
fn unnamed_open_files_are_stored_not_held_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    vfs.limit_dirty(1 << 20);
    let objects = || repo.store().count(monofs::store::Table::Objects).expect("count");
    let ino = vfs.create(ROOT, b"scratch", 0o644, 0, 0).expect("create").ino;
    vfs.unlink(ROOT, b"scratch").expect("unlink");
    let before = objects();
    let data = Rng::new(4).bytes(8 << 20);
    for (i, piece) in data.chunks(64 << 10).enumerate() {
        vfs.write(ino, (i * (64 << 10)) as u64, piece).expect("write");
    }
    vfs.flush().expect("flush");
    assert!(objects() > before + 64, "the unnamed file's data was not stored: {} -> {}", before, objects());
    vfs.gc().expect("gc");
    assert!(vfs.read(ino, 0, 8 << 20).expect("read") == data, "held through gc");
    vfs.release(ino);
    vfs.forget(ino, 1);
    vfs.gc().expect("gc");
    assert!(objects() <= before + 2, "left behind: {} -> {}", before, objects());
}
