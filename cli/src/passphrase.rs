//! Where passphrases come from: `MONOFS_PASSPHRASE`, else a terminal prompt.

use std::io::IsTerminal;
use std::path::Path;

const ENV: &str = "MONOFS_PASSPHRASE";

fn no_source() -> std::io::Error {
    std::io::Error::other("the repository is encrypted: set MONOFS_PASSPHRASE or run in a terminal")
}

/// The passphrase of an existing repository.
pub fn existing(repo: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(pw) = std::env::var_os(ENV) {
        // No repository has an empty one (`new` refuses it).
        if pw.is_empty() {
            return Err(std::io::Error::other("MONOFS_PASSPHRASE is empty"));
        }
        return Ok(pw.into_encoded_bytes());
    }
    if !std::io::stdin().is_terminal() {
        return Err(no_source());
    }
    Ok(rpassword::prompt_password(format!("Passphrase for {}: ", repo.display()))?.into_bytes())
}

/// A passphrase for a new repository, typed twice when prompted.
pub fn new(repo: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(pw) = std::env::var_os(ENV) {
        let pw = pw.into_encoded_bytes();
        anyhow::ensure!(!pw.is_empty(), "MONOFS_PASSPHRASE is empty");
        return Ok(pw);
    }
    anyhow::ensure!(std::io::stdin().is_terminal(), "no passphrase: set MONOFS_PASSPHRASE or run in a terminal");
    let first = rpassword::prompt_password(format!("New passphrase for {}: ", repo.display()))?;
    anyhow::ensure!(!first.is_empty(), "an empty passphrase is not allowed");
    let second = rpassword::prompt_password("Repeat passphrase: ")?;
    anyhow::ensure!(first == second, "the passphrases do not match");
    Ok(first.into_bytes())
}
