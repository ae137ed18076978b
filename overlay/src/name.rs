//! Image names: Docker's normalisation (`alpine` is
//! `docker.io/library/alpine:latest`) and the order in which the local
//! store is searched.

use crate::error::{Error, Result};

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed registry reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageName {
    /// Registry host (with port).
    pub registry: String,
    /// Repository path, e.g. `library/alpine`.
    pub repository: String,
    /// Tag, when no digest is given (defaults to `latest`).
    pub tag: Option<String>,
    /// `sha256:...`, when given.
    pub digest: Option<String>,
}

impl ImageName {
    /// Parses and normalises a reference as Docker does.
    pub fn parse(name: &str) -> Result<ImageName> {
        let bad = |reason: &str| Error::InvalidName { name: name.to_owned(), reason: reason.to_owned() };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("empty, or contains spaces or control characters"));
        }
        let (rest, digest) = match name.split_once('@') {
            Some((r, d)) => {
                crate::digest::sha256_hex(d).map_err(|_| bad("the digest must be sha256:<64 hex digits>"))?;
                (r, Some(d.to_owned()))
            }
            None => (name, None),
        };
        let (path, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        let (registry, repository) = match path.split_once('/') {
            Some((first, more)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_owned(), more.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), path.to_owned()),
        };
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_owned() } else { registry };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        // Each part starts and ends with a letter or digit, as Docker's
        // grammar has it.
        let edge_ok = |c: &str| {
            c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if repository.is_empty()
            || repository.split('/').any(|c| !edge_ok(c))
            || !repository.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(bad("the repository must be lower-case letters, digits and . _ - /"));
        }
        if let Some(t) = &tag
            && (t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(bad("invalid tag"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        let parsed = ImageName { registry, repository, tag, digest };
        // Stored as a ref, which a clone or sync of the store must accept.
        if monofs::repo::validate_ref_name(&crate::store::image_ref(&parsed.full())).is_err() {
            return Err(bad("not a registry host and repository"));
        }
        Ok(parsed)
    }

    /// The full normalised form, e.g. `docker.io/library/alpine:latest`.
    pub fn full(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Whether the registry is on this machine (plain HTTP is then allowed,
    /// as Docker allows it for 127.0.0.0/8).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

/// Validates a local name given to `import --tag`.
pub fn validate_local(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('/')
        || name.starts_with('-')
        || name.ends_with('/')
        || name.contains("..")
        || name.contains("//")
        || name.chars().any(|c| c.is_whitespace() || c.is_control() || "~^?*[\\".contains(c));
    // Stored as a ref, which a clone or sync of the store must accept; a
    // digest part is one, as in references pulled.
    let bad = bad
        || monofs::repo::validate_ref_name(&crate::store::image_ref(name)).is_err()
        || name.split_once('@').is_some_and(|(_, d)| crate::digest::sha256_hex(d).is_err());
    if bad {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "use letters, digits and . _ - / : @ (no spaces, no '..', no part that is '.' or starts with '-')"
                .to_owned(),
        });
    }
    Ok(())
}

/// Names to try in the local store, in order: as given, with `:latest`,
/// then Docker's normalised form.
pub fn candidates(name: &str) -> Vec<String> {
    let mut out = vec![name.to_owned()];
    let last = name.rsplit('/').next().unwrap_or(name);
    if !last.contains(':') && !name.contains('@') {
        out.push(format!("{name}:latest"));
    }
    if let Ok(n) = ImageName::parse(name) {
        out.push(n.full());
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        ImageName::parse(s).map(|n| n.full()).unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(full("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(full("library/alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("ghcr.io/o/r:1"), "ghcr.io/o/r:1");
        assert_eq!(full("127.0.0.1:5000/bb"), "127.0.0.1:5000/bb:latest");
        assert_eq!(full("localhost/x"), "localhost/x:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(full(&format!("alpine@{d}")), format!("docker.io/library/alpine@{d}"));
        assert!(full("Upper").starts_with("error"));
        assert!(ImageName::parse("127.0.0.1:5000/bb").is_ok_and(|n| n.is_loopback()));
        assert!(ImageName::parse("alpine").is_ok_and(|n| !n.is_loopback()));
    }

    #[test]
    fn names_are_usable_as_refs() {
        for bad in ["a/./b", "./x", "team/-exp:1", "x/.y", "y-/z"] {
            assert!(full(bad).starts_with("error"), "{bad}");
        }
        for bad in ["a/./b", "./x", "team/-exp:1"] {
            assert!(validate_local(bad).is_err(), "{bad}");
        }
        assert!(validate_local("my-app/v2:1.0").is_ok());
        assert!(validate_local("a/b:c@sha256:1234").is_err());
        assert!(validate_local(&format!("a/b@sha256:{}", "e".repeat(64))).is_ok());
        assert!(validate_local(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn local_first_order() {
        assert_eq!(candidates("bb"), vec!["bb", "bb:latest", "docker.io/library/bb:latest"]);
        assert_eq!(candidates("myimg:1"), vec!["myimg:1", "docker.io/library/myimg:1"]);
    }
}
