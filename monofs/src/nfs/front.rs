//! The NFS front: the port clients talk to. nfsserve listens on a loopback
//! port behind it, in a network namespace of the server's own where the
//! caller gives one ([`BackendNet`]); the front answers READ, WRITE and the calls
//! nfsserve cannot (see [`procs`](super::procs)) and passes every other
//! record to it unchanged, one nfsserve connection per client connection.
//! It also caps the size of a request and checks the lengths inside its
//! arguments (see [`validate`](super::validate)), which nfsserve does not.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nfsserve::tcp::{NFSTcp as _, NFSTcpListener};
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, Semaphore};

use super::NfsFs;
use super::procs::Proc;
use super::rpc::{self, MAX_REPLY, MAX_REQUEST, Parsed, read_record};
use super::validate::plausible;
use crate::vfs::Vfs;

/// An NFSv3 server over a [`Vfs`], bound and ready to [`run`](Self::run).
pub struct NfsServer {
    listener: TcpListener,
    backend: NFSTcpListener<NfsFs>,
    net: Arc<dyn BackendNet>,
    fs: Arc<NfsFs>,
    port: u16,
}

/// Where the sockets of nfsserve's loopback port are made: the listener
/// and the front's connections to it. A network namespace of the server's
/// own keeps other processes from reaching that port, and so from going
/// around the front's checks.
pub trait BackendNet: Send + Sync {
    /// Runs `job` on a thread of this network (whose sockets are made in
    /// it), outside any async runtime.
    fn run(&self, job: Box<dyn FnOnce() + Send>) -> io::Result<()>;
}

/// The host's own network: nfsserve's port on its loopback, reachable by
/// every local process.
pub struct HostNet;

impl BackendNet for HostNet {
    fn run(&self, job: Box<dyn FnOnce() + Send>) -> io::Result<()> {
        std::thread::Builder::new().name("nfs-backend".into()).spawn(job).map(drop)
    }
}

/// `f`'s value, run by `net` (this thread waits for it).
fn run_in<T: Send + 'static>(
    net: &dyn BackendNet,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (done, value) = std::sync::mpsc::channel();
    net.run(Box::new(move || {
        let _ = done.send(f());
    }))?;
    value.recv().map_err(|_| io::Error::other("the backend network did not run its job"))?
}

impl NfsServer {
    /// Binds `addr` (`IP:PORT`; port 0 picks one) for clients, and nfsserve
    /// on a loopback port of its own in `net`.
    pub async fn bind(addr: &str, vfs: Arc<Vfs>, net: Arc<dyn BackendNet>) -> io::Result<NfsServer> {
        let fs = NfsFs::new(vfs);
        let listener = TcpListener::bind(addr).await?;
        let port = listener.local_addr()?.port();
        let runtime = tokio::runtime::Handle::current();
        let backend_fs = fs.clone();
        // Waits for `net`'s thread, on this one: once, at start.
        let backend = run_in(&*net, move || runtime.block_on(NFSTcpListener::bind("127.0.0.1:0", backend_fs)))?;
        Ok(NfsServer { listener, backend, net, fs: Arc::new(fs), port })
    }

    /// The port clients connect to (NFS and MOUNT both).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves for as long as the process runs.
    pub async fn run(self) -> io::Result<()> {
        let backend_port = self.backend.get_listen_port();
        let NfsServer { listener, backend, net, fs, port } = self;
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let accept = async move {
            loop {
                let (client, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, say: the clients already
                        // connected go on, and new ones are taken again soon.
                        tracing::warn!("accepting an NFS connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    tracing::warn!("NFS: {MAX_CONNECTIONS} connections open, refusing one from {peer}");
                    continue;
                };
                let (fs, net) = (fs.clone(), net.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = connection(client, &*net, backend_port, fs, port).await {
                        tracing::debug!("NFS connection from {peer}: {e}");
                    }
                });
            }
        };
        let backend = async move {
            loop {
                // Its accept loop ends at the first failure; start it again.
                if let Err(e) = backend.handle_forever().await {
                    tracing::warn!("NFS backend: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        tokio::join!(backend, accept);
        Ok(())
    }
}

/// Client connections served at once; more are closed as they come. Each
/// holds a connection to nfsserve (two descriptors in all, within the
/// usual limit of 1024) and up to [`MAX_IN_FLIGHT`] requests.
const MAX_CONNECTIONS: usize = 256;

/// How long a connection may go without sending a whole request before it
/// is closed, as Linux's nfsd closes idle ones (clients reconnect). A
/// client that stalls mid-request holds its slot no longer than that.
const IDLE: std::time::Duration = std::time::Duration::from_secs(360);

/// Calls of one connection the front works on at once: a client that
/// pipelines more waits, and holds at most this many requests in memory.
const MAX_IN_FLIGHT: usize = 32;

/// Serves one client connection until it closes or sends what is not RPC.
async fn connection(
    client: TcpStream,
    net: &dyn BackendNet,
    backend_port: u16,
    fs: Arc<NfsFs>,
    port: u16,
) -> io::Result<()> {
    // Only the socket is made in `net` (a socket stays in the network it
    // was made in); the connect is awaited here. Made there, a burst of
    // clients filled nfsserve's accept queue while every worker thread
    // waited on a connect, and nfsserve had no thread left to accept them.
    let socket = run_in(net, tokio::net::TcpSocket::new_v4)?;
    let backend = socket.connect((std::net::Ipv4Addr::LOCALHOST, backend_port).into()).await?;
    client.set_nodelay(true)?;
    backend.set_nodelay(true)?;
    let (mut from_client, to_client) = client.into_split();
    let (mut from_backend, mut to_backend) = backend.into_split();
    let to_client = Arc::new(Mutex::new(to_client));
    let relayed = Arc::new(Relayed::default());
    let mut relay = {
        let (to_client, relayed, fs) = (to_client.clone(), relayed.clone(), fs.clone());
        tokio::spawn(async move { relay_replies(&mut from_backend, &to_client, &relayed, &fs).await })
    };
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut record = Vec::new();
    let requests = async {
        loop {
            let next = tokio::time::timeout(IDLE, read_record(&mut from_client, &mut record, MAX_REQUEST));
            if !next.await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?? {
                break;
            }
            let msg = &record[rpc::HEADER..];
            let call = match rpc::parse_call(msg) {
                Parsed::Call(call) => call,
                Parsed::Refused(reply) => {
                    to_client.lock().await.write_all(&reply).await?;
                    continue;
                }
                Parsed::Garbage => return Err(io::Error::new(io::ErrorKind::InvalidData, "not an RPC call")),
            };
            if !plausible(&call, &msg[call.args..]) {
                let mut refusal = rpc::accepted(call.xid, rpc::GARBAGE_ARGS);
                rpc::seal(&mut refusal);
                to_client.lock().await.write_all(&refusal).await?;
                continue;
            }
            let Some(proc) = Proc::of(&call) else {
                relayed.waiting.fetch_add(1, Ordering::SeqCst);
                to_backend.write_all(&record).await?;
                continue;
            };
            // Like nfsserve, answer calls concurrently: replies may come
            // in any order, and a slow COMMIT holds up no READ. The work
            // blocks (a COMMIT stores the tree), so off the async workers.
            let (fs, to_client, record) = (fs.clone(), to_client.clone(), std::mem::take(&mut record));
            let permit = in_flight.clone().acquire_owned().await.map_err(io::Error::other)?;
            tokio::spawn(async move {
                let _permit = permit;
                let answered =
                    tokio::task::spawn_blocking(move || fs.answer(proc, &call, &record[rpc::HEADER..], port));
                let Ok(reply) = answered.await else { return };
                if let Err(e) = to_client.lock().await.write_all(&reply).await {
                    tracing::debug!("NFS reply: {e}");
                }
            });
        }
        // The client sent its last call; it may have only half-closed and
        // still wait for the answers: the front's own, then nfsserve's
        // (which drops what it has not answered once it reads the end).
        let _all = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await.map_err(io::Error::other)?;
        let answered = async {
            loop {
                // Registered before the count is read, so no answer slips by.
                let notified = relayed.answered.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if relayed.waiting.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(DRAIN, answered).await;
        Ok(())
    };
    // Either side failing ends the connection: a client without nfsserve
    // behind it would wait forever for the replies to relayed calls, and
    // it reconnects and retransmits.
    let result = tokio::select! {
        r = requests => r,
        r = &mut relay => r.map_err(io::Error::other).and_then(|r| r),
    };
    relay.abort();
    result
}

/// Calls relayed to nfsserve and not answered yet.
#[derive(Default)]
struct Relayed {
    waiting: AtomicUsize,
    /// Told after each answer.
    answered: Notify,
}

/// How long nfsserve's last replies are waited for after the client
/// stopped sending.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Copies nfsserve's replies to the client, a whole record at a time so
/// they never interleave with the front's own. Each counts as a change for
/// COMMIT before the client sees it (a SETATTR, REMOVE or MKDIR answered
/// here is then stored by the COMMIT that follows; one that changed
/// nothing costs that COMMIT a cheap look).
async fn relay_replies(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &Mutex<OwnedWriteHalf>,
    relayed: &Relayed,
    fs: &NfsFs,
) -> io::Result<()> {
    let mut record = Vec::new();
    while read_record(from, &mut record, MAX_REPLY).await? {
        fs.count_change();
        to.lock().await.write_all(&record).await?;
        let _ = relayed.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        relayed.answered.notify_waiters();
    }
    Ok(())
}
