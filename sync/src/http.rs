//! The client side of the HTTP protocol (docs/SYNC.md): an [`Endpoint`]
//! behind `monofs serve --http`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use monofs::ObjectId;
use monofs::repo::{DictionaryRecord, RepoMeta};
use monofs::store::PackListing;
use reqwest::blocking::{Client, Response};

use std::io::Read;

use crate::endpoint::{Endpoint, Identity, PackSender, RefState, StoreSender, Update, json};
use crate::error::{Result, SyncError};
use crate::pieces::{self, Piece};
use crate::wire::{self, WireObject};

/// Path prefix of every request; bumped on incompatible changes.
pub const API: &str = "/v1";

/// Response header of `POST /v1/store/pieces`: the store file's whole length.
pub(crate) const STORE_LENGTH: &str = "x-monofs-store-length";

/// How long the client waits for each step of a request (connecting,
/// sending, the answer's head, every read of its body) before it gives a
/// stalled server up: an idle limit, not one on a whole transfer, which
/// may take as long as the link needs. `MONOFS_HTTP_IDLE_SECS` overrides
/// it (tests).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Timeout of the small requests every sync starts with (meta, state),
/// whole: a server that accepts and never answers is given up in half a
/// minute.
const SMALL_TIMEOUT: Duration = Duration::from_secs(30);

/// [`IDLE_TIMEOUT`], or `MONOFS_HTTP_IDLE_SECS`.
fn idle_timeout() -> Duration {
    std::env::var("MONOFS_HTTP_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(IDLE_TIMEOUT, Duration::from_secs)
}

/// The largest answers the client reads: a server sending more is
/// refused before it fills memory.
mod limits {
    use crate::transfer::BATCH_BYTES;
    use crate::wire::{FRAME_OVERHEAD, MAX_FRAME};

    /// Replies with nothing to say (`put`, `update`, `dictionaries`).
    pub const EMPTY: u64 = 64 << 10;
    /// Config, key and dictionaries.
    pub const META: u64 = 64 << 20;
    /// Refs and the revision index: millions of revisions.
    pub const STATE: u64 = 512 << 20;
    /// Object and pack listings: tens of millions of objects.
    pub const LISTING: u64 = 2 << 30;

    /// Frames of `n` objects: a batch holds at most 4 x [`BATCH_BYTES`] of
    /// them (chunks of unknown size are counted at a quarter of the
    /// largest; `transfer::chunk_guess`), or one larger object.
    pub fn objects(n: usize) -> u64 {
        4 * BATCH_BYTES + MAX_FRAME as u64 + n as u64 * FRAME_OVERHEAD as u64
    }
}

/// A repository served over HTTP(S).
pub struct HttpRemote {
    base: String,
    token: Option<String>,
    /// Names this client's requests (see [`SESSION_HEADER`]).
    session: String,
    client: Client,
    wire_bytes: AtomicU64,
}

impl std::fmt::Debug for HttpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRemote").field("base", &self.base).finish()
    }
}

/// A header naming the client a request comes from, so that a server
/// tells one push from another (each holds the repository until its own
/// update).
pub const SESSION_HEADER: &str = "monofs-session";

/// Parses a server's URL (see [`is_url`]): it must have a host, and no
/// credentials: the token is given in a file or `MONOFS_TOKEN`, never in a
/// URL that is stored with a remote and printed in messages.
pub(crate) fn server_url(url: &str) -> Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).map_err(|e| SyncError::Invalid(format!("bad URL '{url}': {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let mut shown = parsed.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(SyncError::Invalid(format!(
            "'{shown}' with a user or password: those are not used; give the token with --token-file or MONOFS_TOKEN"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(SyncError::Invalid(format!("bad URL '{url}': no host")));
    }
    Ok(parsed)
}

/// Whether `s` names a server rather than a path.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl HttpRemote {
    /// A client for the server at `url` (`http://host:port` or
    /// `https://...`), sending `token` as a bearer token; `ca_cert` (PEM) is
    /// trusted in addition to the system's roots (see [`crate::tls`]).
    pub fn new(url: &str, token: Option<String>, ca_cert: Option<&Path>) -> Result<HttpRemote> {
        if !is_url(url) {
            return Err(SyncError::Invalid(format!("'{url}' is not an http:// or https:// URL")));
        }
        server_url(url)?;
        // reqwest's blocking client applies `timeout` to each operation.
        let mut builder = Client::builder().connect_timeout(Duration::from_secs(10)).timeout(idle_timeout());
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|e| SyncError::io(format!("reading {}", path.display()), e))?;
            let config =
                crate::tls::client_config(&pem).map_err(|e| SyncError::Invalid(format!("{}: {e}", path.display())))?;
            builder = builder.tls_backend_preconfigured(config);
        }
        let client = builder.build().map_err(|e| SyncError::Http { url: url.into(), message: chain(&e) })?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| SyncError::Invalid(format!("no random bytes: {e}")))?;
        let (base, session) = (url.trim_end_matches('/').to_owned(), hex::encode(id));
        Ok(HttpRemote { base, token, session, client, wire_bytes: AtomicU64::new(0) })
    }

    /// Bytes sent and received in request and response bodies so far.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes.load(Ordering::Relaxed)
    }

    /// Sends a request and reads the answer, which may be at most `limit`
    /// bytes: a server that sends more is refused before it fills memory.
    fn call(&self, post: Option<Vec<u8>>, path: &str, limit: u64) -> Result<Vec<u8>> {
        self.call_with(post, path, None, limit)
    }

    /// [`HttpRemote::call`] with a timeout of its own.
    fn call_with(&self, post: Option<Vec<u8>>, path: &str, timeout: Option<Duration>, limit: u64) -> Result<Vec<u8>> {
        let resp = self.send_with(post, path, timeout)?;
        let mut body = Vec::new();
        resp.take(limit.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| SyncError::Http { url: self.base.clone(), message: chain(&e) })?;
        self.wire_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if body.len() as u64 > limit {
            let what = format!("the answer to {path} is larger than {limit} bytes");
            return Err(SyncError::Protocol { from: self.base.clone(), what });
        }
        Ok(body)
    }

    /// Sends a request; a success comes back with its body unread.
    fn send(&self, post: Option<Vec<u8>>, path: &str) -> Result<Response> {
        self.send_with(post, path, None)
    }

    /// [`HttpRemote::send`] with a timeout of its own.
    fn send_with(&self, post: Option<Vec<u8>>, path: &str, timeout: Option<Duration>) -> Result<Response> {
        let url = format!("{}{API}{path}", self.base);
        let mut req = match post {
            Some(body) => {
                self.wire_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                self.client.post(&url).body(body)
            }
            None => self.client.get(&url),
        };
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req = req.header(SESSION_HEADER, &self.session);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let http = |e: reqwest::Error| SyncError::Http { url: self.base.clone(), message: chain(&e) };
        let resp = req.send().map_err(|e| match crate::tls::refusal(&e) {
            Some(message) => SyncError::Http { url: self.base.clone(), message },
            None => http(e),
        })?;
        let status = resp.status().as_u16();
        if (200..=299).contains(&status) {
            return Ok(resp);
        }
        let body = resp.bytes().map_err(http)?;
        self.wire_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        match status {
            401 => Err(SyncError::Unauthorized { url: self.base.clone() }),
            _ => {
                let said = String::from_utf8_lossy(&body).lines().next().unwrap_or("").trim().to_owned();
                let message = if !said.is_empty() {
                    said
                } else if status == 404 {
                    "not found: is this the address of a `monofs serve --http`?".to_owned()
                } else {
                    reqwest::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("")
                        .to_owned()
                };
                Err(SyncError::Remote { url: self.base.clone(), status, message })
            }
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| SyncError::Protocol { from: self.base.clone(), what: e.to_string() })
    }
}

impl Endpoint for HttpRemote {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn meta(&self) -> Result<RepoMeta> {
        let m: json::Meta = self.json(&self.call_with(None, "/meta", Some(SMALL_TIMEOUT), limits::META)?)?;
        json::meta_from(m, &self.base)
    }

    fn identity(&self) -> Result<Identity> {
        // Records left out (empty) by the server; one from before this
        // query sends them, which costs only bytes.
        let m: json::Meta =
            self.json(&self.call_with(None, "/meta?records=0", Some(SMALL_TIMEOUT), limits::META)?)?;
        Ok(Identity::of(json::meta_from(m, &self.base)?))
    }

    fn add_dictionaries(&self, records: &[DictionaryRecord]) -> Result<()> {
        let hex: Vec<(String, String)> = records.iter().map(|(k, v)| (hex::encode(k), hex::encode(v))).collect();
        let body = serde_json::to_vec(&hex).map_err(|e| SyncError::Invalid(e.to_string()))?;
        self.call(Some(body), "/dictionaries", limits::EMPTY).map(drop)
    }

    fn state(&self) -> Result<RefState> {
        let s: json::State = self.json(&self.call_with(None, "/state", Some(SMALL_TIMEOUT), limits::STATE)?)?;
        json::state_from(s, &self.base)
    }

    fn has(&self, ids: &[ObjectId]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let bits = self.call(Some(wire::encode_ids(ids)), "/has", ids.len().div_ceil(8) as u64)?;
        wire::decode_bitmap(&bits, ids.len(), &self.base)
    }

    fn list(&self) -> Result<Vec<(ObjectId, u64)>> {
        wire::decode_listing(&self.call(None, "/list", limits::LISTING)?, &self.base)
    }

    fn get(&self, ids: &[ObjectId]) -> Result<Vec<WireObject>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let objects = wire::decode_objects(
            &self.call(Some(wire::encode_ids(ids)), "/get", limits::objects(ids.len()))?,
            &self.base,
        )?;
        // Exactly what was asked for: an object sent in place of another
        // (each verifies against its own id) would leave the one asked for
        // missing below a directory the receiver then has.
        let mut asked: std::collections::HashMap<ObjectId, usize> = std::collections::HashMap::new();
        for id in ids {
            *asked.entry(*id).or_default() += 1;
        }
        for o in &objects {
            match asked.get_mut(&o.id) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    let what = format!("sent object {} that was not asked for", o.id.short(12));
                    return Err(SyncError::Protocol { from: self.base.clone(), what });
                }
            }
        }
        if let Some((id, _)) = asked.into_iter().find(|(_, n)| *n > 0) {
            return Err(SyncError::MissingObject { from: self.base.clone(), id });
        }
        Ok(objects)
    }

    fn put(&self, objects: &[WireObject], gc_epoch: Option<u64>) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let path = gc_epoch.map_or_else(|| "/put".to_owned(), |e| format!("/put?gc_epoch={e}"));
        self.call(Some(wire::encode_objects(objects)), &path, limits::EMPTY).map(drop)
    }

    fn update(&self, update: &Update) -> Result<()> {
        let body = serde_json::to_vec(update).map_err(|e| SyncError::Invalid(e.to_string()))?;
        self.call(Some(body), "/update", limits::EMPTY).map(drop)
    }

    fn packs(&self) -> Result<Option<Vec<PackListing>>> {
        match self.call(None, "/packs", limits::LISTING) {
            Ok(body) => Ok(Some(wire::decode_pack_listing(&body, &self.base)?)),
            // A store without packs, or a server from before packs.
            Err(SyncError::Remote { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_store(&self, have: &[u8], out: &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> {
        self.read_store_pieces(have, out)
    }

    fn get_packs(&self, ids: &[u64], f: &mut PackSender<'_>) -> Result<()> {
        // A few requests rather than one, so that a request broken off
        // costs little to send again.
        for group in ids.chunks(PACKS_PER_REQUEST) {
            let body: Vec<u8> = group.iter().flat_map(|id| id.to_le_bytes()).collect();
            let mut resp = self.send(Some(body), "/packs/get")?;
            while let Some((id, pack)) = wire::read_pack(&mut resp, &self.base)? {
                self.wire_bytes.fetch_add(pack.len() as u64 + 16, Ordering::Relaxed);
                f(id, pack)?;
            }
        }
        Ok(())
    }
}

impl HttpRemote {
    fn read_store_pieces(&self, have: &[u8], out: &mut StoreSender<'_>) -> Result<Option<[u8; 32]>> {
        let mut resp = match self.send(Some(have.to_vec()), "/store/pieces") {
            Ok(r) => r,
            // A server from before whole-file copies by pieces.
            Err(SyncError::Remote { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |what: &str| SyncError::Protocol { from: self.base.clone(), what: what.into() };
        let len: u64 = resp
            .headers()
            .get(STORE_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("no store length in the reply"))?;
        let broken = |e: std::io::Error| SyncError::Http { url: self.base.clone(), message: chain(&e) };
        let cut = || SyncError::Http { url: self.base.clone(), message: "the reply was cut off".into() };
        let read_exact = |resp: &mut Response, buf: &mut [u8]| {
            resp.read_exact(buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => cut(),
                _ => broken(e),
            })?;
            self.wire_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            Ok::<_, SyncError>(())
        };
        out(Piece::Length(len))?;
        // Whole pieces: hashing and writing a few KiB at a time (what one
        // read returns) costs far more per byte than 1 MiB at once.
        let mut buf = vec![0u8; pieces::PIECE as usize];
        for n in 0..pieces::count(len) {
            let mut tag = [0u8];
            read_exact(&mut resp, &mut tag)?;
            match tag[0] {
                pieces::KEPT => out(Piece::Kept(n))?,
                pieces::DATA => {
                    let piece = &mut buf[..pieces::len_of(n, len) as usize];
                    read_exact(&mut resp, piece)?;
                    out(Piece::Data(n, piece))?;
                }
                other => return Err(bad(&format!("unknown piece tag {other}"))),
            }
        }
        let mut hash = [0u8; 32];
        read_exact(&mut resp, &mut hash)?;
        if resp.read(&mut buf[..1]).map_err(broken)? != 0 {
            return Err(bad("bytes after the store file's checksum"));
        }
        Ok(Some(hash))
    }
}

/// Packs (about 1 MiB each) asked for in one request: a failed request
/// costs at most 64 MiB again.
const PACKS_PER_REQUEST: usize = 64;
