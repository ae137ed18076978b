//! `monofs serve --http`: a repository's objects and refs over HTTP(S),
//! behind a bearer token (docs/SYNC.md). The server opens the repository
//! without its key: it stores and hands out sealed frames as they are.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::endpoint::{Endpoint, Local, Update, json};
use crate::error::{Result, SyncError};
use crate::http::{API, SESSION_HEADER, STORE_LENGTH};
use crate::{pieces, wire};
use monofs::repo::STORE_FILE;

/// Largest request body: a batch of metadata can be large.
const BODY_LIMIT: usize = 4 << 30;

/// Largest body of a query (ids to look up or send, packs, dictionaries):
/// clients ask 16,384 ids at a time. A 1.5 GB query took 4.7 GB of the
/// server's memory while it was read and parsed.
const QUERY_LIMIT: usize = 64 << 20;

/// Largest ref update: every new revision's id is in it (about 70 bytes
/// each), so a first push of a long history is large.
const UPDATE_LIMIT: usize = 512 << 20;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on (port 0 picks one).
    pub addr: SocketAddr,
    /// The bearer token clients must send.
    pub token: String,
    /// PEM certificate chain and private key, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Most bytes per second to send in object and pack replies, per
    /// request (`None`: as fast as possible).
    pub bwlimit: Option<u64>,
}

/// How long the served repository stays open after its last request: a
/// sync's requests follow each other closely; between syncs, other
/// commands (log, commit, a mount) can take the repository.
const IDLE: Duration = Duration::from_secs(2);

/// How long a request waits for another process to release the repository
/// before it is answered 503.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// How long the served repository stays open after the last request of a
/// push that has not ended with its `update`: objects a push stored are
/// referenced by nothing until then, and a `monofs gc` that took the
/// repository between two of its requests deleted them (the push then
/// moved its refs onto a tree with holes, and a re-run saw nothing to send).
const PUSH_HOLD: Duration = Duration::from_secs(60);

/// The served repository, open while requests use it (from their first
/// byte: a slow upload's body included) and for [`IDLE`] after, or
/// [`PUSH_HOLD`] during a push, so the server does not hold the
/// repository's lock between syncs.
struct Slot {
    path: PathBuf,
    open: std::sync::Mutex<Option<(Arc<Local>, Instant)>>,
    /// Requests being received or answered.
    in_flight: std::sync::atomic::AtomicUsize,
    /// The last request of each push not ended yet, by client session.
    pushing: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Slot {
    /// The repository, opened again if it was closed; held open for as long
    /// as the returned lease lives.
    fn lease(&self) -> Result<Arc<Local>> {
        let mut open = self.open.lock().map_err(|_| SyncError::Invalid("repository slot poisoned".into()))?;
        if let Some((local, used)) = open.as_mut() {
            *used = Instant::now();
            return Ok(local.clone());
        }
        let start = Instant::now();
        let local = Arc::new(Local::open(&self.path, BUSY_WAIT)?);
        tracing::debug!("{}: opened in {:?}", self.path.display(), start.elapsed());
        *open = Some((local.clone(), Instant::now()));
        Ok(local)
    }

    /// Closes the repository if no request holds it and none came for
    /// [`IDLE`] (for [`PUSH_HOLD`] during a push).
    fn close_idle(&self) {
        let busy = self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0;
        let pushing = self.pushing.lock().map_or(true, |mut p| {
            p.retain(|_, t| t.elapsed() < PUSH_HOLD);
            !p.is_empty()
        });
        if busy || pushing {
            return;
        }
        if let Ok(mut open) = self.open.lock()
            && open.as_ref().is_some_and(|(local, used)| Arc::strong_count(local) == 1 && used.elapsed() >= IDLE)
        {
            *open = None;
            tracing::debug!("{}: closed while idle", self.path.display());
        }
    }

    /// A request of the push of the client `headers` name came (a push
    /// asks which objects this side has, sends them, then moves refs), or
    /// with `false` that push ended. Other pushes keep their hold.
    fn push(&self, headers: &HeaderMap, going_on: bool) {
        let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        if let Ok(mut p) = self.pushing.lock() {
            if going_on {
                p.insert(session, Instant::now());
            } else {
                p.remove(&session);
            }
        }
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Slot);

impl<'a> InFlight<'a> {
    fn new(slot: &'a Slot) -> InFlight<'a> {
        slot.in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(slot)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // Never waits (this runs on the async workers, and `lease` holds the
        // lock while it waits for the repository): a busy slot was just
        // used anyway.
        if let Ok(mut open) = self.0.open.try_lock()
            && let Some((_, used)) = open.as_mut()
        {
            *used = Instant::now();
        }
    }
}

struct AppState {
    repo: Slot,
    token: String,
    bwlimit: Option<u64>,
    /// Held shared while the store file is sent whole, exclusively while a
    /// push (`put`, `update`) writes: a whole-file copy never sees a
    /// commit half-written.
    writes: Arc<tokio::sync::RwLock<()>>,
}

/// Paces a reply to at most `rate` bytes per second.
struct Pacer {
    rate: Option<u64>,
    start: std::time::Instant,
    sent: u64,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Pacer {
        Pacer { rate, start: std::time::Instant::now(), sent: 0 }
    }

    /// Sleeps until `n` more bytes may go.
    fn wait(&mut self, n: usize) {
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            self.sent += n as u64;
            let due = std::time::Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
}

/// A response body fed from a channel (a pack stream).
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

struct Failure(SyncError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        } else {
            tracing::info!("refused: {}", self.0);
        }
        (status, format!("{}\n", self.0)).into_response()
    }
}

/// Compares in time independent of where the strings differ.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request without the token before anything reads its body:
/// an unauthenticated client must not make the server hold gigabytes.
async fn require_token(
    State(s): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authorized(&s, req.headers()) {
        Ok(()) => {
            // From here the repository stays open (once opened), body and
            // all: a gc must not slip in while an upload arrives.
            let _counted = InFlight::new(&s.repo);
            // A body that stops arriving (a client gone without a word)
            // would hold the repository for ever.
            match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
                Ok(response) => response,
                Err(_) => (StatusCode::REQUEST_TIMEOUT, "request not received in time").into_response(),
            }
        }
        Err(refused) => refused.into_response(),
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> std::result::Result<(), Failure> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110).
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, token)| token.trim());
    match given {
        Some(t) if same_token(t.as_bytes(), state.token.as_bytes()) => Ok(()),
        _ => Err(Failure(SyncError::Unauthorized { url: "this server".into() })),
    }
}

type Reply = std::result::Result<Response, Failure>;

/// Runs `f` on the blocking pool, with the repository open.
async fn blocking<F>(state: Arc<AppState>, f: F) -> Reply
where
    F: FnOnce(&AppState, &Local) -> Result<Response> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(&state, &*state.repo.lease()?)).await {
        Ok(r) => r.map_err(Failure),
        Err(e) => Err(Failure(SyncError::Invalid(format!("request handler failed: {e}")))),
    }
}

fn octets(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

fn json_reply<T: serde::Serialize>(v: &T) -> Result<Response> {
    let body = serde_json::to_vec(v).map_err(|e| SyncError::Invalid(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn meta(State(s): State<Arc<AppState>>, uri: Uri) -> Reply {
    // `records=0`: dictionary keys only (a sync compares them; the records
    // are fetched when the other side lacks one).
    let records = !uri.query().unwrap_or("").split('&').any(|kv| kv == "records=0");
    blocking(s, move |_, local| {
        let mut meta = local.meta()?;
        if !records {
            meta.dictionaries.iter_mut().for_each(|(_, record)| record.clear());
        }
        json_reply(&json::meta_to(&meta))
    })
    .await
}

async fn ref_state(State(s): State<Arc<AppState>>) -> Reply {
    blocking(s, |_, local| json_reply(&json::state_to(&local.state()?))).await
}

async fn has(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Reply {
    // Asked of this side only by a push to it: what it has counts from
    // here until the push's update.
    s.repo.push(&headers, true);
    blocking(s, move |_, local| {
        let ids = wire::decode_ids(&body, "the client")?;
        Ok(octets(wire::encode_bitmap(&local.has(&ids)?)))
    })
    .await
}

async fn list(State(s): State<Arc<AppState>>) -> Reply {
    blocking(s, |_, local| Ok(octets(wire::encode_listing(&local.list()?)))).await
}

async fn get_objects(State(s): State<Arc<AppState>>, body: Bytes) -> Reply {
    blocking(s, move |s, local| {
        let ids = wire::decode_ids(&body, "the client")?;
        let reply = wire::encode_objects(&local.get(&ids)?);
        Pacer::new(s.bwlimit).wait(reply.len());
        Ok(octets(reply))
    })
    .await
}

async fn list_packs(State(s): State<Arc<AppState>>) -> Reply {
    blocking(s, |_, local| match local.packs()? {
        Some(packs) => Ok(octets(wire::encode_pack_listing(&packs))),
        None => Ok((StatusCode::NOT_FOUND, "this store keeps no packs\n").into_response()),
    })
    .await
}

/// Streams the packs asked for (u64 little-endian ids) as checksummed
/// frames, read one by one on the blocking pool.
async fn get_packs(State(s): State<Arc<AppState>>, body: Bytes) -> Reply {
    if !body.len().is_multiple_of(8) {
        let what = "pack id list length is not a multiple of 8".into();
        return Err(Failure(SyncError::Protocol { from: "the client".into(), what }));
    }
    let ids: Vec<u64> = body.chunks_exact(8).filter_map(|c| Some(u64::from_le_bytes(c.try_into().ok()?))).collect();
    let (send, recv) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut pacer = Pacer::new(s.bwlimit);
        let read = s.repo.lease().and_then(|local| {
            Ok(local.repo().store().read_packs(&ids, &mut |id, pack| {
                let frame = wire::encode_pack(id, pack);
                pacer.wait(frame.len());
                // A closed channel: the client went away; stop reading.
                send.blocking_send(Ok(Bytes::from(frame))).is_ok()
            })?)
        });
        if let Err(e) = read {
            tracing::error!("sending packs: {e}");
            // Breaks the reply off, so the client sees an error.
            let _ = send.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(Chunks(recv))).into_response())
}

/// Sends the store file whole (`POST /v1/store/pieces`, the body a
/// [`pieces::encode_have`] list of the pieces the client has): per piece a
/// tag, [`pieces::KEPT`] where the client's sum matches, else
/// [`pieces::DATA`] and the piece; then the checksum of the whole file
/// ([`pieces::whole`], 32 bytes); the file's length in
/// `x-monofs-store-length`. `503` while a push is being stored (the client
/// then copies packs), `404` for a store that is not one file.
async fn get_store(State(s): State<Arc<AppState>>, body: Bytes) -> Reply {
    let have = pieces::Have::parse(body, "the client").map_err(Failure)?;
    let Ok(reading) = s.writes.clone().try_read_owned() else {
        return Ok((StatusCode::SERVICE_UNAVAILABLE, "a push is being stored; try again shortly\n").into_response());
    };
    // Held while the file is sent: no other process writes it meanwhile.
    let state = s.clone();
    let lease = tokio::task::spawn_blocking(move || state.repo.lease())
        .await
        .map_err(|e| Failure(SyncError::Invalid(format!("opening the repository: {e}"))))?
        .map_err(Failure)?;
    let path = lease.repo().path().join(STORE_FILE);
    let Ok(mut file) = std::fs::File::open(&path) else {
        return Ok((StatusCode::NOT_FOUND, "this store is not kept in one file\n").into_response());
    };
    let len = file.metadata().map_err(|e| Failure(SyncError::io(format!("reading {}", path.display()), e)))?.len();
    let (send, recv) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let bwlimit = s.bwlimit;
    tokio::task::spawn_blocking(move || {
        let _reading = (reading, lease);
        let mut pacer = Pacer::new(bwlimit);
        let mut sums = Vec::with_capacity(pieces::count(len) as usize);
        for n in 0..pieces::count(len) {
            let want = pieces::len_of(n, len);
            let mut piece = Vec::with_capacity(want as usize);
            let read = std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, want), &mut piece);
            if let Err(e) = read
                .and_then(|got| if got as u64 == want { Ok(()) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) })
            {
                tracing::error!("sending the store file: {e}");
                let _ = send.blocking_send(Err(e));
                return;
            }
            let sum = pieces::sum(&piece);
            let kept = have.has(n, &sum);
            sums.push(sum);
            let tag = Bytes::from_static(if kept { &[pieces::KEPT] } else { &[pieces::DATA] });
            // A closed channel: the client went away; stop reading.
            if send.blocking_send(Ok(tag)).is_err() {
                return;
            }
            if !kept {
                pacer.wait(piece.len());
                if send.blocking_send(Ok(Bytes::from(piece))).is_err() {
                    return;
                }
            }
        }
        let _ = send.blocking_send(Ok(Bytes::copy_from_slice(&pieces::whole(&sums))));
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (axum::http::HeaderName::from_static(STORE_LENGTH), len.to_string()),
        ],
        Body::from_stream(Chunks(recv)),
    )
        .into_response())
}

/// The number `name=` gives in `uri`'s query, if any.
fn query_number(uri: &Uri, name: &str) -> Result<Option<u64>, Failure> {
    let Some(v) = uri.query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')) else {
        return Ok(None);
    };
    let bad = || Failure(SyncError::Protocol { from: "the client".into(), what: format!("bad {name} '{v}'") });
    v.parse::<u64>().map(Some).map_err(|_| bad())
}

async fn put(State(s): State<Arc<AppState>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    s.repo.push(&headers, true);
    let gc_epoch = query_number(&uri, "gc_epoch")?;
    blocking(s, move |s, local| {
        let _writing = s.writes.blocking_write();
        let objects = wire::decode_objects(&body, "the client")?;
        local.put(&objects, gc_epoch)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn add_dictionaries(State(s): State<Arc<AppState>>, body: Bytes) -> Reply {
    blocking(s, move |s, local| {
        let _writing = s.writes.blocking_write();
        let records: Vec<(String, String)> = serde_json::from_slice(&body)
            .map_err(|e| SyncError::Protocol { from: "the client".into(), what: e.to_string() })?;
        local.add_dictionaries(&json::dictionaries_from(&records, "the client")?)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn update(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Reply {
    blocking(s, move |s, local| {
        let _writing = s.writes.blocking_write();
        let update: Update = serde_json::from_slice(&body)
            .map_err(|e| SyncError::Protocol { from: "the client".into(), what: e.to_string() })?;
        let updated = local.update(&update);
        s.repo.push(&headers, false);
        updated?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// The routes.
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(&format!("{API}/meta"), get(meta))
        .route(&format!("{API}/state"), get(ref_state))
        .route(&format!("{API}/list"), get(list))
        .route(&format!("{API}/has"), post(has).layer(DefaultBodyLimit::max(QUERY_LIMIT)))
        .route(&format!("{API}/get"), post(get_objects).layer(DefaultBodyLimit::max(QUERY_LIMIT)))
        .route(&format!("{API}/put"), post(put))
        .route(&format!("{API}/update"), post(update).layer(DefaultBodyLimit::max(UPDATE_LIMIT)))
        .route(&format!("{API}/dictionaries"), post(add_dictionaries).layer(DefaultBodyLimit::max(QUERY_LIMIT)))
        .route(&format!("{API}/packs"), get(list_packs))
        .route(&format!("{API}/packs/get"), post(get_packs).layer(DefaultBodyLimit::max(QUERY_LIMIT)))
        .route(&format!("{API}/store/pieces"), post(get_store).layer(DefaultBodyLimit::max(QUERY_LIMIT)))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// How long a request may take to arrive and be answered (a streamed reply
/// goes on after): its body included, so that one whose client vanished
/// mid-upload does not keep the repository locked.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a client may take to send a request's headers, including the
/// wait for the next request on a kept-alive connection: a client that
/// connects and says nothing (or half a header) held its connection, and
/// its memory, for ever; 20,000 of them stopped the server.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a connection buffers of a request's headers (hyper's default
/// is about 400 KB, which 300 unfinished headers turned into 120 MB).
const HEADER_BUFFER: usize = 64 << 10;

/// `server` with the limits above on its HTTP/1 connections, and a
/// connection that sends nothing at all closed after [`HEADER_TIMEOUT`]
/// (hyper reads the first bytes, to tell HTTP/1 from HTTP/2, with no
/// timeout of its own). Clients speak HTTP/1.1, and HTTP/2 is refused
/// where it can be (see [`FirstByte`], [`tls_config`]): its connections
/// escaped these limits and could stay idle for ever. Where it cannot (a
/// client speaking it unasked inside TLS), its connections must answer
/// pings and carry small headers.
fn limited<A>(mut server: axum_server::Server<A>) -> axum_server::Server<FirstByte<A>> {
    let builder = server.http_builder();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(HEADER_BUFFER);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(HEADER_TIMEOUT)
        .keep_alive_timeout(HEADER_TIMEOUT)
        .max_header_list_size(HEADER_BUFFER as u32)
        .max_concurrent_streams(32);
    server.map(FirstByte)
}

/// The TLS configuration of `cert` and `key`, offering HTTP/1.1 only in
/// ALPN (see [`limited`]).
async fn tls_config(cert: &Path, key: &Path) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    let loaded = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let mut config = (*loaded.get_inner()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)))
}

/// An acceptor that hands a connection on once it has something to read,
/// and drops it if nothing comes within [`HEADER_TIMEOUT`], or if it opens
/// with HTTP/2's preface in clear (`PRI * HTTP/2.0`), which no HTTP/1
/// request starts with.
#[derive(Clone)]
struct FirstByte<A>(A);

impl<A, S> axum_server::accept::Accept<tokio::net::TcpStream, S> for FirstByte<A>
where
    A: axum_server::accept::Accept<tokio::net::TcpStream, S> + Clone + Send + 'static,
    A::Future: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            // `readable` may wake spuriously; a peek waits for a byte (or
            // the end), then for the three that tell the preface.
            let mut head = [0u8; 3];
            let peeking = async {
                // A client that stops after "P" costs a few peeks, not one
                // every few milliseconds until the timeout.
                let mut pause = Duration::from_millis(5);
                loop {
                    let n = stream.peek(&mut head).await?;
                    if n == 0 || n == head.len() || !b"PRI".starts_with(&head[..n]) {
                        return Ok::<_, std::io::Error>(());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            };
            match tokio::time::timeout(HEADER_TIMEOUT, peeking).await {
                Ok(peeked) => peeked?,
                Err(_) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            }
            if &head == b"PRI" {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "HTTP/2 is not served"));
            }
            inner.accept(stream, service).await
        })
    }
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: axum_server::Handle,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Server {
    /// Waits until the server stops (it runs until the process ends or
    /// [`Server::shutdown`]).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(SyncError::Invalid("the HTTP server thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Stops accepting connections and waits for the server to end.
    pub fn shutdown(self) -> Result<()> {
        self.handle.shutdown();
        self.wait()
    }
}

/// Starts serving `local` on its own thread and runtime; returns once it
/// listens.
pub fn serve(local: Local, opts: ServeOptions) -> Result<Server> {
    if opts.token.trim().is_empty() {
        return Err(SyncError::Invalid("the access token is empty".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SyncError::io("starting the HTTP runtime", e))?;
    let repo = Slot {
        path: local.repo().path().to_owned(),
        open: std::sync::Mutex::new(Some((Arc::new(local), Instant::now()))),
        in_flight: std::sync::atomic::AtomicUsize::new(0),
        pushing: std::sync::Mutex::new(HashMap::new()),
    };
    let writes = Arc::new(tokio::sync::RwLock::new(()));
    let state = Arc::new(AppState { repo, token: opts.token.trim().to_owned(), bwlimit: opts.bwlimit, writes });
    let app = router(state.clone());
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(IDLE / 2);
        loop {
            tick.tick().await;
            state.repo.close_idle();
        }
    });
    let handle = axum_server::Handle::new();
    let tls = match &opts.tls {
        Some((cert, key)) => Some(runtime.block_on(tls_config(cert, key)).map_err(|e| {
            SyncError::io(format!("loading TLS certificate {} and key {}", cert.display(), key.display()), e)
        })?),
        None => None,
    };
    let addr = opts.addr;
    let h = handle.clone();
    let thread = std::thread::spawn(move || -> Result<()> {
        let service = app.into_make_service();
        let run = async move {
            match tls {
                Some(tls) => limited(axum_server::bind_rustls(addr, tls)).handle(h).serve(service).await,
                None => limited(axum_server::bind(addr)).handle(h).serve(service).await,
            }
        };
        runtime.block_on(run).map_err(|e| SyncError::io(format!("serving on {addr}"), e))
    });
    let bound = std::thread::scope(|_| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        rt.ok().and_then(|rt| rt.block_on(handle.listening()))
    });
    match bound {
        Some(addr) => Ok(Server { addr, handle, thread: Some(thread) }),
        None => match thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(SyncError::Invalid(format!("the HTTP server did not start on {addr}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn token_comparison() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
        assert!(!same_token(b"abc", b"abcd"));
    }
}
