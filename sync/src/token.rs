//! Access tokens: where the server and the clients get them.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::error::{Result, SyncError};

/// Environment variable clients read the token from.
pub const TOKEN_ENV: &str = "MONOFS_TOKEN";

/// Reads a token file, trimming surrounding whitespace; empty is an error.
pub fn read(path: &Path) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| SyncError::io(format!("reading token file {}", path.display()), e))?;
    let t = s.trim();
    if t.is_empty() {
        return Err(SyncError::Invalid(format!("token file {} is empty", path.display())));
    }
    checked(t, &format!("token file {}", path.display()))
}

/// `token` if an HTTP header can carry it: printable ASCII without spaces
/// (a bearer token's characters). Anything else no client could send.
fn checked(token: &str, from: &str) -> Result<String> {
    if token.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(token.to_owned());
    }
    Err(SyncError::Invalid(format!(
        "{from}: a token must be printable ASCII without spaces or line breaks (an HTTP header carries it)"
    )))
}

/// The server's token: read from `path`, or a new random one written there
/// (mode 0600). Returns the token and whether it was created.
pub fn server(path: &Path) -> Result<(String, bool)> {
    if path.exists() {
        return Ok((read(path)?, false));
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| SyncError::io("generating a token", std::io::Error::other(e.to_string())))?;
    let token = hex::encode(raw);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SyncError::io(format!("creating token file {}", path.display()), e))?;
    writeln!(f, "{token}").map_err(|e| SyncError::io(format!("writing token file {}", path.display()), e))?;
    Ok((token, true))
}

/// A client's token: `--token-file` wins over `MONOFS_TOKEN`; `None` when
/// neither is given.
pub fn client(file: Option<&Path>) -> Result<Option<String>> {
    if let Some(path) = file {
        return read(path).map(Some);
    }
    match std::env::var(TOKEN_ENV).map(|t| t.trim().to_owned()) {
        Ok(t) if !t.is_empty() => checked(&t, TOKEN_ENV).map(Some),
        Err(std::env::VarError::NotUnicode(_)) => Err(SyncError::Invalid(format!("{TOKEN_ENV} is not valid UTF-8"))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_creates_then_reads_and_clients_trim() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let (t, created) = server(&path).expect("create");
        assert!(created && t.len() == 64);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).expect("stat").permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(server(&path).expect("read"), (t.clone(), false));
        std::fs::write(&path, "  secret \n").expect("write");
        assert_eq!(client(Some(&path)).expect("read").as_deref(), Some("secret"));
        std::fs::write(&path, " \n").expect("write");
        assert!(client(Some(&path)).is_err());
        for bad in ["pässwört\n", "line1\nline2\n", "two words"] {
            std::fs::write(&path, bad).expect("write");
            let err = server(&path).expect_err(bad).to_string();
            assert!(err.contains("printable ASCII"), "{bad:?}: {err}");
        }
    }
}
