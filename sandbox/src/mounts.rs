//! The sandbox's view of the file system, built inside its mount namespace
//! by its init: the monofs root, a fresh `/proc`, read-only `/sys`, a
//! minimal `/dev`, the `-v` volumes, then `pivot_root` so the host's tree
//! is gone.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::fstat;
use nix::sys::statvfs::{FsFlags, statvfs};
use std::os::fd::OwnedFd;

use crate::spec::{GivenFile, Volume};

/// Host device nodes bound into the sandbox's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks of a standard `/dev`.
const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Most symlinks followed while resolving one path in the sandbox's root.
const MAX_LINKS: usize = 40;

type Result<T> = std::result::Result<T, String>;

fn mnt(source: Option<&Path>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    mount(source, target, fstype, flags, data).map_err(|e| format!("mounting {}: {e}", target.display()))
}

/// Resolves `guest` (absolute) inside `root` as the sandbox will see it:
/// symlinks are followed relative to `root`, `..` stops at `root`, so an
/// image's symlink can never point a mount at a host path.
pub fn resolve_in_root(root: &Path, guest: &str) -> Result<PathBuf> {
    let mut pending: Vec<String> = guest.split('/').filter(|c| !c.is_empty()).map(str::to_owned).rev().collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let host = root.join(resolved.join("/")).join(&c);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!("{guest}: too many levels of symbolic links"));
                }
                let target = fs::read_link(&host).map_err(|e| format!("{}: {e}", host.display()))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for part in target.components().rev() {
                    if let Component::Normal(p) = part {
                        pending.push(p.to_string_lossy().into_owned());
                    } else if part == Component::ParentDir {
                        pending.push("..".into());
                    }
                }
            }
            _ => resolved.push(c),
        }
    }
    Ok(root.join(resolved.join("/")))
}

fn ensure_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

fn ensure_file(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    if fs::symlink_metadata(path).is_err() {
        fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Flags of the mount holding `path` that a bind remount inside a user
/// namespace must keep (the kernel refuses to clear them).
fn locked_flags(path: &Path) -> MsFlags {
    let mut flags = MsFlags::empty();
    if let Ok(st) = statvfs(path) {
        let f = st.flags();
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs_flag) {
                flags |= ms_flag;
            }
        }
    }
    flags
}

fn bind(source: &Path, target: &Path, read_only: bool) -> Result<()> {
    mnt(Some(source), target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(source);
        mnt(None, target, None, flags, None)?;
    }
    Ok(())
}

/// Binds host path `source` on `target` (created as a directory or file to
/// match), read-only if asked; used by the supervisor in the host's mount
/// namespace.
pub fn bind_host(source: &Path, target: &Path, read_only: bool) -> Result<()> {
    if source.is_dir() {
        ensure_dir(target)?
    } else {
        ensure_file(target)?
    }
    bind(source, target, read_only)
}

fn mount_dev(root: &Path) -> Result<()> {
    let dev = resolve_in_root(root, "/dev")?;
    ensure_dir(&dev)?;
    mnt(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let target = dev.join(name);
        ensure_file(&target)?;
        bind(&Path::new("/dev").join(name), &target, false)?;
    }
    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    mnt(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    mnt(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    for (name, target) in DEV_LINKS {
        symlink(target, dev.join(name)).map_err(|e| format!("creating /dev/{name}: {e}"))?;
    }
    Ok(())
}

fn mount_sys(root: &Path) -> Result<()> {
    let sys = resolve_in_root(root, "/sys")?;
    ensure_dir(&sys)?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if mount(Some("sysfs"), &sys, Some("sysfs"), flags, None::<&str>).is_ok() {
        return Ok(());
    }
    // A fresh sysfs needs a network namespace of our own and a fully visible
    // host /sys; otherwise a read-only bind of the host's.
    bind(Path::new("/sys"), &sys, true)
}

/// Builds the sandbox's mounts under `root` (the monofs tree) and makes it
/// the root directory of this mount namespace.
pub fn enter(root: &Path, volumes: &[Volume], trees: &[OwnedFd], files: &[GivenFile]) -> Result<()> {
    // Nothing done here may propagate back to the host.
    mnt(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    // pivot_root wants a mount of this namespace's own as the new root, not
    // one it inherited locked from the host's.
    mnt(Some(root), root, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    let proc = resolve_in_root(root, "/proc")?;
    ensure_dir(&proc)?;
    mnt(
        Some(Path::new("proc")),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    mount_sys(root)?;
    mount_dev(root)?;
    // Volumes arrive as detached mounts the supervisor prepared.
    for (v, tree) in volumes.iter().zip(trees) {
        let target = resolve_in_root(root, &v.guest)?;
        let is_dir = fstat(tree).map(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR).unwrap_or(true);
        match fs::symlink_metadata(&target).map(|m| m.is_dir()) {
            Ok(false) if is_dir => return Err(format!("volume {}: a directory, where the image has a file", v.guest)),
            Ok(true) if !is_dir => return Err(format!("volume {}: a file, where the image has a directory", v.guest)),
            _ => {}
        }
        if is_dir {
            ensure_dir(&target)?
        } else {
            ensure_file(&target)?
        }
        crate::sys::attach_mount(tree, &target).map_err(|e| format!("volume {}: {e}", v.guest))?;
    }
    for f in files {
        let Some(host) = &f.host else { return Err(format!("{}: not prepared by the runtime", f.path)) };
        let target = resolve_in_root(root, &f.path)?;
        ensure_file(&target)?;
        bind(host, &target, true)?;
    }
    std::env::set_current_dir(root).map_err(|e| format!("entering {}: {e}", root.display()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    // The old root now sits on top of the new one: detach it and all its mounts.
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the host's root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("real/inner")).expect("mkdir");
        symlink("/real", root.join("abs")).expect("symlink");
        symlink("../../../../etc", root.join("real/escape")).expect("symlink");
        symlink("loop", root.join("loop")).expect("symlink");
        assert_eq!(resolve_in_root(root, "/abs/inner").ok(), Some(root.join("real/inner")));
        assert_eq!(resolve_in_root(root, "/real/escape/passwd").ok(), Some(root.join("etc/passwd")));
        assert_eq!(resolve_in_root(root, "/../../x").ok(), Some(root.join("x")));
        assert_eq!(resolve_in_root(root, "/new/dir").ok(), Some(root.join("new/dir")));
        assert!(resolve_in_root(root, "/loop").is_err());
    }
}
