//! Revision expressions: a full or unambiguous short id, a tag, `HEAD`,
//! each optionally followed by `~N` (N-th first-parent ancestor) or `^`.

use super::{HEAD, Repository, tag_ref};
use crate::error::{Error, Result};
use crate::id::ObjectId;

/// Fewest hex digits accepted as a short id.
pub const MIN_SHORT_ID: usize = 4;

impl Repository {
    /// Resolves a revision expression to a revision id.
    pub fn resolve(&self, spec: &str) -> Result<ObjectId> {
        let unknown = || Error::UnknownRevision(spec.to_owned());
        let (base, steps) = split_ancestry(spec).ok_or_else(unknown)?;
        let mut id = self.resolve_base(spec, base)?;
        for n in 0..steps {
            let rev = self.read_revision(&id)?;
            id = *rev.parents.first().ok_or_else(|| Error::HistoryTooShort { spec: spec.to_owned(), found: n })?;
        }
        Ok(id)
    }

    fn resolve_base(&self, spec: &str, base: &str) -> Result<ObjectId> {
        if base == HEAD || base == "@" {
            return self.head()?.ok_or(Error::NoRevisions);
        }
        if let Some(id) = self.get_ref(&tag_ref(base))? {
            return Ok(id);
        }
        // A full ref name of another namespace, such as `images/alpine:3.20`.
        if base.contains('/')
            && let Some(id) = self.get_ref(base)?
        {
            return Ok(id);
        }
        let lower = base.to_ascii_lowercase();
        if lower.len() < MIN_SHORT_ID || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::UnknownRevision(spec.to_owned()));
        }
        let whole_bytes =
            hex::decode(&lower[..lower.len() / 2 * 2]).map_err(|_| Error::UnknownRevision(spec.to_owned()))?;
        let matches: Vec<ObjectId> = self
            .revisions_with_prefix(&whole_bytes)?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&lower))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::UnknownRevision(spec.to_owned())),
            many => Err(Error::AmbiguousRevision { spec: spec.to_owned(), count: many.len() }),
        }
    }
}

/// Splits `base~2^~` into the base and the number of first-parent steps.
fn split_ancestry(spec: &str) -> Option<(&str, u64)> {
    let cut = spec.find(['~', '^']).unwrap_or(spec.len());
    let (base, mut rest) = spec.split_at(cut);
    if base.is_empty() {
        return None;
    }
    let mut steps: u64 = 0;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n = match (c, digits) {
            ('~', 0) | ('^', 0) => 1,
            ('~', _) => rest[..digits].parse().ok()?,
            _ => return None,
        };
        rest = &rest[digits..];
        steps = steps.checked_add(n)?;
    }
    Some((base, steps))
}

#[cfg(test)]
mod tests {
    use super::split_ancestry;

    #[test]
    fn ancestry_syntax() {
        assert_eq!(split_ancestry("HEAD"), Some(("HEAD", 0)));
        assert_eq!(split_ancestry("HEAD~"), Some(("HEAD", 1)));
        assert_eq!(split_ancestry("HEAD~3"), Some(("HEAD", 3)));
        assert_eq!(split_ancestry("v1^^"), Some(("v1", 2)));
        assert_eq!(split_ancestry("abcd~2~1"), Some(("abcd", 3)));
        assert_eq!(split_ancestry("~1"), None);
        assert_eq!(split_ancestry("HEAD^2"), None);
        assert_eq!(split_ancestry("HEAD~x"), None);
    }
}
