//! Named remotes: `remote/NAME` -> path or URL in the repository's meta
//! table, so they travel with nothing else and need no key.

use monofs::repo::RawRepository;
use monofs::store::Table;

use crate::error::{Result, SyncError};

const PREFIX: &str = "remote/";

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(SyncError::Invalid(format!("bad remote name '{name}': use letters, digits, '-', '_', '.'")))
    }
}

/// Adds (or with `force`, replaces) remote `name`.
pub fn add(repo: &RawRepository, name: &str, url: &str, force: bool) -> Result<()> {
    check_name(name)?;
    if url.trim().is_empty() {
        return Err(SyncError::Invalid("the remote URL is empty".into()));
    }
    let key = format!("{PREFIX}{name}");
    if !force && repo.store().has(Table::Meta, key.as_bytes())? {
        return Err(SyncError::Invalid(format!("remote '{name}' exists already (remove it first)")));
    }
    let mut tx = repo.store().begin()?;
    tx.put(Table::Meta, key.as_bytes(), url.as_bytes())?;
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
pub fn list(repo: &RawRepository) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    repo.store().scan(Table::Meta, PREFIX.as_bytes(), &mut |k, v| {
        out.push((String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned(), String::from_utf8_lossy(v).into_owned()));
        true
    })?;
    Ok(out)
}

/// The URL or path of remote `name`, if there is one.
pub fn get(repo: &RawRepository, name: &str) -> Result<Option<String>> {
    if check_name(name).is_err() {
        return Ok(None);
    }
    let key = format!("{PREFIX}{name}");
    Ok(repo.store().get(Table::Meta, key.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use monofs::{InitOptions, Repository};

    #[test]
    fn add_list_remove() {
        let repo = Repository::in_memory(InitOptions::default()).expect("repo").into_raw();
        add(&repo, "backup", "http://127.0.0.1:1", false).expect("add");
        assert!(add(&repo, "backup", "x", false).is_err());
        assert!(add(&repo, "bad name", "x", false).is_err());
        add(&repo, "disk", "/mnt/disk/repo", false).expect("add");
        assert_eq!(list(&repo).expect("list").len(), 2);
        assert_eq!(get(&repo, "disk").expect("get").as_deref(), Some("/mnt/disk/repo"));
        remove(&repo, "disk").expect("remove");
        assert!(remove(&repo, "disk").is_err());
        assert_eq!(get(&repo, "disk").expect("get"), None);
    }
}
