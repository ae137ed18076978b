//! Paths longer than the kernel takes in one call (`PATH_MAX`, 4096
//! bytes). A tree may hold them (`tar` and `rsync` copy such trees), and a
//! snapshot or a restore must reach every file in it. Such a path is
//! reached through descriptors of its ancestors, each opened relative to
//! the one before, and named `/proc/self/fd/N/REST`: the kernel resolves
//! the descriptor (a magic link to the directory), then REST, so every
//! path-based call (lstat, xattrs, readlink, open, mkdir, link, utimensat)
//! works on it unchanged, `l*` calls included (REST's last component is
//! the file itself, not a link to it).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Longest path handed to the kernel as it is: longer ones are cut at a
/// `/` into pieces of at most this many bytes.
const LIMIT: usize = 3072;

/// A path the kernel accepts, naming the same file as the one it was made
/// from, for as long as it lives.
pub(crate) struct Reachable {
    path: PathBuf,
    /// The descriptor `path` goes through, if any.
    _dir: Option<OwnedFd>,
}

impl std::ops::Deref for Reachable {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Reachable {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// `path` itself, or, when it is too long for one call, the same file
/// reached through a descriptor of an ancestor directory. Fails where a
/// directory on the way cannot be opened (it does not exist, or is not a
/// directory), as a call on the whole path would.
pub(crate) fn reachable(path: &Path) -> std::io::Result<Reachable> {
    let mut rest = path.as_os_str().as_bytes();
    let mut dir: Option<OwnedFd> = None;
    while rest.len() > LIMIT {
        // A name is at most 255 bytes, so a piece ends at a `/` (one
        // right at the start is the root: it stays with its piece).
        let cut = rest[..=LIMIT]
            .iter()
            .rposition(|b| *b == b'/')
            .filter(|at| *at > 0)
            .ok_or_else(|| std::io::Error::from_raw_os_error(nix::libc::ENAMETOOLONG))?;
        let piece = OsStr::from_bytes(&rest[..cut]);
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let opened = match &dir {
            None => nix::fcntl::open(piece, flags, Mode::empty()),
            Some(d) => nix::fcntl::openat(d, piece, flags, Mode::empty()),
        };
        dir = Some(opened.map_err(std::io::Error::from)?);
        rest = &rest[cut + 1..];
    }
    let path = match &dir {
        None => path.to_owned(),
        Some(d) => {
            let mut through = format!("/proc/self/fd/{}/", d.as_raw_fd()).into_bytes();
            through.extend_from_slice(rest);
            PathBuf::from(OsStr::from_bytes(&through))
        }
    };
    Ok(Reachable { path, _dir: dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_are_used_as_they_are() {
        let p = Path::new("/a/b/c");
        assert_eq!(&*reachable(p).expect("reachable"), p);
    }

    #[test]
    fn a_path_past_path_max_reaches_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut deep = dir.path().to_owned();
        // 40 levels of 250 bytes: 10,000 bytes of path.
        for i in 0..40u8 {
            deep.push(format!("{i:03}{}", "d".repeat(247)));
            std::fs::create_dir(&*reachable(&deep).expect("reachable")).expect("mkdir");
        }
        let leaf = deep.join("leaf");
        assert!(leaf.as_os_str().len() > 4096);
        assert!(std::fs::write(&leaf, b"x").is_err(), "the kernel took the whole path");
        let reached = reachable(&leaf).expect("reachable");
        assert!(reached.as_os_str().len() <= LIMIT + 32, "{}", reached.display());
        std::fs::write(&*reached, b"at the bottom").expect("write");
        drop(reached);
        let again = reachable(&leaf).expect("reachable");
        assert_eq!(std::fs::read(&*again).expect("read"), b"at the bottom");
        assert!(std::fs::symlink_metadata(&*again).expect("lstat").is_file());
        let missing = deep.join("no/such/dir").join("d".repeat(250)).join("f");
        assert!(reachable(&missing.join("x".repeat(LIMIT))).is_err());
    }
}
