//! `clone`, `sync`, `remote` and `serve --http`: replication, over the
//! `monofs-sync` library.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use monofs_sync::{Direction, Endpoint, HttpRemote, LOCK_WAIT, Local, Summary, remotes, token};

use crate::args::{ClientArgs, CloneArgs, RemoteAction, RemoteArgs, ServeArgs, SyncArgs, SyncMode};
use crate::progress::TransferBar;
use crate::style;

/// The other side of a transfer.
enum Other {
    Path(Box<Local>),
    Http(Box<HttpRemote>),
}

impl Other {
    fn endpoint(&self) -> &dyn Endpoint {
        match self {
            Other::Path(l) => l.as_ref(),
            Other::Http(h) => h.as_ref(),
        }
    }

    fn wire_bytes(&self) -> Option<u64> {
        match self {
            Other::Path(_) => None,
            Other::Http(h) => Some(h.wire_bytes()),
        }
    }
}

fn connect(spec: &str, client: &ClientArgs) -> anyhow::Result<Other> {
    if monofs_sync::is_url(spec) {
        let token = token::client(client.token_file.as_deref())?;
        return Ok(Other::Http(Box::new(HttpRemote::new(spec, token, client.ca_cert.as_deref())?)));
    }
    // Its errors name the path.
    let local = Local::open(Path::new(spec), LOCK_WAIT)?;
    Ok(Other::Path(Box::new(local)))
}

fn report(ctx: &mut super::Ctx<'_>, s: &Summary, other: &str, wire: Option<u64>, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        if let Some(w) = wire {
            v["wire_bytes"] = w.into();
        }
        v["remote"] = other.into();
        return style::print_json(&mut *ctx.out, &v);
    }
    let verb = match s.direction {
        Direction::Clone => "cloned",
        Direction::Push => "sent",
        Direction::Pull => "fetched",
    };
    let refs = if s.refs_updated.is_empty() { "none".to_owned() } else { s.refs_updated.join(", ") };
    say!(
        ctx,
        "{verb} {} objects ({}) in {:.2} s; refs updated: {refs}",
        s.objects_sent,
        style::bytes(s.bytes_sent),
        s.duration_ms as f64 / 1000.0
    );
    if s.worktree_kept {
        note!(
            ctx,
            "note: the receiving working tree was left as it was (it has changes of its own, or the key is not at hand)"
        );
    }
    Ok(())
}

/// `monofs clone`.
pub fn clone(a: CloneArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    if same_repository(&a.src, &a.dst) {
        bail!("cannot clone {} into itself", a.src);
    }
    // The destination first: a clone that cannot write there fails before
    // it waits for the source's lock or reaches a server. One it makes is
    // removed again if nothing came of the clone.
    let created = !a.dst.exists();
    std::fs::create_dir_all(&a.dst).with_context(|| format!("creating {}", a.dst.display()))?;
    let src = match connect(&a.src, &a.client) {
        Ok(src) => src,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(&a.dst);
            }
            return Err(e);
        }
    };
    let bar = TransferBar::new("cloning");
    // MONOFS_CLONE_WHOLE_FILE=0 makes a clone into an empty directory copy
    // packs rather than the store file (docs/SYNC.md); tests use it.
    let whole_file = std::env::var_os("MONOFS_CLONE_WHOLE_FILE").is_none_or(|v| v != "0");
    let result = monofs_sync::clone_with(src.endpoint(), &a.dst, &bar, whole_file);
    bar.finish();
    let (summary, _) = result.map_err(|e| {
        let started = a.dst.join(monofs::repo::STORE_FILE).exists() || a.dst.join(monofs_sync::PARTIAL_FILE).exists();
        if created && !started {
            let _ = std::fs::remove_file(a.dst.join("lock"));
            let _ = std::fs::remove_dir(&a.dst);
        }
        let hint = if started && e.resumable() { " (run the same command again to resume)" } else { "" };
        anyhow::Error::new(e).context(format!("cloning {} into {}{hint}", a.src, a.dst.display()))
    })?;
    report(ctx, &summary, &a.src, src.wire_bytes(), a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `spec` (a path or URL) names the directory `path`.
fn same_repository(spec: &str, path: &Path) -> bool {
    !monofs_sync::is_url(spec)
        && std::fs::canonicalize(spec).is_ok_and(|a| std::fs::canonicalize(path).is_ok_and(|b| a == b))
}

/// Unlocks an encrypted repository when a passphrase is at hand, so the
/// sync can walk the DAG; otherwise it compares object ids.
fn try_unlock(local: &mut Local, repo: &Path) -> anyhow::Result<()> {
    if !local.repo().config().encrypted {
        return Ok(());
    }
    if std::env::var_os("MONOFS_PASSPHRASE").is_some() || std::io::stdin().is_terminal() {
        let pw = crate::passphrase::existing(repo)?;
        local.unlock(&pw)?;
    }
    Ok(())
}

/// `monofs sync`.
pub fn sync(a: SyncArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    if a.mode != SyncMode::Backup {
        let name = clap::ValueEnum::to_possible_value(&a.mode).map(|v| v.get_name().to_owned()).unwrap_or_default();
        bail!("sync mode {name} is not available yet; use --mode backup");
    }
    let mut local = Local::open(&a.repo, LOCK_WAIT)?;
    try_unlock(&mut local, &a.repo)?;
    let (target, client) = match remotes::get(local.repo(), &a.remote)? {
        // A name loses only to a directory of the same name (a repository).
        Some(r) if !Path::new(&a.remote).is_dir() => {
            let client = ClientArgs {
                token_file: a.client.token_file.clone().or(r.token_file),
                ca_cert: a.client.ca_cert.clone().or(r.ca_cert),
            };
            (r.url, client)
        }
        _ => (a.remote.clone(), a.client),
    };
    if same_repository(&target, &a.repo) {
        bail!("{} and {target} are the same repository", a.repo.display());
    }
    let mut other = connect(&target, &client)?;
    if let Other::Path(l) = &mut other {
        l.set_codec(local.codec().cloned());
    }
    let codec = local.codec().cloned();
    let (src, dst, direction, verb) = if a.pull {
        (other.endpoint(), &local as &dyn Endpoint, Direction::Pull, "fetching")
    } else {
        (&local as &dyn Endpoint, other.endpoint(), Direction::Push, "sending")
    };
    let bar = TransferBar::new(verb);
    let result = monofs_sync::sync(src, dst, codec.as_ref(), direction, &bar);
    bar.finish();
    let summary = result.with_context(|| {
        if a.pull {
            format!("syncing {target} into {}", a.repo.display())
        } else {
            format!("syncing {} to {target}", a.repo.display())
        }
    })?;
    report(ctx, &summary, &target, other.wire_bytes(), a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `monofs remote`.
pub fn remote(a: RemoteArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let open =
        |repo: &Path| monofs::repo::RawRepository::open(repo).with_context(|| format!("opening {}", repo.display()));
    match a.action {
        RemoteAction::Add { repo, name, url, force, token_file, ca_cert } => {
            let (url, not_a_repository) = if monofs_sync::is_url(&url) || url.contains("://") {
                (url, false)
            } else {
                let path = std::path::absolute(&url).with_context(|| url.clone())?;
                let not_a_repository = !path.join(monofs::repo::STORE_FILE).is_file();
                (path.display().to_string(), not_a_repository)
            };
            let absolute = |p: Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
                p.map(|p| std::path::absolute(&p).with_context(|| p.display().to_string())).transpose()
            };
            let remote = remotes::Remote { url, token_file: absolute(token_file)?, ca_cert: absolute(ca_cert)? };
            remotes::add(&open(&repo)?, &name, &remote, force)?;
            if not_a_repository {
                note!(
                    ctx,
                    "note: {} is not a repository now; sync needs one there (monofs clone makes one)",
                    remote.url
                );
            }
        }
        RemoteAction::Remove { repo, name } => remotes::remove(&open(&repo)?, &name)?,
        RemoteAction::List { repo, json } => {
            let list = remotes::list(&open(&repo)?)?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(n, r)| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        v["name"] = n.as_str().into();
                        v
                    })
                    .collect();
                style::print_json(&mut *ctx.out, &serde_json::Value::Array(v))?;
            } else {
                for (n, r) in list {
                    match &r.token_file {
                        Some(t) => say!(ctx, "{n}\t{}\t(token in {})", r.url, t.display()),
                        None => say!(ctx, "{n}\t{}", r.url),
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `monofs serve --http`: until the process is stopped.
pub fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr_s = a.http.as_deref().unwrap_or("127.0.0.1:7420");
    let addr: std::net::SocketAddr = addr_s.parse().with_context(|| format!("bad address '{addr_s}': use IP:PORT"))?;
    let token_file: PathBuf = a.token_file.clone().unwrap_or_else(|| a.repo.join("http-token"));
    let local = Local::open(&a.repo, std::time::Duration::ZERO)?;
    let (token, created) = token::server(&token_file)?;
    if created {
        eprintln!("wrote a new access token to {}", token_file.display());
    }
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: serving on {addr}, reachable from other machines; anyone with the token can read and write{}",
            if a.tls_cert.is_none() { ", and without --tls-cert the token and data travel in clear text" } else { "" }
        );
    }
    let tls = a.tls_cert.clone().zip(a.tls_key.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = monofs_sync::serve(local, monofs_sync::ServeOptions { addr, token, tls, bwlimit: a.bwlimit })?;
    println!("serving {} on {scheme}://{} (token in {})", a.repo.display(), server.addr, token_file.display());
    server.wait()?;
    Ok(ExitCode::SUCCESS)
}
