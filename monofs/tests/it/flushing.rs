//! The mounted tree stored while it is being written: flushes snapshot
//! files and store them outside the tree's lock, so writes, truncations
//! and reads run alongside; no byte may be lost or resurrected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use monofs::vfs::{ROOT, Vfs};
use monofs::{InitOptions, Repository};
use monofs_fixtures::Rng;

fn below(rng: &mut Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

/// Random writes and truncations of one file, with flushes running all
/// the while on another thread; the file is compared with a plain model
/// as it goes, and after a reload from the repository.
#[test]
fn writes_and_truncations_during_flushes_keep_every_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Arc::new(Vfs::new(repo.clone(), None).expect("vfs"));
    let ino = vfs.create(ROOT, b"f", 0o644, 0, 0).expect("create").ino;
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng::new(77);
    let stop = AtomicBool::new(false);
    let flushes = std::thread::scope(|s| {
        let flusher = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                vfs.flush().expect("flush");
                n += 1;
            }
            n
        });
        for step in 0..600 {
            if below(&mut rng, 10) == 0 {
                let size = below(&mut rng, model.len() as u64 + 1) as usize;
                let set = monofs::vfs::SetAttr { size: Some(size as u64), ..Default::default() };
                vfs.setattr(ino, set).expect("truncate");
                model.truncate(size);
            } else {
                let offset = below(&mut rng, 3 << 20) as usize;
                let len = 1 + below(&mut rng, 300 << 10) as usize;
                let bytes = rng.bytes(len);
                vfs.write(ino, offset as u64, &bytes).expect("write");
                if model.len() < offset + len {
                    model.resize(offset + len, 0);
                }
                model[offset..offset + len].copy_from_slice(&bytes);
            }
            if step % 50 == 0 {
                assert!(vfs.read(ino, 0, model.len() + 10).expect("read") == model, "step {step}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        flusher.join().expect("flusher")
    });
    assert!(flushes > 2, "only {flushes} flushes ran alongside the writes");
    assert!(vfs.read(ino, 0, model.len() + 10).expect("read") == model, "after the writes");
    vfs.release(ino);
    vfs.flush().expect("flush");
    drop(vfs);
    let again = Vfs::new(repo, None).expect("reload");
    let ino = again.lookup(ROOT, b"f").expect("lookup").ino;
    assert!(again.read(ino, 0, model.len() + 10).expect("read") == model, "as stored");
}

/// A checkout through the mounted tree ([`Vfs::switch`]) while another
/// thread keeps writing and flushing: each switch must show the checked
/// out revision, in memory and in the stored ref, and no flush may point
/// the ref back at the tree it replaced.
#[test]
fn a_checkout_is_never_undone_by_a_concurrent_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Arc::new(Vfs::new(repo.clone(), None).expect("vfs"));
    let commit = |only: &[u8], message: &str| {
        for name in [b"a-only".as_slice(), b"b-only"] {
            let _ = vfs.unlink(ROOT, name);
        }
        vfs.create(ROOT, only, 0o644, 0, 0).expect("create");
        vfs.flush().expect("flush");
        let opts =
            monofs::CommitOptions { message: message.into(), author: "t".into(), time: None, discard_changes: false };
        repo.commit_worktree(&opts).expect("commit").revision
    };
    vfs.create(ROOT, b"shared", 0o644, 0, 0).expect("create");
    let a = commit(b"a-only", "a");
    let b = commit(b"b-only", "b");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng::new(5);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(attr) = vfs.lookup(ROOT, b"shared") {
                    let _ = vfs.write(attr.ino, below(&mut rng, 1 << 16), &rng.bytes(4096));
                }
                vfs.flush().expect("flush");
            }
        });
        for round in 0..40 {
            let (rev, only, other) = if round % 2 == 0 { (a, "a-only", "b-only") } else { (b, "b-only", "a-only") };
            vfs.switch(|r| r.checkout(&rev, true)).expect("switch");
            assert!(vfs.lookup(ROOT, only.as_bytes()).is_ok(), "round {round}: {only} missing after the switch");
            assert!(vfs.lookup(ROOT, other.as_bytes()).is_err(), "round {round}: {other} still there");
            let stored = repo.read_dir(&repo.worktree().expect("worktree")).expect("root");
            assert!(stored.get(only.as_bytes()).is_some(), "round {round}: the stored tree lost {only}");
            assert!(stored.get(other.as_bytes()).is_none(), "round {round}: a flush undid the checkout");
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// The content a flush stores for a file, as its directory entry names it.
fn stored_content(repo: &Repository, name: &[u8]) -> monofs::object::Content {
    let root = repo.read_dir(&repo.worktree().expect("worktree")).expect("root");
    match &root.get(name).expect("entry").kind {
        monofs::object::EntryKind::File { content, .. } => content.clone(),
        other => panic!("not a file: {other:?}"),
    }
}

/// What storing `bytes` whole gives.
fn chunked_whole(repo: &Repository, bytes: &[u8]) -> monofs::object::Content {
    let chunker = monofs::content::Chunker::for_repo(repo);
    let ((content, _), tx, _) = repo
        .write_objects(|sink| chunker.store(sink, &mut &bytes[..], std::path::Path::new("model"), |_| {}))
        .expect("store");
    tx.commit().expect("commit");
    content
}

/// A flush cuts again only what changed in a file, yet must store exactly
/// what cutting the whole file gives (the same chunks, the same content
/// id: dedup and `diff` depend on it): random writes, truncations,
/// extensions and appends of a file of a few MiB, each flush compared
/// with a from-scratch store of a model of the file.
#[test]
fn flushing_an_edited_file_stores_what_storing_it_whole_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = InitOptions::default();
    // Encrypted: chunk ids are keyed and the cut points seeded.
    let kdf = monofs::crypto::KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };
    let sealed = InitOptions { passphrase: Some(b"pass".to_vec()), kdf, ..Default::default() };
    for (name, options) in [("plain", plain), ("sealed", sealed)] {
        let repo = Arc::new(Repository::init(&dir.path().join(name), options).expect("init"));
        edits_store_what_storing_whole_does(repo);
    }
}

fn edits_store_what_storing_whole_does(repo: Arc<Repository>) {
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let ino = vfs.create(ROOT, b"f", 0o644, 0, 0).expect("create").ino;
    let mut rng = Rng::new(2024);
    let mut model = rng.bytes(3 << 20);
    vfs.write(ino, 0, &model).expect("write");
    for round in 0..80 {
        for _ in 0..1 + below(&mut rng, 3) {
            match below(&mut rng, 8) {
                0 => {
                    let size = below(&mut rng, model.len() as u64 * 5 / 4 + 1) as usize;
                    let set = monofs::vfs::SetAttr { size: Some(size as u64), ..Default::default() };
                    vfs.setattr(ino, set).expect("truncate");
                    model.resize(size, 0);
                }
                1 => {
                    let len = 1 + below(&mut rng, 300_000) as usize;
                    let bytes = rng.bytes(len);
                    vfs.write(ino, model.len() as u64, &bytes).expect("append");
                    model.extend_from_slice(&bytes);
                }
                n => {
                    let len = 1 + below(&mut rng, if n < 5 { 100 } else { 200_000 }) as usize;
                    let offset = below(&mut rng, model.len() as u64 + 1) as usize;
                    let bytes = rng.bytes(len);
                    vfs.write(ino, offset as u64, &bytes).expect("write");
                    if model.len() < offset + len {
                        model.resize(offset + len, 0);
                    }
                    model[offset..offset + len].copy_from_slice(&bytes);
                }
            }
        }
        vfs.flush().expect("flush");
        let stored = stored_content(&repo, b"f");
        assert!(stored == chunked_whole(&repo, &model), "round {round}: a flush stored other chunks");
    }
    assert!(vfs.read(ino, 0, model.len() + 1).expect("read") == model);
}

/// Holes (a file extended by truncation, then written here and there) are
/// stored as what cutting the whole file stores, without reading them, and
/// so are the stored chunks of zeros around a later edit: islands of data
/// in 24 MiB of holes match a from-scratch store of the model, and a
/// 16 GiB sparse file flushes at once (cutting 16 GiB of zeros would take
/// minutes), takes an edit in its middle at once too, and reads back.
#[test]
fn holes_are_stored_without_reading_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let mut rng = Rng::new(99);
    let ino = vfs.create(ROOT, b"islands", 0o644, 0, 0).expect("create").ino;
    let mut model = vec![0u8; 24 << 20];
    vfs.setattr(ino, monofs::vfs::SetAttr { size: Some(model.len() as u64), ..Default::default() }).expect("truncate");
    for round in 0..6 {
        let offset = below(&mut rng, model.len() as u64 - 300_000) as usize;
        let len = 1 + below(&mut rng, 300_000) as usize;
        let bytes = rng.bytes(len);
        vfs.write(ino, offset as u64, &bytes).expect("write");
        model[offset..offset + bytes.len()].copy_from_slice(&bytes);
        let grow = model.len() + (3 << 20);
        vfs.setattr(ino, monofs::vfs::SetAttr { size: Some(grow as u64), ..Default::default() }).expect("grow");
        model.resize(grow, 0);
        vfs.flush().expect("flush");
        assert!(stored_content(&repo, b"islands") == chunked_whole(&repo, &model), "round {round}");
    }

    // Stored now: the zeros are chunks of the file, and an edit between
    // them cuts again only around itself.
    let reloaded = Vfs::new(repo.clone(), None).expect("reload");
    let ino = reloaded.lookup(ROOT, b"islands").expect("lookup").ino;
    let offset = model.len() - (2 << 20);
    reloaded.write(ino, offset as u64, b"between the zeros").expect("write");
    model[offset..offset + 17].copy_from_slice(b"between the zeros");
    reloaded.flush().expect("flush");
    assert!(stored_content(&repo, b"islands") == chunked_whole(&repo, &model), "after a reload");
    drop(reloaded);

    let big = vfs.create(ROOT, b"sparse", 0o644, 0, 0).expect("create").ino;
    let size = 16u64 << 30;
    vfs.setattr(big, monofs::vfs::SetAttr { size: Some(size), ..Default::default() }).expect("truncate");
    vfs.write(big, size / 2, b"middle").expect("write");
    vfs.flush().expect("flush");
    let reloaded = Vfs::new(repo.clone(), None).expect("reload");
    let again = reloaded.lookup(ROOT, b"sparse").expect("lookup");
    assert_eq!(again.size, size);
    assert_eq!(&reloaded.read(again.ino, size / 2 - 2, 10).expect("read")[..], b"\0\0middle\0\0");
    assert!(reloaded.read(again.ino, size - 4096, 8192).expect("read").iter().all(|b| *b == 0));
    reloaded.write(again.ino, size / 4, b"quarter").expect("write");
    reloaded.flush().expect("flush");
    let third = Vfs::new(repo.clone(), None).expect("reload");
    let ino = third.lookup(ROOT, b"sparse").expect("lookup").ino;
    assert_eq!(&third.read(ino, size / 4, 7).expect("read")[..], b"quarter");
    assert_eq!(&third.read(ino, size / 2, 6).expect("read")[..], b"middle");
}

/// SEEK_DATA and SEEK_HOLE find the written parts of a sparse file, while
/// it is dirty and once stored (then to the chunk around the data, which
/// may start with zeros), and a dense file is all data; `st_blocks` counts
/// the data only.
#[test]
fn seek_data_and_seek_hole_find_the_written_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let enxio = |r: monofs::vfs::VResult<u64>| r.err().map(|e| e.errno()) == Some(nix::libc::ENXIO);
    let (mib, size) = (1u64 << 20, 64u64 << 20);
    let ino = vfs.create(ROOT, b"sparse", 0o644, 0, 0).expect("create").ino;
    vfs.setattr(ino, monofs::vfs::SetAttr { size: Some(size), ..Default::default() }).expect("truncate");
    vfs.write(ino, 40 * mib, &[7u8; 100]).expect("write");
    assert_eq!(vfs.seek(ino, 0, true).expect("data"), 40 * mib, "dirty: the written block");
    assert_eq!(vfs.seek(ino, 0, false).expect("hole"), 0);
    assert_eq!(vfs.seek(ino, 40 * mib, false).expect("hole"), 40 * mib + (64 << 10), "the block's end");
    assert!(enxio(vfs.seek(ino, 41 * mib, true)), "no data after the block");
    assert!(enxio(vfs.seek(ino, size, false)), "at the end");
    let used = |v: &Vfs, ino| v.getattr(ino).expect("getattr").blocks * 512;
    assert_eq!(used(&vfs, ino), 64 << 10, "dirty: st_blocks counts the written block only");

    vfs.flush().expect("flush");
    assert!(used(&vfs, ino) <= 2 * mib, "stored: {} bytes in use", used(&vfs, ino));
    let stored = Vfs::new(repo.clone(), None).expect("reload");
    let found = stored.lookup(ROOT, b"sparse").expect("lookup");
    assert!(found.blocks * 512 <= 2 * mib, "a lookup counts the stored zeros: {} blocks", found.blocks);
    let ino = found.ino;
    let data = stored.seek(ino, 0, true).expect("data");
    assert!((39 * mib..=40 * mib).contains(&data), "stored: data from {data}");
    let hole = stored.seek(ino, data, false).expect("hole");
    assert!((40 * mib + 100..=41 * mib).contains(&hole), "stored: a hole from {hole}");
    assert!(stored.read(ino, data, (hole - data) as usize).expect("read").contains(&7));
    assert!(enxio(stored.seek(ino, hole, true)), "no data after it");
    assert_eq!(stored.seek(ino, 0, false).expect("hole"), 0);

    let dense = stored.create(ROOT, b"dense", 0o644, 0, 0).expect("create").ino;
    stored.write(dense, 0, &Rng::new(3).bytes(1 << 20)).expect("write");
    stored.flush().expect("flush");
    assert_eq!(stored.seek(dense, 5, true).expect("data"), 5);
    assert_eq!(stored.seek(dense, 5, false).expect("hole"), 1 << 20, "only the end");
    assert_eq!(used(&stored, dense), 1 << 20);
    assert!(used(&stored, ino) <= 2 * mib, "once its layout is loaded, after a reload");
}

/// A repository in `dir` whose tree holds `f`, 2 MiB of random bytes,
/// stored: its inode, bytes and layout.
fn stored_random_file(dir: &std::path::Path) -> (Arc<Repository>, Vfs, u64, Vec<u8>, monofs::content::Layout) {
    let repo = Arc::new(Repository::init(&dir.join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let ino = vfs.create(ROOT, b"f", 0o644, 0, 0).expect("create").ino;
    let model = Rng::new(5).bytes(2 << 20);
    vfs.write(ino, 0, &model).expect("write");
    vfs.flush().expect("flush");
    let layout = repo.layout(&stored_content(&repo, b"f"), model.len() as u64).expect("layout");
    (repo, vfs, ino, model, layout)
}

/// A truncation exactly at a chunk boundary, then new bytes after it: the
/// chunk before the boundary is cut again (FastCDC tests a cut at the byte
/// after it, which changed).
#[test]
fn truncating_at_a_boundary_then_writing_past_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, vfs, ino, mut model, layout) = stored_random_file(dir.path());
    // A boundary well inside (its chunk ends < base_len - max).
    let (off, _, len) = layout.iter().find(|c| c.0 + c.2 > 500_000 && c.2 < (256 << 10)).copied().expect("chunk");
    let e = off + len;
    vfs.setattr(ino, monofs::vfs::SetAttr { size: Some(e), ..Default::default() }).expect("truncate");
    model.truncate(e as usize);
    // Extended with zeros (a hole), then written further on.
    vfs.setattr(ino, monofs::vfs::SetAttr { size: Some(e + 300_000), ..Default::default() }).expect("extend");
    model.resize(e as usize + 300_000, 0);
    let more = Rng::new(6).bytes(300_000);
    vfs.write(ino, e + 300_000, &more).expect("append");
    model.extend_from_slice(&more);
    vfs.flush().expect("flush");
    assert!(stored_content(&repo, b"f") == chunked_whole(&repo, &model), "boundary {e}: a flush stored other chunks");
}

/// An in-place write whose first dirty block starts exactly at a chunk
/// boundary: the chunk before it is cut again too.
#[test]
fn writing_at_a_block_aligned_chunk_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let block = 64u64 << 10;
    let mut rng = Rng::new(11);
    let r = rng.bytes(3 << 20);
    let lay = |bytes: &[u8]| repo.layout(&chunked_whole(&repo, bytes), bytes.len() as u64).expect("layout");
    let rl = lay(&r);
    let mut found = None;
    'outer: for &(off, _, len) in rl.iter().skip(2).take(10) {
        let b = off + len;
        let p = (block - b % block) % block;
        for seed in 0..20 {
            let mut file = Rng::new(1000 + seed).bytes(p as usize);
            file.extend_from_slice(&r);
            let fl = lay(&file);
            if fl.iter().any(|c| c.0 + c.2 == p + b && c.2 < (256 << 10)) && p + b + (256 << 10) < file.len() as u64 {
                found = Some((file, p + b));
                break 'outer;
            }
        }
    }
    let (mut model, at) = found.expect("a block-aligned boundary");
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let ino = vfs.create(ROOT, b"f", 0o644, 0, 0).expect("create").ino;
    vfs.write(ino, 0, &model).expect("write");
    vfs.flush().expect("flush");
    assert!(stored_content(&repo, b"f") == chunked_whole(&repo, &model));
    let byte = [model[at as usize] ^ 0x5a];
    vfs.write(ino, at, &byte).expect("write");
    model[at as usize] = byte[0];
    vfs.flush().expect("flush");
    assert!(stored_content(&repo, b"f") == chunked_whole(&repo, &model), "boundary {at}: other chunks");
}

/// `st_blocks` of a stored all-zero file with a write over its stored
/// zeros counts the write (0 blocks reads as "all holes" to `tar --sparse`).
#[test]
fn blocks_count_data_written_over_stored_zeros() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Vfs::new(repo.clone(), None).expect("vfs");
    let ino = vfs.create(ROOT, b"z", 0o644, 0, 0).expect("create").ino;
    let size = 64u64 << 20;
    vfs.write(ino, 0, &vec![0u8; size as usize]).expect("write zeros");
    vfs.flush().expect("flush");
    vfs.write(ino, 32 << 20, &[7u8; 1 << 20]).expect("write data");
    let blocks = vfs.getattr(ino).expect("getattr").blocks;
    assert!(blocks * 512 >= 1 << 20, "1 MiB of data, st_blocks {blocks}");
}

/// Truncated to one byte past a chunk boundary (an odd tail): a kept chunk
/// needs a full window before the new end of the file too.
#[test]
fn truncating_one_byte_past_a_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, vfs, ino, mut model, layout) = stored_random_file(dir.path());
    let (off, _, len) =
        layout.iter().find(|c| c.0 > 300_000 && c.2 % 2 == 0 && c.2 < (256 << 10)).copied().expect("chunk");
    let e = off + len;
    vfs.setattr(ino, monofs::vfs::SetAttr { size: Some(e + 1), ..Default::default() }).expect("truncate");
    model.truncate(e as usize + 1);
    vfs.flush().expect("flush");
    let got = repo.layout(&stored_content(&repo, b"f"), model.len() as u64).expect("layout");
    let want = repo.layout(&chunked_whole(&repo, &model), model.len() as u64).expect("layout");
    assert!(got == want, "size {}: other chunks", e + 1);
}

/// Commits of the mounted tree while another thread keeps creating files
/// and flushing (the flusher of a mount, and `monofs commit` through its
/// control socket): a commit records the tree as flushed and must never
/// point the stored tree back at an older flush, which would drop the
/// files flushed in between from what is stored once the mount ends.
#[test]
fn a_commit_never_points_the_stored_tree_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
    let vfs = Arc::new(Vfs::new(repo.clone(), None).expect("vfs"));
    let stop = AtomicBool::new(false);
    // Files the flusher has created and flushed.
    let flushed = std::sync::atomic::AtomicUsize::new(0);
    let stored_files = || repo.read_dir(&repo.worktree().expect("worktree")).expect("root").entries.len();
    let moved_back = std::thread::scope(|s| {
        s.spawn(|| {
            for n in 1usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ino = vfs.create(ROOT, format!("f{n}").as_bytes(), 0o644, 0, 0).expect("create").ino;
                vfs.write(ino, 0, &n.to_le_bytes()).expect("write");
                vfs.release(ino);
                vfs.flush().expect("flush");
                flushed.store(n, Ordering::SeqCst);
            }
        });
        // Asserted after the flusher stopped: a panic here would leave it
        // running and the scope waiting for it.
        let mut moved_back = None;
        // Until the flusher has stored a few hundred files meanwhile.
        for round in 0.. {
            if flushed.load(Ordering::SeqCst) >= 300 {
                break;
            }
            let opts = monofs::CommitOptions {
                message: format!("{round}"),
                author: "t".into(),
                time: None,
                discard_changes: false,
            };
            match vfs.commit(&opts) {
                Ok(_) | Err(monofs::Error::NothingToCommit) => {}
                Err(e) => {
                    moved_back = Some(format!("round {round}: commit: {e}"));
                    break;
                }
            }
            // Every flush that ended before this point is in the stored tree,
            // which only grows unless a commit moved it back.
            let done = flushed.load(Ordering::SeqCst);
            let stored = stored_files();
            if stored < done {
                moved_back = Some(format!("round {round}: {done} files flushed, the stored tree has {stored}"));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        moved_back
    });
    assert!(moved_back.is_none(), "{moved_back:?}");
}
