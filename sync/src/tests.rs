//! Transfers between real (temporary) repositories, in-process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use monofs::object::Kind;
use monofs::{CommitOptions, InitOptions, NoProgress as NoCommitProgress, Repository};

use crate::wire::WireObject;
use crate::*;

fn opts(msg: &str) -> CommitOptions {
    CommitOptions { message: msg.into(), author: "t@t".into(), time: None, discard_changes: false }
}

/// A tree with a few small files and one file of many chunks.
fn make_data(dir: &Path, seed: u8) {
    std::fs::create_dir_all(dir.join("sub/deeper")).expect("mkdir");
    std::fs::write(dir.join("a.txt"), b"hello").expect("write");
    std::fs::write(dir.join("sub/b.txt"), vec![seed; 1000]).expect("write");
    std::fs::write(dir.join("sub/deeper/c.txt"), b"deep").expect("write");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("big.bin"), big).expect("write");
}

fn commit(path: &Path, data: &Path, msg: &str) -> monofs::CommitSummary {
    let repo = Repository::open(path, &mut || Ok(b"pw".to_vec())).expect("open");
    repo.commit_dir(data, &opts(msg), &NoCommitProgress).expect("commit")
}

fn local(path: &Path) -> Local {
    Local::open(path, Duration::from_secs(5)).expect("open")
}

/// `local` served on a loopback port with the token `t`.
fn serve_on_loopback(local: Local, bwlimit: Option<u64>) -> Server {
    let addr = "127.0.0.1:0".parse().expect("addr");
    serve(local, ServeOptions { addr, token: "t".into(), tls: None, bwlimit }).expect("serve")
}

/// A client of `server` with its token.
fn client_of(server: &Server) -> HttpRemote {
    HttpRemote::new(&format!("http://{}", server.addr), Some("t".into()), None).expect("client")
}

struct Setup {
    _dir: tempfile::TempDir,
    src: std::path::PathBuf,
    dst: std::path::PathBuf,
    data: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, dst, data) = (dir.path().join("src"), dir.path().join("dst"), dir.path().join("data"));
    Repository::init(&src, InitOptions::default()).expect("init");
    make_data(&data, 1);
    commit(&src, &data, "one");
    let (summary, _) = clone(&local(&src), &dst, &NoProgress).expect("clone");
    assert!(summary.objects_sent > 40, "{summary:?}");
    Setup { _dir: dir, src, dst, data }
}

/// Changes the mode of the root of `repo`'s working tree, as a chmod of its
/// mount point does: an uncommitted change of the root.
fn chmod_mounted_root(repo: &Path, mode: u32) {
    let repo = Arc::new(Repository::open(repo, &mut || Ok(Vec::new())).expect("open"));
    let vfs = monofs::vfs::Vfs::new(repo, None).expect("vfs");
    vfs.setattr(monofs::vfs::ROOT, monofs::vfs::SetAttr { mode: Some(mode), ..Default::default() }).expect("chmod");
    vfs.flush().expect("flush");
}

/// The mode a mount of `repo`'s working tree shows its root with.
fn mounted_root_mode(repo: Arc<Repository>) -> u16 {
    monofs::vfs::Vfs::new(repo, None).expect("vfs").getattr(monofs::vfs::ROOT).expect("getattr").perm
}

#[test]
fn negotiation_sends_exactly_the_new_objects() {
    let s = setup();
    std::fs::write(s.data.join("sub/b.txt"), b"changed").expect("write");
    let made = commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let codec = src.codec().cloned();
    let summary = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync");
    assert_eq!(summary.mode, Mode::Walk);
    assert_eq!(summary.objects_sent, made.new_objects, "{summary:?} vs {made:?}");
    // The revision object itself is not counted in the commit's bytes.
    assert!((made.new_bytes..made.new_bytes + 1000).contains(&summary.bytes_sent), "{summary:?} vs {made:?}");
    assert!(summary.refs_updated.contains(&"HEAD".to_owned()) && !summary.worktree_kept, "{summary:?}");
    assert_eq!(dst.state().expect("state"), src.state().expect("state"), "refs and index equal after the sync");
    let again = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync");
    assert_eq!((again.objects_sent, again.refs_updated.len()), (0, 0), "{again:?}");
    drop((src, dst));
    let repo = Repository::open(&s.dst, &mut || Ok(Vec::new())).expect("open");
    assert!(repo.fsck().expect("fsck").is_sound());
    assert_eq!(repo.log(false).expect("log").len(), 2);
}

#[test]
fn id_set_mode_reaches_the_same_state() {
    let s = setup();
    std::fs::write(s.data.join("a.txt"), b"other").expect("write");
    commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let summary = sync(&src, &dst, None, Direction::Push, &NoProgress).expect("sync");
    assert_eq!(summary.mode, Mode::IdSet);
    assert!(summary.objects_sent >= 2, "{summary:?}");
    let (a, b) = (src.state().expect("state"), dst.state().expect("state"));
    assert_eq!(a.revisions, b.revisions);
    assert_eq!(a.refs.get("HEAD"), b.refs.get("HEAD"));
}

#[test]
fn diverged_replicas_are_refused() {
    let s = setup();
    std::fs::write(s.data.join("a.txt"), b"on the source").expect("write");
    commit(&s.src, &s.data, "src-two");
    std::fs::write(s.data.join("a.txt"), b"on the copy").expect("write");
    commit(&s.dst, &s.data, "dst-two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let before = dst.state().expect("state");
    let codec = src.codec().cloned();
    let err = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect_err("refused");
    assert!(matches!(err, SyncError::NotFastForward { .. }), "{err}");
    assert!(err.to_string().contains("crdt"), "{err}");
    assert_eq!(dst.state().expect("state"), before, "nothing moved");
    let err = sync(&src, &dst, None, Direction::Push, &NoProgress).expect_err("refused without the key too");
    assert!(matches!(err, SyncError::NotFastForward { .. }), "{err}");
}

/// Without the key, a sync cannot read parents; it still never moves a
/// ref back to a revision the receiver has (the source checked out an
/// older one, or moved a tag back): it did, rewinding the replica.
#[test]
fn a_sync_without_the_key_never_moves_a_ref_back() {
    let s = setup();
    let first = Repository::open(&s.src, &mut || Ok(Vec::new())).expect("open").head().expect("head").expect("a head");
    std::fs::write(s.data.join("a.txt"), b"newer").expect("write");
    commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    sync(&src, &dst, None, Direction::Push, &NoProgress).expect("forward");
    drop((src, dst));
    Repository::open(&s.src, &mut || Ok(Vec::new())).expect("open").checkout(&first, true).expect("checkout");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let before = dst.state().expect("state");
    let err = sync(&src, &dst, None, Direction::Push, &NoProgress).expect_err("a rewind without the key");
    assert!(matches!(err, SyncError::NotFastForward { .. }), "{err}");
    assert_eq!(dst.state().expect("state"), before, "nothing moved");
}

/// An update that would point HEAD at an object that is no revision (a
/// token holder's hand-made request) is refused: log, fsck and checkout of
/// the replica then failed.
#[test]
fn refs_name_revisions_only() {
    let s = setup();
    let dst = local(&s.dst);
    let before = dst.state().expect("state");
    let head = before.refs.get("HEAD").copied();
    let chunk =
        dst.list().expect("list").into_iter().map(|(id, _)| id).find(|id| Some(*id) != head).expect("an object");
    let change = RefChange { name: "HEAD".into(), old: head, new: chunk };
    let err = dst.update(&Update { refs: vec![change], ..Update::default() }).expect_err("HEAD onto a chunk");
    assert!(err.to_string().contains("not a revision"), "{err}");
    assert_eq!(dst.state().expect("state"), before);
}

#[test]
fn unrelated_repositories_are_refused() {
    let s = setup();
    let other = s.src.with_file_name("other");
    Repository::init(&other, InitOptions::default()).expect("init");
    let err = sync(&local(&s.src), &local(&other), None, Direction::Push, &NoProgress).expect_err("refused");
    assert!(matches!(err, SyncError::NotReplicas { .. }), "{err}");
}

#[test]
fn tampered_objects_are_rejected_and_nothing_is_stored() {
    let s = setup();
    let dst = local(&s.dst);
    let codec = dst.codec().cloned().expect("plain repository");
    let plain = b"some chunk".to_vec();
    let id = codec.id(Kind::Chunk, &plain);
    let mut bytes = codec.seal(&id, Kind::Chunk, &plain);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = dst.put(&[WireObject { id, metadata: false, bytes }], None).expect_err("rejected");
    assert!(matches!(err, SyncError::BadObject { .. }), "{err}");
    assert_eq!(dst.has(&[id]).expect("has"), [false]);
}

#[test]
fn refs_never_point_at_missing_objects() {
    let s = setup();
    let dst = local(&s.dst);
    let update = Update {
        refs: vec![RefChange { name: "tags/x".into(), old: None, new: monofs::ObjectId([7; 32]) }],
        ..Update::default()
    };
    assert!(matches!(dst.update(&update), Err(SyncError::RefTargetMissing { .. })));
}

#[test]
fn encrypted_clone_needs_no_key_and_opens_with_the_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, dst, data) = (dir.path().join("src"), dir.path().join("dst"), dir.path().join("data"));
    let init = InitOptions {
        passphrase: Some(b"pw".to_vec()),
        kdf: monofs::crypto::KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 },
        chunker: None,
    };
    Repository::init(&src, init).expect("init");
    make_data(&data, 2);
    commit(&src, &data, "secret");
    let source = local(&src);
    assert!(source.codec().is_none());
    clone(&source, &dst, &NoProgress).expect("clone");
    let mut raw = std::fs::read(dst.join(monofs::repo::STORE_FILE)).expect("read");
    raw.retain(|_| true);
    assert!(!raw.windows(5).any(|w| w == b"hello"), "plaintext in the clone");
    assert!(Repository::open(&dst, &mut || Ok(b"wrong".to_vec())).is_err());
    let repo = Repository::open(&dst, &mut || Ok(b"pw".to_vec())).expect("opens");
    assert!(repo.fsck().expect("fsck").is_sound());
}

#[test]
fn http_clone_sync_and_auth() {
    let s = setup();
    let server = serve(
        local(&s.dst),
        ServeOptions { addr: "127.0.0.1:0".parse().expect("addr"), token: "sekrit".into(), tls: None, bwlimit: None },
    )
    .expect("serve");
    let url = format!("http://{}", server.addr);
    let wrong = HttpRemote::new(&url, Some("nope".into()), None).expect("client");
    assert!(matches!(wrong.state(), Err(SyncError::Unauthorized { .. })));
    let none = HttpRemote::new(&url, None, None).expect("client");
    assert!(matches!(none.meta(), Err(SyncError::Unauthorized { .. })));

    std::fs::write(s.data.join("sub/deeper/c.txt"), b"new deep").expect("write");
    let made = commit(&s.src, &s.data, "two");
    let remote = HttpRemote::new(&url, Some(" sekrit".trim().into()), None).expect("client");
    let src = local(&s.src);
    let codec = src.codec().cloned();
    let summary = sync(&src, &remote, codec.as_ref(), Direction::Push, &NoProgress).expect("push");
    assert_eq!(summary.objects_sent, made.new_objects);
    let before = remote.wire_bytes();
    let noop = sync(&src, &remote, codec.as_ref(), Direction::Push, &NoProgress).expect("no-op");
    assert_eq!(noop.objects_sent, 0);
    assert!(remote.wire_bytes() - before < 64 << 10, "no-op sync moved {} bytes", remote.wire_bytes() - before);

    let copy = s.src.with_file_name("copy");
    let (summary, _) = clone(&remote, &copy, &NoProgress).expect("http clone");
    assert!(summary.objects_sent > 40);
    server.shutdown().expect("shutdown");
    assert_eq!(local(&copy).state().expect("state"), src.state().expect("state"));
}

/// A push holds the served repository from its first question until its
/// update, however long it pauses between requests (up to a minute): a
/// `monofs gc` that took the repository in between deleted the objects
/// the push had stored, and the push then moved its refs onto a tree with
/// holes. Other commands get the repository back soon after the update.
#[test]
fn a_push_keeps_the_served_repository_until_its_update() {
    let s = setup();
    let server = serve_on_loopback(local(&s.dst), None);
    let remote = client_of(&server);
    let open = || Repository::open(&s.dst, &mut || Ok(Vec::new()));
    remote.has(&[monofs::ObjectId::default()]).expect("a push begins");
    // Another client's push that ends does not end this one's hold.
    let other = client_of(&server);
    other.has(&[monofs::ObjectId::default()]).expect("another push");
    other.update(&Update::default()).expect("the other push ends");
    std::thread::sleep(Duration::from_secs(5));
    assert!(matches!(open(), Err(monofs::Error::Locked { .. })), "released in the middle of a push");
    remote.update(&Update::default()).expect("the push ends");
    std::thread::sleep(Duration::from_secs(4));
    assert!(open().is_ok(), "still held after the push ended");
    server.shutdown().expect("shutdown");
}

/// A client that connects and sends half a header, or nothing, is cut off
/// after the header timeout (it held its connection for ever), and an
/// oversized header is refused, while real clients go on being served.
#[test]
fn stalled_and_oversized_headers_are_cut_off() {
    use std::io::{Read, Write};

    let s = setup();
    let server = serve_on_loopback(local(&s.dst), None);
    // One that connects and never says anything, one that stops halfway.
    let mut silent = std::net::TcpStream::connect(server.addr).expect("connect");
    let mut stalled = std::net::TcpStream::connect(server.addr).expect("connect");
    stalled.write_all(b"GET /v1/meta HTTP/1.1\r\nHost: x\r\n").expect("half a header");
    let mut big = std::net::TcpStream::connect(server.addr).expect("connect");
    let header = format!("GET /v1/meta HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(200 << 10));
    let _ = big.write_all(header.as_bytes());
    big.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut reply = Vec::new();
    let _ = big.read_to_end(&mut reply);
    let refused = reply.is_empty() || reply.starts_with(b"HTTP/1.1 431");
    assert!(refused, "a 200 KB header was read: {}", String::from_utf8_lossy(&reply[..reply.len().min(80)]));
    let remote = client_of(&server);
    remote.state().expect("served meanwhile");
    stalled.set_read_timeout(Some(Duration::from_secs(45))).expect("timeout");
    let started = std::time::Instant::now();
    // Closed (perhaps after a 408): the read returns, well before 45 s.
    let _ = stalled.read(&mut [0u8; 1024]);
    assert!(started.elapsed() < Duration::from_secs(40), "a stalled header kept its connection");
    silent.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let closed = match silent.read(&mut [0u8; 16]) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    assert!(closed, "a connection that sent nothing was kept");
    // HTTP/2 in clear (prior knowledge): not spoken, so not held open.
    let mut h2 = std::net::TcpStream::connect(server.addr).expect("connect");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect("preface");
    h2.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut reply = Vec::new();
    // Closed (a reset: the preface was left unread), before the timeout.
    let ended = match h2.read_to_end(&mut reply) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    assert!(ended && !reply.starts_with(b"\0\0"), "an HTTP/2 connection was served: {reply:?}");
    server.shutdown().expect("shutdown");
}

#[test]
fn a_source_without_packs_is_cloned_object_by_object() {
    let s = setup();
    let src = local(&s.src);
    // An in-memory replica keeps no packs: its server answers 404 to
    // `GET /v1/packs`, as a server from before packs would.
    let memory = Local::new(monofs::repo::RawRepository::in_memory(&src.meta().expect("meta")).expect("memory"));
    let codec = src.codec().cloned();
    sync(&src, &memory, codec.as_ref(), Direction::Push, &NoProgress).expect("fill the memory replica");
    assert_eq!(memory.packs().expect("packs"), None);
    let server = serve_on_loopback(memory, None);
    let remote = client_of(&server);
    assert_eq!(remote.packs().expect("packs"), None, "404 means no packs");
    let copy = s.src.with_file_name("copy");
    let (summary, _) = clone(&remote, &copy, &NoProgress).expect("clone");
    assert_eq!(summary.mode, Mode::IdSet);
    server.shutdown().expect("shutdown");
    assert_eq!(local(&copy).state().expect("state"), src.state().expect("state"));
    let (summary, _) = clone(&src, &s.src.with_file_name("copy2"), &NoProgress).expect("local clone");
    assert_eq!(summary.mode, Mode::File);
    let (summary, _) =
        crate::clone_with(&src, &s.src.with_file_name("copy3"), &NoProgress, false).expect("local pack clone");
    assert_eq!(summary.mode, Mode::Packs);
}

#[test]
fn a_whole_file_clone_drops_what_belongs_to_the_source_machine() {
    use monofs::store::Table;
    let s = setup();
    let src = local(&s.src);
    let mut tx = src.repo().store().begin().expect("begin");
    tx.put(Table::StatCache, b"some path", b"stat").expect("put");
    tx.put(Table::Inodes, b"parent+name", b"42").expect("put");
    tx.put(Table::Meta, b"remote/origin", b"/elsewhere").expect("put");
    tx.commit().expect("commit");
    let copy = s.src.with_file_name("copy");
    let (summary, cloned) = clone(&src, &copy, &NoProgress).expect("clone");
    assert_eq!(summary.mode, Mode::File);
    assert_eq!(cloned.state().expect("state"), src.state().expect("state"));
    assert_eq!(cloned.meta().expect("meta"), src.meta().expect("meta"));
    let store = cloned.repo().store();
    for table in [Table::StatCache, Table::Inodes] {
        let mut n = 0;
        store
            .scan(table, b"", &mut |_, _| {
                n += 1;
                true
            })
            .expect("scan");
        assert_eq!(n, 0, "{table:?} copied");
    }
    assert!(!store.has(Table::Meta, b"remote/origin").expect("has"));
    assert!(!copy.join(crate::PARTIAL_FILE).exists());
}

#[test]
fn pushes_wait_while_the_store_file_is_sent_whole() {
    let s = setup();
    let size = std::fs::metadata(s.src.join(monofs::repo::STORE_FILE)).expect("store").len();
    // Paced so that sending the file takes about two seconds.
    let bwlimit = Some(size / 2);
    let server = serve_on_loopback(local(&s.src), bwlimit);
    let remote = client_of(&server);
    let pusher = client_of(&server);
    let mut got = Vec::new();
    let started = std::time::Instant::now();
    let hash = std::thread::scope(|sc| {
        let mut push = None;
        let hash = remote
            .read_store(&[], &mut |piece| {
                if push.is_none() {
                    // A push (an empty update) while the file is being read.
                    push = Some(sc.spawn(|| {
                        let t = std::time::Instant::now();
                        pusher.update(&Update::default()).expect("update");
                        t.elapsed()
                    }));
                }
                if let crate::pieces::Piece::Data(_, bytes) = piece {
                    got.extend_from_slice(bytes);
                }
                Ok(())
            })
            .expect("read store")
            .expect("sent whole");
        let waited = push.take().expect("pushed").join().expect("join");
        assert!(waited > Duration::from_millis(800), "the push went through in {waited:?} while the file was sent");
        hash
    });
    assert!(started.elapsed() > Duration::from_secs(1));
    assert_eq!(got.len() as u64, size);
    let sums: Vec<blake3::Hash> = got.chunks(crate::pieces::PIECE as usize).map(crate::pieces::sum).collect();
    assert_eq!(hash, crate::pieces::whole(&sums));
    server.shutdown().expect("shutdown");
}

/// A receiver whose working tree has changes of its own is not synced into
/// (its next commit would undo what the sync brought); once they are gone,
/// the sync goes through.
#[test]
fn a_receiver_with_uncommitted_changes_stops_the_sync() {
    let s = setup();
    {
        let repo = std::sync::Arc::new(Repository::open(&s.dst, &mut || Ok(Vec::new())).expect("open"));
        let vfs = monofs::vfs::Vfs::new(repo, None).expect("vfs");
        vfs.create(monofs::vfs::ROOT, b"draft", 0o644, 0, 0).expect("create");
        vfs.flush().expect("flush");
    }
    std::fs::write(s.data.join("a.txt"), b"fixed on the source").expect("write");
    commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let codec = src.codec().cloned();
    let before = dst.state().expect("state");
    let err = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect_err("a dirty receiver");
    assert!(matches!(err, SyncError::DirtyReceiver { .. }), "{err}");
    assert_eq!(dst.state().expect("state"), before, "nothing moved");
    drop(dst);
    let repo = Repository::open(&s.dst, &mut || Ok(Vec::new())).expect("open");
    let head = repo.head().expect("head").expect("a HEAD");
    repo.checkout(&head, true).expect("discard the changes");
    drop(repo);
    let dst = local(&s.dst);
    sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync once clean");
    assert_eq!(dst.state().expect("state"), src.state().expect("state"));
}

/// A replica's update with a ref name no command could show or remove
/// (from a hostile or broken peer) is refused whole, before anything moves.
#[test]
fn ref_names_from_a_replica_are_checked() {
    let s = setup();
    let dst = local(&s.dst);
    let before = dst.state().expect("state");
    let head = *before.refs.get("HEAD").expect("HEAD");
    for name in ["", "../../x", "tags/a\nb", "tags/with space"] {
        let update = Update {
            refs: vec![
                RefChange { name: "tags/fine".into(), old: None, new: head },
                RefChange { name: name.into(), old: None, new: head },
            ],
            ..Update::default()
        };
        let err = dst.update(&update).expect_err(name);
        assert!(err.to_string().contains("invalid ref name"), "{name:?}: {err}");
        assert_eq!(err.status(), 422);
        assert_eq!(dst.state().expect("state"), before, "{name:?}: something moved");
    }
}

/// A sender that moved back (a checkout of an older revision) is told so,
/// not that the replicas diverged, and nothing moves on the receiver.
#[test]
fn a_sender_behind_is_told_so() {
    let s = setup();
    let first = {
        let repo = Repository::open(&s.src, &mut || Ok(Vec::new())).expect("open");
        repo.head().expect("head").expect("a HEAD")
    };
    std::fs::write(s.data.join("a.txt"), b"second").expect("write");
    commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let codec = src.codec().cloned();
    sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync");
    drop(src);
    let repo = Repository::open(&s.src, &mut || Ok(Vec::new())).expect("open");
    repo.checkout(&first, true).expect("checkout the first revision");
    drop(repo);
    let src = local(&s.src);
    let before = dst.state().expect("state");
    let err = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect_err("behind");
    assert!(matches!(err, SyncError::SenderBehind { .. }), "{err}");
    assert_eq!(dst.state().expect("state"), before);
}

/// A receiver whose working tree already is the new revision's tree (it
/// was cloned from a working tree that was committed since) is clean.
#[test]
fn a_receiver_already_at_the_new_tree_is_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    Repository::init(&src, InitOptions::default()).expect("init");
    {
        let repo = std::sync::Arc::new(Repository::open(&src, &mut || Ok(Vec::new())).expect("open"));
        repo.commit_worktree(&opts("empty")).ok();
        let vfs = monofs::vfs::Vfs::new(repo, None).expect("vfs");
        vfs.create(monofs::vfs::ROOT, b"draft", 0o644, 0, 0).expect("create");
        vfs.flush().expect("flush");
    }
    clone(&local(&src), &dst, &NoProgress).expect("clone");
    Repository::open(&src, &mut || Ok(Vec::new())).expect("open").commit_worktree(&opts("draft")).expect("commit");
    let (src, dst) = (local(&src), local(&dst));
    let codec = src.codec().cloned();
    sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("a clean receiver");
    assert_eq!(dst.state().expect("state"), src.state().expect("state"));
}

#[test]
fn a_request_without_the_token_is_refused_before_its_body_is_read() {
    use std::io::{Read, Write};
    let s = setup();
    let opts =
        ServeOptions { addr: "127.0.0.1:0".parse().expect("addr"), token: "sekrit".into(), tls: None, bwlimit: None };
    let server = serve(local(&s.dst), opts).expect("serve");
    // A body of 1 GiB announced, 4 bytes sent: the answer must come at once.
    let mut conn = std::net::TcpStream::connect(server.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    conn.write_all(b"POST /v1/put HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\nabcd").expect("send");
    let mut answer = [0u8; 12];
    conn.read_exact(&mut answer).expect("an answer before the body");
    assert_eq!(&answer, b"HTTP/1.1 401");
    server.shutdown().expect("shutdown");
}

/// A one-request-at-a-time HTTP server on loopback that answers every
/// request with `answer(path, body)`, for servers that misbehave.
fn fake_server(answer: fn(&str, &[u8]) -> Vec<u8>) -> String {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut reader = std::io::BufReader::new(conn);
            let (mut path, mut len) = (String::new(), 0usize);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if path.is_empty() {
                    path = line.split(' ').nth(1).unwrap_or("").to_owned();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let reply = answer(&path, &body);
            let mut conn = reader.into_inner();
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", reply.len());
            let _ = conn.write_all(&reply);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_server_sending_other_objects_than_asked_is_refused() {
    // Asked for A and B, it sends A twice (a valid frame each time).
    let url = fake_server(|_, body| {
        let first = monofs::ObjectId::from_slice(&body[..32]).expect("id");
        let a = WireObject { id: first, metadata: false, bytes: b"frame".to_vec() };
        crate::wire::encode_objects(&[a.clone(), a])
    });
    let remote = HttpRemote::new(&url, Some("t".into()), None).expect("client");
    let ids =
        [monofs::ObjectId::from_slice(&[1; 32]).expect("id"), monofs::ObjectId::from_slice(&[2; 32]).expect("id")];
    let err = remote.get(&ids).expect_err("refused");
    assert!(matches!(err, SyncError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("not asked for"), "{err}");
}

#[test]
fn a_server_answering_too_much_is_refused_before_it_fills_memory() {
    // 8 ids take a 1-byte bitmap; this one sends 64 MiB.
    let url = fake_server(|_, _| vec![0xff; 64 << 20]);
    let remote = HttpRemote::new(&url, Some("t".into()), None).expect("client");
    let ids: Vec<monofs::ObjectId> = (0..8u8).map(|i| monofs::ObjectId::from_slice(&[i; 32]).expect("id")).collect();
    let err = remote.has(&ids).expect_err("refused");
    assert!(err.to_string().contains("larger than 1 bytes"), "{err}");
}

#[test]
fn an_unfinished_clone_is_neither_a_source_nor_a_receiver() {
    let s = setup();
    local(&s.dst).mark_partial_clone("somewhere").expect("mark");
    let unfinished = |r: Result<Local>| matches!(r, Err(SyncError::Repo(monofs::Error::UnfinishedClone { .. })));
    assert!(unfinished(Local::open(&s.dst, Duration::ZERO)), "opened as a source or receiver");
    let opts = ServeOptions { addr: "127.0.0.1:0".parse().expect("addr"), token: "t".into(), tls: None, bwlimit: None };
    assert!(Local::open(&s.dst, Duration::ZERO).and_then(|l| serve(l, opts)).is_err(), "served");
    // The clone it is part of still finishes it.
    let (_, done) = clone(&local(&s.src), &s.dst, &NoProgress).expect("resumed");
    assert!(!done.is_partial_clone().expect("mark"));
    let state = done.state().expect("state");
    drop(done);
    assert_eq!(state, local(&s.src).state().expect("state"));
}

/// A source that tampers with what it sends (a broken or hostile server).
struct Tampered<'a>(&'a Local, Tamper);

#[derive(PartialEq)]
enum Tamper {
    /// Its pack listing leaves out one object of its last metadata pack.
    Listing,
    /// Its working tree's root record is junk.
    RootRecord,
}

impl Endpoint for Tampered<'_> {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn meta(&self) -> Result<monofs::repo::RepoMeta> {
        self.0.meta()
    }
    fn add_dictionaries(&self, records: &[monofs::repo::DictionaryRecord]) -> Result<()> {
        self.0.add_dictionaries(records)
    }
    fn state(&self) -> Result<RefState> {
        let mut state = self.0.state()?;
        if self.1 == Tamper::RootRecord {
            state.root_records.insert("WORKTREE".into(), b"\0\0\0junk".to_vec());
        }
        Ok(state)
    }
    fn has(&self, ids: &[monofs::ObjectId]) -> Result<Vec<bool>> {
        self.0.has(ids)
    }
    fn list(&self) -> Result<Vec<(monofs::ObjectId, u64)>> {
        self.0.list()
    }
    fn get(&self, ids: &[monofs::ObjectId]) -> Result<Vec<WireObject>> {
        self.0.get(ids)
    }
    fn put(&self, objects: &[WireObject], gc_epoch: Option<u64>) -> Result<()> {
        self.0.put(objects, gc_epoch)
    }
    fn update(&self, update: &Update) -> Result<()> {
        self.0.update(update)
    }
    fn packs(&self) -> Result<Option<Vec<monofs::store::PackListing>>> {
        let mut packs = self.0.packs()?.expect("packs");
        if self.1 == Tamper::Listing {
            let last = packs.iter_mut().rev().find(|p| p.metadata).expect("a metadata pack");
            last.objects.pop();
        }
        Ok(Some(packs))
    }
    fn get_packs(&self, ids: &[u64], f: &mut PackSender<'_>) -> Result<()> {
        self.0.get_packs(ids, f)
    }
}

#[test]
fn a_pack_clone_fetches_what_the_listing_left_out() {
    let s = setup();
    let copy = s.src.with_file_name("copy");
    let src = local(&s.src);
    let (_, done) = clone_with(&Tampered(&src, Tamper::Listing), &copy, &NoProgress, false).expect("clone");
    let state = done.state().expect("state");
    drop(done);
    assert_eq!(state, src.state().expect("state"));
    let repo = Repository::open(&copy, &mut || Ok(Vec::new())).expect("open");
    assert!(repo.fsck().expect("fsck").is_sound(), "the clone lacks objects");
}

/// A root record that does not belong to its tree is not copied: it would
/// stop every sync into the clone while no command showed a change.
#[test]
fn a_clone_leaves_out_a_root_record_that_is_not_its_trees() {
    let s = setup();
    let copy = s.src.with_file_name("copy");
    let src = local(&s.src);
    let (_, done) = clone_with(&Tampered(&src, Tamper::RootRecord), &copy, &NoProgress, false).expect("clone");
    assert!(done.state().expect("state").root_records.is_empty());
}

/// A receiver on which a collection runs between two of a push's batches:
/// the collection removes what the first batch stored (nothing refers to
/// it yet) and counts itself in the receiver's gc epoch, as `monofs gc`
/// does (fault injection in place of a second process).
struct GcBetweenPuts {
    inner: Local,
    first: std::sync::Mutex<(Option<Vec<monofs::ObjectId>>, bool)>,
}

impl GcBetweenPuts {
    fn new(inner: Local) -> GcBetweenPuts {
        GcBetweenPuts { inner, first: Default::default() }
    }
}

impl Endpoint for GcBetweenPuts {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn meta(&self) -> Result<monofs::repo::RepoMeta> {
        self.inner.meta()
    }
    fn add_dictionaries(&self, records: &[monofs::repo::DictionaryRecord]) -> Result<()> {
        self.inner.add_dictionaries(records)
    }
    fn state(&self) -> Result<RefState> {
        self.inner.state()
    }
    fn has(&self, ids: &[monofs::ObjectId]) -> Result<Vec<bool>> {
        self.inner.has(ids)
    }
    fn list(&self) -> Result<Vec<(monofs::ObjectId, u64)>> {
        self.inner.list()
    }
    fn get(&self, ids: &[monofs::ObjectId]) -> Result<Vec<WireObject>> {
        self.inner.get(ids)
    }
    fn put(&self, objects: &[WireObject], gc_epoch: Option<u64>) -> Result<()> {
        let mut first = self.first.lock().expect("lock");
        match (first.0.take(), first.1) {
            (_, true) => {}
            (None, false) => first.0 = Some(objects.iter().map(|o| o.id).collect()),
            (Some(stored), false) => {
                let store = self.inner.repo().store();
                let epoch = monofs::gc::gc_epoch(store)? + 1;
                let mut tx = store.begin()?;
                for id in stored {
                    tx.delete(monofs::store::Table::Objects, id.as_bytes())?;
                }
                tx.put(monofs::store::Table::Meta, monofs::gc::META_GC_EPOCH, &epoch.to_le_bytes())?;
                tx.commit()?;
                first.1 = true;
            }
        }
        self.inner.put(objects, gc_epoch)
    }
    fn update(&self, update: &Update) -> Result<()> {
        self.inner.update(update)
    }
}

/// A collection on the receiver while a push stores its batches removed
/// what the push had stored, and the push then moved its refs onto a tree
/// with holes (a re-run saw nothing to send). Its update is now refused
/// (the receiver's gc epoch moved) and the push sends again, with and
/// without the key.
#[test]
fn a_gc_during_a_push_makes_it_send_again() {
    for with_key in [true, false] {
        let s = setup();
        std::fs::write(s.data.join("sub/b.txt"), vec![9u8; 300_000]).expect("write");
        std::fs::write(s.data.join("big.bin"), vec![7u8; 2_000_000]).expect("write");
        let made = commit(&s.src, &s.data, "two");
        let src = local(&s.src);
        let dst = GcBetweenPuts::new(local(&s.dst));
        let codec = if with_key { src.codec().cloned() } else { None };
        let summary = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync");
        assert!(dst.first.lock().expect("lock").1, "no collection ran between two batches");
        assert!(summary.objects_sent > made.new_objects, "nothing was sent again: {summary:?}");
        let (a, b) = (src.state().expect("state"), dst.state().expect("state"));
        assert_eq!((a.refs.get("HEAD"), a.revisions), (b.refs.get("HEAD"), b.revisions));
        drop((src, dst));
        let repo = Repository::open(&s.dst, &mut || Ok(Vec::new())).expect("open");
        assert!(repo.fsck().expect("fsck").is_sound(), "with the key: {with_key}: holes");
    }
}

/// The gc epoch travels over HTTP both ways: an update that saw an older
/// one than the server's is refused with 412, which a sync takes as "send
/// again".
#[test]
fn a_served_update_after_a_gc_is_refused() {
    let s = setup();
    let server = serve_on_loopback(local(&s.dst), None);
    let remote = client_of(&server);
    let seen = remote.state().expect("state").gc_epoch;
    // The server lets go of the repository soon after a request that is
    // no push; a collection that removes something then takes it.
    let repo = loop {
        match Repository::open(&s.dst, &mut || Ok(Vec::new())) {
            Ok(repo) => break repo,
            Err(monofs::Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("{e}"),
        }
    };
    let mut tx = repo.begin().expect("begin");
    repo.put_object(tx.as_mut(), Kind::Chunk, b"referenced by nothing").expect("put");
    tx.commit().expect("commit");
    assert!(repo.gc().expect("gc").removed >= 1);
    drop(repo);
    assert_eq!(remote.state().expect("state").gc_epoch, seen + 1);
    // A put with the old epoch is refused too: that is what keeps a
    // directory from landing after what is below it was collected.
    let head = *local(&s.src).state().expect("state").refs.get("HEAD").expect("HEAD");
    let objects = local(&s.src).get(&[head]).expect("get");
    let err = remote.put(&objects, Some(seen)).expect_err("refused");
    assert!(err.gc_during_sync(), "{err}");
    remote.put(&objects, Some(seen + 1)).expect("the current epoch");
    let err = remote.update(&Update { gc_epoch: Some(seen), ..Update::default() }).expect_err("refused");
    assert!(err.gc_during_sync(), "{err}");
    assert!(err.to_string().contains("gc ran there"), "{err}");
    remote.update(&Update { gc_epoch: Some(seen + 1), ..Update::default() }).expect("the current epoch");
    server.shutdown().expect("shutdown");
}

/// A receiver whose mounted root was changed (a chmod) and not committed
/// has an uncommitted change like any other: a sync with the key stops
/// (it moved the working tree and lost the change without a word), and
/// goes on once the change is committed or discarded.
#[test]
fn a_changed_root_on_the_receiver_stops_a_sync() {
    let s = setup();
    chmod_mounted_root(&s.dst, 0o700);
    std::fs::write(s.data.join("a.txt"), b"newer").expect("write");
    commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    let codec = src.codec().cloned();
    let err = sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect_err("refused");
    assert!(matches!(err, SyncError::DirtyReceiver { .. }), "{err}");
    // A change made after the sync looked (between two of its requests)
    // stops its update too.
    let tree = *dst.state().expect("state").refs.get("WORKTREE").expect("WORKTREE");
    let moved =
        Update { refs: vec![RefChange { name: "WORKTREE".into(), old: Some(tree), new: tree }], ..Update::default() };
    assert!(matches!(dst.update(&moved), Err(SyncError::DirtyReceiver { .. })));
    drop(dst);
    {
        let repo = Repository::open(&s.dst, &mut || Ok(Vec::new())).expect("open");
        let head = repo.head().expect("head").expect("HEAD");
        repo.checkout(&head, true).expect("discard");
        assert!(!repo.worktree_dirty().expect("dirty"));
    }
    let dst = local(&s.dst);
    sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync");
    assert_eq!(dst.state().expect("state").refs.get("WORKTREE"), src.state().expect("state").refs.get("WORKTREE"));
}

/// A receiver whose uncommitted root change is what the sender has since
/// committed (a clone made before the sender's commit) is not dirty: the
/// sync goes through, in both directions (it was refused for ever, and
/// committing on the receiver made the replicas diverge; probe). A
/// different change still stops it.
#[test]
fn a_root_change_the_sender_committed_too_does_not_stop_a_sync() {
    let s = setup();
    chmod_mounted_root(&s.src, 0o700);
    let copy = s.src.with_file_name("copy");
    let copy2 = s.src.with_file_name("copy2");
    clone(&local(&s.src), &copy, &NoProgress).expect("clone");
    clone(&local(&s.src), &copy2, &NoProgress).expect("clone");
    {
        let repo = Repository::open(&s.src, &mut || Ok(Vec::new())).expect("open");
        repo.commit_worktree(&opts("root")).expect("commit");
    }
    chmod_mounted_root(&copy2, 0o750);
    let (src, dst) = (local(&s.src), local(&copy));
    let codec = src.codec().cloned();
    sync(&src, &dst, codec.as_ref(), Direction::Push, &NoProgress).expect("sync into the clone");
    drop(dst);
    let repo = Arc::new(Repository::open(&copy, &mut || Ok(Vec::new())).expect("open"));
    assert!(!repo.worktree_dirty().expect("dirty"));
    assert_eq!(mounted_root_mode(repo), 0o700);
    let other = local(&copy2);
    let err = sync(&src, &other, codec.as_ref(), Direction::Push, &NoProgress).expect_err("a different change");
    assert!(matches!(err, SyncError::DirtyReceiver { .. }), "{err}");
}

/// A sync without the key leaves the receiver's working tree; the next open
/// with the key moves it to HEAD only if it was clean, and a root changed
/// through a mount is a change (the tree id alone did not show it, and the
/// change was dropped without a word).
#[test]
fn a_keyless_sync_keeps_a_changed_root() {
    let s = setup();
    chmod_mounted_root(&s.dst, 0o700);
    std::fs::write(s.data.join("a.txt"), b"newer").expect("write");
    commit(&s.src, &s.data, "two");
    let (src, dst) = (local(&s.src), local(&s.dst));
    assert!(sync(&src, &dst, None, Direction::Push, &NoProgress).expect("keyless sync").worktree_kept);
    drop(dst);
    let repo = Arc::new(Repository::open(&s.dst, &mut || Ok(Vec::new())).expect("open with the key"));
    assert!(repo.worktree_dirty().expect("dirty"), "the root's change was dropped");
    assert_eq!(mounted_root_mode(repo), 0o700);
}

/// Queries are capped far below pushes: a token holder's 1.5 GB `has` took
/// the server to 4.7 GB of memory.
#[test]
fn oversized_queries_are_refused() {
    let s = setup();
    let server = serve_on_loopback(local(&s.dst), None);
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{}{}/has", server.addr, crate::http::API);
    let reply = client.post(&url).bearer_auth("t").body(vec![0u8; 65 << 20]).send().expect("sent");
    assert_eq!(reply.status().as_u16(), 413);
    client_of(&server).has(&[monofs::ObjectId::default()]).expect("a normal query");
    server.shutdown().expect("shutdown");
}

/// A clone keeps what the working tree's refs carry, uncommitted changes of
/// its root included: a copy of the store file (they went with the other
/// meta records the copy drops), a pack clone, locally and over HTTP.
#[test]
fn every_clone_keeps_a_changed_root() {
    let s = setup();
    chmod_mounted_root(&s.src, 0o700);
    let check = |name: &str, copy: &Path| {
        let repo = Arc::new(Repository::open(copy, &mut || Ok(Vec::new())).expect("open"));
        assert!(repo.worktree_dirty().expect("dirty"), "{name}: the root's change was dropped");
        assert_eq!(mounted_root_mode(repo), 0o700, "{name}");
    };
    for whole_file in [true, false] {
        let copy = s.src.with_file_name(format!("copy-{whole_file}"));
        let (summary, _) = clone_with(&local(&s.src), &copy, &NoProgress, whole_file).expect("clone");
        assert_eq!(summary.mode == Mode::File, whole_file, "{summary:?}");
        check(&format!("{:?}", summary.mode), &copy);
    }
    let server = serve_on_loopback(local(&s.src), None);
    let copy = s.src.with_file_name("copy-http");
    let (summary, _) = clone_with(&client_of(&server), &copy, &NoProgress, false).expect("clone");
    assert_eq!(summary.mode, Mode::Packs, "{summary:?}");
    check("http", &copy);
    server.shutdown().expect("shutdown");
}
