//! Named remotes: `remote/NAME` -> path or URL, and how to reach it, in
//! the repository's meta table, so they travel with nothing else and need
//! no key.

use std::path::PathBuf;

use monofs::repo::RawRepository;
use monofs::store::Table;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SyncError};

const PREFIX: &str = "remote/";

/// A named replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// Directory or http(s):// URL.
    pub url: String,
    /// File holding the server's access token (never the token itself: it
    /// would travel with every clone of the repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// A PEM certificate to trust for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

impl Remote {
    fn encode(&self) -> Vec<u8> {
        if self.token_file.is_none() && self.ca_cert.is_none() {
            return self.url.clone().into_bytes();
        }
        serde_json::to_vec(self).expect("a remote serialises")
    }

    /// A bare path or URL (as remotes were first stored), or the JSON form.
    fn decode(raw: &[u8]) -> Remote {
        if raw.first() == Some(&b'{')
            && let Ok(r) = serde_json::from_slice(raw)
        {
            return r;
        }
        Remote { url: String::from_utf8_lossy(raw).into_owned(), ..Remote::default() }
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(SyncError::Invalid(format!(
            "bad remote name '{name}': use letters, digits, '-', '_', '.', starting with a letter, digit or '_'"
        )))
    }
}

/// A remote's address: an absolute path, or an http(s) URL with a host.
fn check_url(url: &str) -> Result<()> {
    if url.trim().is_empty() {
        return Err(SyncError::Invalid("the remote URL is empty".into()));
    }
    if crate::is_url(url) {
        return crate::http::server_url(url).map(drop);
    }
    if url.contains("://") {
        return Err(SyncError::Invalid(format!("bad remote URL '{url}': only http:// and https:// are served")));
    }
    if !url.starts_with('/') {
        return Err(SyncError::Invalid(format!("bad remote path '{url}': give it absolute")));
    }
    Ok(())
}

/// Adds (or with `force`, replaces) remote `name`.
pub fn add(repo: &RawRepository, name: &str, remote: &Remote, force: bool) -> Result<()> {
    check_name(name)?;
    check_url(&remote.url)?;
    let key = format!("{PREFIX}{name}");
    if !force && repo.store().has(Table::Meta, key.as_bytes())? {
        return Err(SyncError::Invalid(format!("remote '{name}' exists already (remove it first)")));
    }
    let mut tx = repo.store().begin()?;
    tx.put(Table::Meta, key.as_bytes(), &remote.encode())?;
    Ok(tx.commit()?)
}

/// Removes remote `name`.
pub fn remove(repo: &RawRepository, name: &str) -> Result<()> {
    let key = format!("{PREFIX}{name}");
    if !repo.store().has(Table::Meta, key.as_bytes())? {
        return Err(SyncError::Invalid(format!("no remote named '{name}'")));
    }
    let mut tx = repo.store().begin()?;
    tx.delete(Table::Meta, key.as_bytes())?;
    Ok(tx.commit()?)
}

/// Every remote, sorted by name.
pub fn list(repo: &RawRepository) -> Result<Vec<(String, Remote)>> {
    let mut out = Vec::new();
    repo.store().scan(Table::Meta, PREFIX.as_bytes(), &mut |k, v| {
        out.push((String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned(), Remote::decode(v)));
        true
    })?;
    Ok(out)
}

/// Remote `name`, if there is one.
pub fn get(repo: &RawRepository, name: &str) -> Result<Option<Remote>> {
    if check_name(name).is_err() {
        return Ok(None);
    }
    let key = format!("{PREFIX}{name}");
    Ok(repo.store().get(Table::Meta, key.as_bytes())?.map(|v| Remote::decode(&v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use monofs::{InitOptions, Repository};

    #[test]
    fn add_list_remove() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo").into_raw();
        let url = |u: &str| Remote { url: u.into(), ..Remote::default() };
        let http = Remote { token_file: Some("/etc/monofs/token".into()), ..url("http://127.0.0.1:1") };
        add(&repo, "backup", &http, false).expect("add");
        assert!(add(&repo, "backup", &url("x"), false).is_err());
        assert!(add(&repo, "bad name", &url("x"), false).is_err());
        add(&repo, "disk", &url("/mnt/disk/repo"), false).expect("add");
        assert_eq!(list(&repo).expect("list").len(), 2);
        assert_eq!(get(&repo, "disk").expect("get"), Some(url("/mnt/disk/repo")));
        assert_eq!(get(&repo, "backup").expect("get"), Some(http));
        remove(&repo, "disk").expect("remove");
        assert!(remove(&repo, "disk").is_err());
        assert_eq!(get(&repo, "disk").expect("get"), None);
    }
}
