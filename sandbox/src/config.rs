//! `$MONOCORE_HOME/config.toml`: the defaults `monocore tmp` uses when an
//! option is not given on the command line, e.g. to opt every sandbox into
//! a microVM:
//!
//! ```toml
//! isolation = "microvm"   # or "namespace" (the default)
//! scope = "none"          # none | local | public | any
//! memory = "1g"           # default limits; none when absent
//! cpus = "2"
//! pids = "512"
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The file's name under `MONOCORE_HOME`.
pub const CONFIG_FILE: &str = "config.toml";

/// Sandbox defaults; every field optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `namespace` or `microvm`.
    pub isolation: Option<String>,
    /// `none`, `local`, `public` or `any`.
    pub scope: Option<String>,
    /// Memory limit (`512m`, `2g`).
    pub memory: Option<String>,
    /// CPU limit in cores.
    pub cpus: Option<String>,
    /// Most processes.
    pub pids: Option<String>,
}

impl Config {
    /// Reads `home/config.toml`; no file means no defaults.
    pub fn load(home: &Path) -> Result<Config> {
        let path = home.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::BadConfig { path: path.to_owned(), why: e.message().to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_and_refuses_others() {
        let c = Config::parse("isolation = \"microvm\"\nmemory = \"1g\"\n", Path::new("c")).expect("parses");
        assert_eq!(c.isolation.as_deref(), Some("microvm"));
        assert_eq!(c.memory.as_deref(), Some("1g"));
        assert_eq!(c.scope, None);
        let err = Config::parse("isolaton = \"microvm\"\n", Path::new("c")).expect_err("typo");
        assert!(err.to_string().contains("isolaton"), "{err}");
        assert!(Config::parse("isolation = [", Path::new("c")).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Config::load(dir.path()).expect("no file"), Config::default());
    }
}
