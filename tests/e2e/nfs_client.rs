//! A long-lived Rust NFSv3 client (the `nfs3_client` crate) against
//! `monofs serve`: create, write, mkdir, rename, read back; restart the
//! server and keep using the same file handles; forged handles are refused;
//! then `monofs commit` and `diff` show what the client did. Clients that
//! vanish mid-write or send garbage leave the repository consistent. Hard
//! links, special files and COMMIT (which nfsserve lacks) work and land in
//! the tree.

use nfs3_client::Nfs3Client;
use nfs3_client::Nfs3ConnectionBuilder;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_types::nfs3::{
    COMMIT3args, CREATE3args, FSINFO3args, GETATTR3args, LINK3args, LOOKUP3args, MKDIR3args, MKNOD3args, Nfs3Option,
    Nfs3Result, READ3args, REMOVE3args, RENAME3args, SETATTR3args, WRITE3args, WRITE3resok, createhow3, devicedata3,
    diropargs3, filename3, ftype3, mknoddata3, nfs_fh3, nfsstat3, post_op_attr, sattr3, set_mode3, specdata3,
    stable_how,
};
use nfs3_types::xdr_codec::Opaque;

use super::{Scratch, init, monofs, ok};

fn res<T, E: std::fmt::Debug>(r: Nfs3Result<T, E>, what: &str) -> T {
    match r {
        Nfs3Result::Ok(v) => v,
        Nfs3Result::Err(e) => panic!("{what}: {e:?}"),
    }
}

fn name(n: &'static str) -> filename3<'static> {
    filename3(Opaque::borrowed(n.as_bytes()))
}

fn fh(h: Nfs3Option<nfs_fh3>) -> nfs_fh3 {
    match h {
        Nfs3Option::Some(h) => h,
        Nfs3Option::None => panic!("no handle returned"),
    }
}

struct Server(std::process::Child);

impl Drop for Server {
    /// SIGTERM: the server flushes what clients wrote, then exits.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Starts `monofs serve --nfs` on `port`. Tests pick ports below the
/// kernel's ephemeral range (32768 up), which the server's own loopback
/// connections to nfsserve draw from, so that a fixed port is never taken.
fn serve(repo: &std::path::Path, port: u16) -> Server {
    serve_with(repo, port, &[])
}

fn serve_with(repo: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    let server = Server(
        monofs()
            .arg("serve")
            .arg(repo)
            .arg("--nfs")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("server did not listen");
}

async fn mount(port: u16) -> (nfs_fh3, Nfs3Client<TokioIo<tokio::net::TcpStream>>) {
    let conn = Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", "/")
        .connect_from_privileged_port(false)
        .mount_port(port)
        .nfs3_port(port)
        .mount()
        .await
        .expect("mount");
    let root = conn.root_nfs_fh3();
    (root, conn.into_nfs3_client())
}

async fn create(client: &mut Nfs3Client<TokioIo<tokio::net::TcpStream>>, dir: &nfs_fh3, n: &'static str) -> nfs_fh3 {
    let created = client
        .create(&CREATE3args {
            where_: diropargs3 { dir: dir.clone(), name: name(n) },
            how: createhow3::UNCHECKED(sattr3::default()),
        })
        .await
        .expect("create rpc");
    fh(res(created, "create").obj)
}

async fn write(
    client: &mut Nfs3Client<TokioIo<tokio::net::TcpStream>>,
    file: &nfs_fh3,
    offset: u64,
    data: &[u8],
    stable: stable_how,
) -> WRITE3resok {
    let w = client
        .write(&WRITE3args {
            file: file.clone(),
            offset,
            count: data.len() as u32,
            stable,
            data: Opaque::borrowed(data),
        })
        .await
        .expect("write rpc");
    res(w, "write")
}

async fn reconnect(port: u16) -> Nfs3Client<TokioIo<tokio::net::TcpStream>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    Nfs3Client::new(TokioIo::new(stream))
}

async fn read_all(client: &mut Nfs3Client<TokioIo<tokio::net::TcpStream>>, file: &nfs_fh3) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let r = client
            .read(&READ3args { file: file.clone(), offset: out.len() as u64, count: 64 << 10 })
            .await
            .expect("read rpc");
        let ok = res(r, "read");
        out.extend_from_slice(&ok.data.0);
        if ok.eof || ok.data.0.is_empty() {
            return out;
        }
    }
}

#[test]
fn rust_client_survives_server_restart_with_its_handles() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + (std::process::id() % 12000) as u16;
    let server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let data = monofs_fixtures::Rng::new(5).bytes(300_000);
    let (file, dir, verf) = runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let file = create(&mut client, &root, "a").await;
        for (i, part) in data.chunks(100_000).enumerate() {
            let w = write(&mut client, &file, (i * 100_000) as u64, part, stable_how::FILE_SYNC).await;
            assert!(matches!(w.committed, stable_how::FILE_SYNC), "{w:?}");
        }
        let made = client
            .mkdir(&MKDIR3args {
                where_: diropargs3 { dir: root.clone(), name: name("d") },
                attributes: sattr3::default(),
            })
            .await
            .expect("mkdir rpc");
        let dir = fh(res(made, "mkdir").obj);
        let moved = client
            .rename(&RENAME3args {
                from: diropargs3 { dir: root.clone(), name: name("a") },
                to: diropargs3 { dir: dir.clone(), name: name("b") },
            })
            .await
            .expect("rename rpc");
        res(moved, "rename");
        let found = client
            .lookup(&LOOKUP3args { what: diropargs3 { dir: dir.clone(), name: name("b") } })
            .await
            .expect("lookup rpc");
        assert_eq!(res(found, "lookup").object, file, "rename changed the handle");
        assert!(read_all(&mut client, &file).await == data);
        let w = write(&mut client, &file, 0, &data[..10], stable_how::UNSTABLE).await;
        assert!(matches!(w.committed, stable_how::UNSTABLE), "{w:?}");
        (file, dir, w.verf)
    });
    // Restart the server; the old handles keep working on a new connection.
    drop(server);
    let server = serve(&repo, port);
    runtime.block_on(async {
        let mut client = reconnect(port).await;
        assert!(read_all(&mut client, &file).await == data, "bytes after restart");
        // A new write verifier: clients resend what they had not committed.
        let w = write(&mut client, &file, 0, &data[..10], stable_how::UNSTABLE).await;
        assert_ne!(w.verf, verf, "same write verifier after a restart");
        let attr = client.getattr(&GETATTR3args { object: dir.clone() }).await.expect("getattr rpc");
        res(attr, "getattr of the directory handle after restart");
        // A handle from elsewhere, and one for an inode that does not exist.
        let mut forged = file.data.0.to_vec();
        forged[0] ^= 0xff;
        let bad = client.getattr(&GETATTR3args { object: nfs_fh3 { data: Opaque::owned(forged) } }).await.expect("rpc");
        assert!(matches!(bad, Nfs3Result::Err((nfsstat3::NFS3ERR_BADHANDLE, _))), "{bad:?}");
        let mut gone = file.data.0.to_vec();
        gone[8..].copy_from_slice(&u64::MAX.to_le_bytes());
        let stale = client.getattr(&GETATTR3args { object: nfs_fh3 { data: Opaque::owned(gone) } }).await.expect("rpc");
        assert!(matches!(stale, Nfs3Result::Err((nfsstat3::NFS3ERR_STALE, _))), "{stale:?}");
    });
    ok(&[&"commit", &repo, &"-m", &"by the rust client"]);
    drop(server);
    let diff = ok(&[&"diff", &repo, &"HEAD"]);
    assert!(diff.is_empty(), "working tree differs after commit: {diff}");
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    assert!(std::fs::read(s.path("out/d/b")).expect("read") == data);
    assert!(!s.path("out/a").exists());
}

#[test]
fn clients_vanishing_mid_write_or_sending_garbage_leave_it_consistent() {
    use std::io::Write as _;

    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 7919) % 12000) as u16;
    let server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let data = monofs_fixtures::Rng::new(9).bytes(256 << 10);
    let file = runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let file = create(&mut client, &root, "half").await;
        // Unstable writes, never committed by the client, which then
        // disappears without a word.
        write(&mut client, &file, 0, &data[..128 << 10], stable_how::UNSTABLE).await;
        file
    });
    // A client that dies in the middle of sending a WRITE: the record
    // marker promises 1 MiB, a few KiB arrive, the socket closes.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    raw.write_all(&(0x8000_0000u32 | (1 << 20)).to_be_bytes()).expect("marker");
    raw.write_all(&[0x5a; 4096]).expect("partial body");
    drop(raw);
    // Garbage, and a record larger than any request may be.
    for junk in [vec![0xffu8; 64], (0x8000_0000u32 | 0x7fff_ffff).to_be_bytes().to_vec()] {
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        raw.write_all(&junk).expect("junk");
        drop(raw);
    }
    // Well-formed calls whose arguments claim a 4 GiB file handle or name:
    // refused as garbage before anything sizes a buffer from them.
    for (proc, args) in [(1u32, vec![u32::MAX]), (15, vec![8, 1, 2, 8, 1, 2, u32::MAX]), (21, vec![u32::MAX])] {
        use std::io::Read as _;
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        raw.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        let call: Vec<u32> = [&[77, 0, 2, 100_003, 3, proc, 0, 0, 0, 0][..], &args].concat();
        let body: Vec<u8> = call.iter().flat_map(|w| w.to_be_bytes()).collect();
        raw.write_all(&(0x8000_0000u32 | body.len() as u32).to_be_bytes()).expect("marker");
        raw.write_all(&body).expect("call");
        let mut reply = [0u8; 28];
        raw.read_exact(&mut reply).expect("a reply");
        let word = |i: usize| u32::from_be_bytes(reply[4 + 4 * i..8 + 4 * i].try_into().expect("word"));
        assert_eq!((word(0), word(1), word(2), word(5)), (77, 1, 0, 4), "proc {proc}: not GARBAGE_ARGS");
    }
    // A client that half-closes after its calls still gets every answer:
    // NULL goes to nfsserve, GETPORT is the front's own.
    {
        use std::io::Read as _;
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        raw.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        for call in
            [vec![41u32, 0, 2, 100_003, 3, 0, 0, 0, 0, 0], vec![42, 0, 2, 100_000, 2, 3, 0, 0, 0, 0, 100_003, 3, 6, 0]]
        {
            let body: Vec<u8> = call.iter().flat_map(|w| w.to_be_bytes()).collect();
            raw.write_all(&(0x8000_0000u32 | body.len() as u32).to_be_bytes()).expect("marker");
            raw.write_all(&body).expect("call");
        }
        raw.shutdown(std::net::Shutdown::Write).expect("half-close");
        let mut replies = Vec::new();
        raw.read_to_end(&mut replies).expect("replies");
        let mut xids = Vec::new();
        while replies.len() >= 8 {
            let len = (u32::from_be_bytes(replies[..4].try_into().expect("marker")) & 0x7fff_ffff) as usize;
            xids.push(u32::from_be_bytes(replies[4..8].try_into().expect("xid")));
            replies.drain(..4 + len);
        }
        xids.sort();
        assert_eq!(xids, [41, 42], "answers lost after a half-close");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).expect("status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmHWM");
    assert!(peak_kib < 1 << 20, "the server grew to {peak_kib} KiB");
    // The server still serves what the first client wrote.
    runtime.block_on(async {
        let mut client = reconnect(port).await;
        assert!(read_all(&mut client, &file).await == data[..128 << 10], "bytes written before the disconnect");
    });
    ok(&[&"commit", &repo, &"-m", &"after the disconnects"]);
    drop(server);
    assert!(ok(&[&"fsck", &repo]).contains("0 problems"));
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    assert!(std::fs::read(s.path("out/half")).expect("read") == data[..128 << 10]);
}

fn attrs(a: post_op_attr) -> nfs3_types::nfs3::fattr3 {
    match a {
        Nfs3Option::Some(a) => a,
        Nfs3Option::None => panic!("no attributes returned"),
    }
}

#[test]
fn hard_links_special_files_and_commit_reach_the_tree() {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 3571) % 12000) as u16;
    let server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let data = monofs_fixtures::Rng::new(11).bytes(200_000);
    runtime.block_on(async {
        // Portmap on the same port names the port clients must use.
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let mut pmap = nfs3_client::PortmapperClient::new(TokioIo::new(stream));
        assert_eq!(pmap.getport(100_003, 3, 6).await.expect("getport"), port);
        assert_eq!(pmap.getport(100_005, 3, 6).await.expect("getport"), port);

        let (root, mut client) = mount(port).await;
        let info = client.fsinfo(&FSINFO3args { fsroot: root.clone() }).await.expect("fsinfo rpc");
        assert!(res(info, "fsinfo").properties & 1 != 0, "FSF3_LINK not advertised");
        let file = create(&mut client, &root, "a").await;
        let w = write(&mut client, &file, 0, &data, stable_how::UNSTABLE).await;
        let c = client.commit(&COMMIT3args { file: file.clone(), offset: 0, count: 0 }).await.expect("commit rpc");
        assert_eq!(res(c, "commit").verf, w.verf, "COMMIT and WRITE verifiers differ");

        let link = |to: &'static str, file: &nfs_fh3| LINK3args {
            file: file.clone(),
            link: diropargs3 { dir: root.clone(), name: name(to) },
        };
        let linked = client.link(&link("b", &file)).await.expect("link rpc");
        assert_eq!(attrs(res(linked, "link").file_attributes).nlink, 2);
        let found = client
            .lookup(&LOOKUP3args { what: diropargs3 { dir: root.clone(), name: name("b") } })
            .await
            .expect("lookup rpc");
        assert_eq!(res(found, "lookup").object, file, "the link is another name for the same file");
        let again = client.link(&link("b", &file)).await.expect("link rpc");
        assert!(matches!(again, Nfs3Result::Err((nfsstat3::NFS3ERR_EXIST, _))), "{again:?}");
        let dir = client
            .mkdir(&MKDIR3args {
                where_: diropargs3 { dir: root.clone(), name: name("d") },
                attributes: sattr3::default(),
            })
            .await
            .expect("mkdir rpc");
        let dir = fh(res(dir, "mkdir").obj);
        let of_dir = client.link(&link("e", &dir)).await.expect("link rpc");
        assert!(matches!(of_dir, Nfs3Result::Err((nfsstat3::NFS3ERR_PERM, _))), "{of_dir:?}");
        let mut forged = file.data.0.to_vec();
        forged[0] ^= 0xff;
        let forged = nfs_fh3 { data: Opaque::owned(forged) };
        let bad = client.link(&link("f", &forged)).await.expect("link rpc");
        assert!(matches!(bad, Nfs3Result::Err((nfsstat3::NFS3ERR_BADHANDLE, _))), "{bad:?}");

        let mode = sattr3 { mode: set_mode3::Some(0o640), ..sattr3::default() };
        let mknod = |n: &'static str, what: mknoddata3| MKNOD3args {
            where_: diropargs3 { dir: root.clone(), name: name(n) },
            what,
        };
        let fifo = client.mknod(&mknod("p", mknoddata3::NF3FIFO(mode.clone()))).await.expect("mknod rpc");
        let fifo = res(fifo, "mknod fifo");
        assert!(matches!(attrs(fifo.obj_attributes).type_, ftype3::NF3FIFO));
        let spec = specdata3 { specdata1: 1, specdata2: 3 };
        let dev = devicedata3 { dev_attributes: mode.clone(), spec };
        let chr = client.mknod(&mknod("c", mknoddata3::NF3CHR(dev))).await.expect("mknod rpc");
        let chr = attrs(res(chr, "mknod char device").obj_attributes);
        assert_eq!((chr.rdev.specdata1, chr.rdev.specdata2, chr.mode & 0o7777), (1, 3, 0o640));
        let taken = client.mknod(&mknod("a", mknoddata3::NF3FIFO(mode))).await.expect("mknod rpc");
        assert!(matches!(taken, Nfs3Result::Err((nfsstat3::NFS3ERR_EXIST, _))), "{taken:?}");
    });
    ok(&[&"commit", &repo, &"-m", &"links and nodes"]);
    drop(server);
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    let (a, b) = (s.path("out/a"), s.path("out/b"));
    assert!(std::fs::read(&a).expect("read") == data);
    assert_eq!(std::fs::metadata(&a).expect("a").ino(), std::fs::metadata(&b).expect("b").ino(), "not one file");
    assert!(std::fs::symlink_metadata(s.path("out/p")).expect("p").file_type().is_fifo());
    let c = std::fs::symlink_metadata(s.path("out/c")).expect("c");
    assert!(c.file_type().is_char_device());
    assert_eq!(c.rdev(), nix::sys::stat::makedev(1, 3));
}

#[test]
fn large_sparse_files_round_trip() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 6007) % 12000) as u16;
    let server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let at = (5u64 << 30) - 3;
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let file = create(&mut client, &root, "big").await;
        write(&mut client, &file, at, b"tail", stable_how::FILE_SYNC).await;
        let got = client.getattr(&GETATTR3args { object: file.clone() }).await.expect("getattr rpc");
        assert_eq!(res(got, "getattr").obj_attributes.size, at + 4, "size past 4 GiB");
        let r = client.read(&READ3args { file: file.clone(), offset: at - 5, count: 64 }).await.expect("read rpc");
        let r = res(r, "read across the hole");
        assert_eq!(&r.data.0[..], b"\0\0\0\0\0tail");
        assert!(r.eof);
        // Offsets whose end overflows: refused, and the file is unchanged.
        let w = client
            .write(&WRITE3args {
                file: file.clone(),
                offset: u64::MAX - 2,
                count: 4,
                stable: stable_how::UNSTABLE,
                data: Opaque::borrowed(b"over"),
            })
            .await
            .expect("write rpc");
        assert!(matches!(w, Nfs3Result::Err((nfsstat3::NFS3ERR_FBIG, _))), "{w:?}");
        let got = client.getattr(&GETATTR3args { object: file.clone() }).await.expect("getattr rpc");
        assert_eq!(res(got, "getattr").obj_attributes.size, at + 4, "size after a refused write");
    });
    ok(&[&"commit", &repo, &"-m", &"sparse"]);
    drop(server);
    let log: serde_json::Value = serde_json::from_str(&ok(&[&"log", &repo, &"--json"])).expect("json");
    assert_eq!(log[0]["size"], at + 4, "committed size");
    // Served afresh, the stored file's zeros are not counted as used from
    // the first LOOKUP on (cp and du judge sparseness from it).
    let server = serve(&repo, port);
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let found = client
            .lookup(&LOOKUP3args { what: diropargs3 { dir: root, name: name("big") } })
            .await
            .expect("lookup rpc");
        let used = attrs(res(found, "lookup").obj_attributes).used;
        assert!(used <= 4 << 20, "{used} bytes used by 4 bytes of data");
    });
    drop(server);
}

#[test]
fn committed_and_stable_writes_survive_a_killed_server() {
    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 8117) % 12000) as u16;
    let mut server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let data = monofs_fixtures::Rng::new(13).bytes(300_000);
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let unstable = create(&mut client, &root, "committed").await;
        write(&mut client, &unstable, 0, &data, stable_how::UNSTABLE).await;
        let c = client.commit(&COMMIT3args { file: unstable, offset: 0, count: 0 }).await.expect("commit rpc");
        res(c, "commit");
        let stable = create(&mut client, &root, "stable").await;
        write(&mut client, &stable, 0, &data[..1000], stable_how::FILE_SYNC).await;
        // Metadata changes, then a COMMIT: a truncate, a remove, a mkdir.
        let cut = create(&mut client, &root, "cut").await;
        write(&mut client, &cut, 0, &data[..10_000], stable_how::FILE_SYNC).await;
        let gone = create(&mut client, &root, "gone").await;
        write(&mut client, &gone, 0, b"x", stable_how::FILE_SYNC).await;
        let size = sattr3 { size: Nfs3Option::Some(3), ..Default::default() };
        let args = SETATTR3args { object: cut.clone(), new_attributes: size, guard: Nfs3Option::None };
        res(client.setattr(&args).await.expect("setattr rpc"), "setattr");
        let args = REMOVE3args { object: diropargs3 { dir: root.clone(), name: name("gone") } };
        res(client.remove(&args).await.expect("remove rpc"), "remove");
        let args =
            MKDIR3args { where_: diropargs3 { dir: root.clone(), name: name("made") }, attributes: sattr3::default() };
        res(client.mkdir(&args).await.expect("mkdir rpc"), "mkdir");
        let c = client.commit(&COMMIT3args { file: cut.clone(), offset: 0, count: 0 }).await.expect("commit rpc");
        res(c, "commit");
        // A LINK alone after a COMMIT (the front answers it): the next
        // COMMIT must store it too.
        let args = LINK3args { file: cut.clone(), link: diropargs3 { dir: root.clone(), name: name("cut2") } };
        res(client.link(&args).await.expect("link rpc"), "link");
        let c = client.commit(&COMMIT3args { file: cut, offset: 0, count: 0 }).await.expect("commit rpc");
        res(c, "commit");
    });
    // SIGKILL: no flush on the way out; only what was made durable stays.
    server.0.kill().expect("kill");
    server.0.wait().expect("wait");
    ok(&[&"commit", &repo, &"-m", &"after the kill"]);
    ok(&[&"checkout", &repo, &"HEAD", &"--to", &s.path("out")]);
    assert!(std::fs::read(s.path("out/committed")).expect("read") == data, "COMMIT did not make it durable");
    assert!(std::fs::read(s.path("out/stable")).expect("read") == data[..1000], "FILE_SYNC write lost");
    assert_eq!(std::fs::read(s.path("out/cut")).expect("read"), &data[..3], "a committed truncate was undone");
    assert!(!s.path("out/gone").exists(), "a committed remove was undone");
    assert!(s.path("out/made").is_dir(), "a committed mkdir was undone");
    assert_eq!(std::fs::read(s.path("out/cut2")).expect("read"), &data[..3], "a committed link was undone");
}

#[test]
fn a_served_revision_refuses_every_change_the_front_answers() {
    let s = Scratch::default();
    let (repo, data) = (s.path("repo"), s.path("data"));
    init(&repo);
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("f"), b"committed bytes").expect("write");
    ok(&[&"commit", &repo, &"--from", &data, &"-m", &"one"]);
    let port = 20000 + ((std::process::id() + 9173) % 12000) as u16;
    let _server = serve_with(&repo, port, &["--rev", "HEAD"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let found = client
            .lookup(&LOOKUP3args { what: diropargs3 { dir: root.clone(), name: name("f") } })
            .await
            .expect("lookup rpc");
        let file = res(found, "lookup").object;
        assert!(read_all(&mut client, &file).await == b"committed bytes");
        let w = client
            .write(&WRITE3args {
                file: file.clone(),
                offset: 0,
                count: 1,
                stable: stable_how::UNSTABLE,
                data: Opaque::borrowed(b"x"),
            })
            .await
            .expect("write rpc");
        assert!(matches!(w, Nfs3Result::Err((nfsstat3::NFS3ERR_ROFS, _))), "{w:?}");
        let link = LINK3args { file: file.clone(), link: diropargs3 { dir: root.clone(), name: name("g") } };
        let l = client.link(&link).await.expect("link rpc");
        assert!(matches!(l, Nfs3Result::Err((nfsstat3::NFS3ERR_ROFS, _))), "{l:?}");
        let fifo = MKNOD3args {
            where_: diropargs3 { dir: root.clone(), name: name("p") },
            what: mknoddata3::NF3FIFO(sattr3::default()),
        };
        let m = client.mknod(&fifo).await.expect("mknod rpc");
        assert!(matches!(m, Nfs3Result::Err((nfsstat3::NFS3ERR_ROFS, _))), "{m:?}");
        let made = client
            .create(&CREATE3args {
                where_: diropargs3 { dir: root.clone(), name: name("new") },
                how: createhow3::UNCHECKED(sattr3::default()),
            })
            .await
            .expect("create rpc");
        assert!(matches!(made, Nfs3Result::Err((nfsstat3::NFS3ERR_ROFS, _))), "{made:?}");
        let mode = sattr3 { mode: set_mode3::Some(0o600), ..sattr3::default() };
        let args = SETATTR3args { object: file.clone(), new_attributes: mode, guard: Nfs3Option::None };
        let set = client.setattr(&args).await.expect("setattr rpc");
        assert!(matches!(set, Nfs3Result::Err((nfsstat3::NFS3ERR_ROFS, _))), "{set:?}");
        let c = client.commit(&COMMIT3args { file, offset: 0, count: 0 }).await.expect("commit rpc");
        res(c, "commit of a read-only tree: nothing to store");
    });
}

/// CREATE's three modes as RFC 1813 has them (nfsserve made UNCHECKED
/// refuse an existing file, so `nfs-cp` could not overwrite one, and kept
/// no EXCLUSIVE verifier); a guarded SETATTR whose ctime moved changes
/// nothing (nfsserve applied it and sent two replies); SETATTR and READLINK
/// failures on a stale handle decode (nfsserve cut their replies short).
#[test]
fn create_modes_guarded_setattr_and_failure_replies_follow_the_rfc() {
    use nfs3_types::nfs3::{READLINK3args, SYMLINK3args, createverf3, nfspath3, nfstime3, symlinkdata3};

    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 4241) % 12000) as u16;
    let _server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let file = create(&mut client, &root, "f").await;
        write(&mut client, &file, 0, b"old contents", stable_how::UNSTABLE).await;
        let make = |n: &'static str, how: createhow3| CREATE3args {
            where_: diropargs3 { dir: root.clone(), name: name(n) },
            how,
        };

        // UNCHECKED over an existing file: the same file, cut to the size asked.
        let empty = sattr3 { size: Nfs3Option::Some(0), ..sattr3::default() };
        let again = client.create(&make("f", createhow3::UNCHECKED(empty.clone()))).await.expect("create rpc");
        let again = res(again, "create UNCHECKED over a file");
        assert_eq!(fh(again.obj), file, "UNCHECKED made another file");
        assert_eq!(attrs(again.obj_attributes).size, 0, "UNCHECKED with size 0 did not truncate");
        let guarded = client.create(&make("f", createhow3::GUARDED(empty.clone()))).await.expect("create rpc");
        assert!(matches!(guarded, Nfs3Result::Err((nfsstat3::NFS3ERR_EXIST, _))), "{guarded:?}");
        let dir =
            MKDIR3args { where_: diropargs3 { dir: root.clone(), name: name("d") }, attributes: sattr3::default() };
        res(client.mkdir(&dir).await.expect("mkdir rpc"), "mkdir");
        let over_dir = client.create(&make("d", createhow3::UNCHECKED(empty))).await.expect("create rpc");
        assert!(matches!(over_dir, Nfs3Result::Err((nfsstat3::NFS3ERR_EXIST, _))), "{over_dir:?}");
        // A name longer than a directory takes: NAMETOOLONG, as from knfsd.
        let long = "n".repeat(300);
        let args = CREATE3args {
            where_: diropargs3 { dir: root.clone(), name: filename3(Opaque::borrowed(long.as_bytes())) },
            how: createhow3::UNCHECKED(sattr3::default()),
        };
        let too_long = client.create(&args).await.expect("create rpc");
        assert!(matches!(too_long, Nfs3Result::Err((nfsstat3::NFS3ERR_NAMETOOLONG, _))), "{too_long:?}");

        // EXCLUSIVE: a retransmission finds its own file, another client's
        // verifier finds EXIST.
        let verf = createverf3(*b"verifier");
        let first = client.create(&make("x", createhow3::EXCLUSIVE(verf))).await.expect("create rpc");
        let first = fh(res(first, "create EXCLUSIVE").obj);
        let resent = client.create(&make("x", createhow3::EXCLUSIVE(verf))).await.expect("create rpc");
        assert_eq!(fh(res(resent, "resent EXCLUSIVE").obj), first);
        let other = client.create(&make("x", createhow3::EXCLUSIVE(createverf3(*b"another!")))).await.expect("rpc");
        assert!(matches!(other, Nfs3Result::Err((nfsstat3::NFS3ERR_EXIST, _))), "{other:?}");
        // Data written since: no longer a fresh create's file, whatever its times.
        write(&mut client, &first, 0, b"data", stable_how::UNSTABLE).await;
        let stamp = nfstime3 { seconds: u32::from_be_bytes(*b"veri"), nseconds: 0 };
        let times = sattr3 {
            atime: nfs3_types::nfs3::set_atime::SET_TO_CLIENT_TIME(stamp),
            mtime: nfs3_types::nfs3::set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
                seconds: u32::from_be_bytes(*b"fier"),
                nseconds: 0,
            }),
            ..sattr3::default()
        };
        let args = SETATTR3args { object: first.clone(), new_attributes: times, guard: Nfs3Option::None };
        res(client.setattr(&args).await.expect("setattr rpc"), "set the verifier's times");
        let taken = client.create(&make("x", createhow3::EXCLUSIVE(verf))).await.expect("create rpc");
        assert!(matches!(taken, Nfs3Result::Err((nfsstat3::NFS3ERR_EXIST, _))), "{taken:?}");

        // A guard naming an old ctime: NOT_SYNC, and the mode stays.
        let getattr = GETATTR3args { object: file.clone() };
        let before = res(client.getattr(&getattr).await.expect("getattr rpc"), "getattr").obj_attributes;
        let stale = nfstime3 { seconds: before.ctime.seconds.wrapping_sub(100), nseconds: before.ctime.nseconds };
        let mode = |m| sattr3 { mode: set_mode3::Some(m), ..sattr3::default() };
        let args = SETATTR3args { object: file.clone(), new_attributes: mode(0o600), guard: Nfs3Option::Some(stale) };
        let refused = client.setattr(&args).await.expect("setattr rpc");
        assert!(matches!(refused, Nfs3Result::Err((nfsstat3::NFS3ERR_NOT_SYNC, _))), "{refused:?}");
        let after = res(client.getattr(&getattr).await.expect("getattr rpc"), "getattr").obj_attributes;
        assert_eq!(after.mode & 0o7777, before.mode & 0o7777, "a refused guarded SETATTR changed the mode");
        let args =
            SETATTR3args { object: file.clone(), new_attributes: mode(0o600), guard: Nfs3Option::Some(before.ctime) };
        res(client.setattr(&args).await.expect("setattr rpc"), "guarded setattr with the current ctime");
        let after = res(client.getattr(&getattr).await.expect("getattr rpc"), "getattr").obj_attributes;
        assert_eq!(after.mode & 0o7777, 0o600);

        // Failures on a removed symlink's handle still decode.
        let link = SYMLINK3args {
            where_: diropargs3 { dir: root.clone(), name: name("l") },
            symlink: symlinkdata3 {
                symlink_attributes: sattr3::default(),
                symlink_data: nfspath3::from(b"f".to_vec()),
            },
        };
        let link = fh(res(client.symlink(&link).await.expect("symlink rpc"), "symlink").obj);
        let target = client.readlink(&READLINK3args { symlink: link.clone() }).await.expect("readlink rpc");
        assert_eq!(res(target, "readlink").data.0.as_ref(), b"f");
        let args = REMOVE3args { object: diropargs3 { dir: root.clone(), name: name("l") } };
        res(client.remove(&args).await.expect("remove rpc"), "remove");
        let gone = client.readlink(&READLINK3args { symlink: link.clone() }).await.expect("readlink reply decodes");
        assert!(matches!(gone, Nfs3Result::Err((nfsstat3::NFS3ERR_STALE, _))), "{gone:?}");
        let args = SETATTR3args { object: link, new_attributes: mode(0o600), guard: Nfs3Option::None };
        let gone = client.setattr(&args).await.expect("setattr reply decodes");
        assert!(matches!(gone, Nfs3Result::Err((nfsstat3::NFS3ERR_STALE, _))), "{gone:?}");
    });
}

/// Clients that connect and stall cost what they sent, not what their
/// record headers claim, and there is a cap on connections: 300 clients
/// each claiming a 1 MiB request and sending 100 bytes of it. Once they go,
/// others are served again.
#[test]
fn stalled_clients_cost_little_and_are_capped() {
    use std::io::{Read as _, Write as _};

    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 5309) % 12000) as u16;
    let server = serve(&repo, port);
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).expect("status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS").to_owned();
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") << 10
    };
    let start = rss();
    let mut header = ((1u32 << 31) | (1 << 20)).to_be_bytes().to_vec();
    header.extend_from_slice(&[0u8; 100]);
    let stalled: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let _ = c.write_all(&header);
            c
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let grown = rss().saturating_sub(start);
    assert!(grown < 100 << 20, "300 stalled clients cost {} MiB", grown >> 20);
    let closed = stalled
        .iter()
        .filter(|c| {
            c.set_read_timeout(Some(std::time::Duration::from_millis(20))).expect("timeout");
            // The server closing a socket it never read from resets it.
            match (&**c).read(&mut [0u8; 1]) {
                Ok(n) => n == 0,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        })
        .count();
    assert!(closed >= 300 - 256, "only {closed} connections over the cap were closed");
    drop(stalled);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let file = create(&mut client, &root, "after").await;
        write(&mut client, &file, 0, b"served", stable_how::UNSTABLE).await;
        assert_eq!(read_all(&mut client, &file).await, b"served");
    });
}

/// Every name of a directory once, through READDIR and READDIRPLUS with
/// pages of a few entries: the directory holds many names of few inodes
/// (hard links), which broke nfsserve's cookies (file ids), and READDIR
/// ignored its cookie altogether. Listing while removing what was listed
/// (as `rm -r` does) still reaches every entry.
#[test]
fn listings_page_through_hard_links_and_removals() {
    use nfs3_types::nfs3::{READDIR3args, READDIRPLUS3args, cookieverf3};

    let s = Scratch::default();
    let repo = s.path("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 7919) % 12000) as u16;
    let _server = serve(&repo, port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (root, mut client) = mount(port).await;
        let names: Vec<&'static str> = (0..240).map(|i| &*Box::leak(format!("name-{i:03}").into_boxed_str())).collect();
        let mut files = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i < 3 {
                files.push(create(&mut client, &root, n).await);
                continue;
            }
            let link = LINK3args { file: files[i % 3].clone(), link: diropargs3 { dir: root.clone(), name: name(n) } };
            res(client.link(&link).await.expect("link rpc"), "link");
        }
        let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        want.extend([".".to_string(), "..".to_string()]);
        want.sort();

        for plus in [false, true] {
            let (mut seen, mut cookie, mut pages) = (Vec::new(), 0u64, 0);
            loop {
                let verf = cookieverf3::default();
                let (batch, eof): (Vec<(String, u64)>, bool) = if plus {
                    let args =
                        READDIRPLUS3args { dir: root.clone(), cookie, cookieverf: verf, dircount: 300, maxcount: 2000 };
                    let ok = res(client.readdirplus(&args).await.expect("readdirplus rpc"), "readdirplus");
                    for e in &ok.reply.entries.0 {
                        assert!(matches!(e.name_handle, Nfs3Option::Some(_)), "no handle for an entry");
                        assert!(matches!(e.name_attributes, Nfs3Option::Some(_)), "no attributes for an entry");
                    }
                    let batch =
                        ok.reply.entries.0.iter().map(|e| (String::from_utf8_lossy(&e.name.0).into_owned(), e.cookie));
                    (batch.collect(), ok.reply.eof)
                } else {
                    let args = READDIR3args { dir: root.clone(), cookie, cookieverf: verf, count: 400 };
                    let ok = res(client.readdir(&args).await.expect("readdir rpc"), "readdir");
                    let batch =
                        ok.reply.entries.0.iter().map(|e| (String::from_utf8_lossy(&e.name.0).into_owned(), e.cookie));
                    (batch.collect(), ok.reply.eof)
                };
                pages += 1;
                assert!(pages < 500, "the listing does not end (plus: {plus})");
                assert!(!batch.is_empty() || eof, "an empty page before the end");
                seen.extend(batch.iter().map(|(n, _)| n.clone()));
                if eof {
                    break;
                }
                cookie = batch.last().expect("entries").1;
            }
            assert!(pages > 5, "pages of a few entries expected, got {pages}");
            seen.sort();
            assert_eq!(seen, want, "plus: {plus}");
        }

        // Remove every entry a page shows before asking for the next one.
        let (mut cookie, mut removed) = (0u64, 0);
        loop {
            let args = READDIR3args { dir: root.clone(), cookie, cookieverf: cookieverf3::default(), count: 400 };
            let ok = res(client.readdir(&args).await.expect("readdir rpc"), "readdir");
            let batch: Vec<(Vec<u8>, u64)> = ok.reply.entries.0.iter().map(|e| (e.name.0.to_vec(), e.cookie)).collect();
            for (n, _) in batch.iter().filter(|(n, _)| n != b"." && n != b"..") {
                let what = diropargs3 { dir: root.clone(), name: filename3(Opaque::owned(n.clone())) };
                res(
                    client.remove(&nfs3_types::nfs3::REMOVE3args { object: what }).await.expect("remove rpc"),
                    "remove",
                );
                removed += 1;
            }
            if ok.reply.eof {
                break;
            }
            cookie = batch.last().expect("entries").1;
        }
        assert_eq!(removed, names.len(), "entries were skipped while removing");
    });
}

/// Listening TCP sockets of process `pid` that this (the host's) network
/// namespace can reach, by port.
fn host_listening_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                let port = fields[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports
}

/// nfsserve, behind the front, listens in a network namespace of the
/// server's own: no local process can reach it around the front's checks.
/// The only port of the server this namespace sees is the front's.
#[test]
fn only_the_front_is_reachable() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    init(&repo);
    let port = 20000 + ((std::process::id() + 10007) % 12000) as u16;
    let server = serve(&repo, port);
    assert_eq!(host_listening_ports(server.0.id()), vec![port]);
}
