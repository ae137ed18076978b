//! The guest kernel: Debian's `linux-image-amd64` (`/boot/vmlinuz-V` with
//! its modules in `/lib/modules/V`), and the virtio modules it needs, in
//! load order.
//!
//! The bzImage is xz-compressed; decompressing it inside a TCG guest costs
//! about 3.5 s, so its payload is decompressed once on the host into an ELF
//! `vmlinux`, cached, and booted through its PVH entry point (QEMU loads an
//! ELF kernel with a Xen PVH note directly; Debian has `CONFIG_PVH=y`).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A guest kernel and its modules directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The bzImage (`ROOT/boot/vmlinuz-VERSION`).
    pub image: PathBuf,
    /// `ROOT/lib/modules/VERSION`.
    pub modules: PathBuf,
    /// VERSION.
    pub version: String,
}

/// Why there is no guest kernel, with the fix.
pub const NO_KERNEL: &str =
    "no guest kernel: need /boot/vmlinuz-* with /lib/modules/*/modules.dep (apt-get install linux-image-amd64)";

impl Kernel {
    /// The newest `ROOT/boot/vmlinuz-*` with a matching
    /// `ROOT/lib/modules/*/modules.dep`. Not `uname -r`: the host may run
    /// another kernel than the one installed for guests.
    pub fn find(root: &Path) -> Option<Kernel> {
        let boot = root.join("boot");
        let mut found: Vec<Kernel> = std::fs::read_dir(&boot)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let version = name.strip_prefix("vmlinuz-")?.to_owned();
                let modules = root.join("lib/modules").join(&version);
                modules.join("modules.dep").is_file().then(|| Kernel { image: boot.join(&name), modules, version })
            })
            .collect();
        found.sort_by_key(|k| version_key(&k.version));
        found.pop()
    }

    /// Module files (relative to the modules directory) for `names` and
    /// what they depend on, dependencies first; built-in ones are skipped.
    pub fn module_order(&self, names: &[&str]) -> Result<Vec<String>> {
        let read = |f: &str| {
            let p = self.modules.join(f);
            std::fs::read_to_string(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))
        };
        let dep = read("modules.dep")?;
        let builtin = read("modules.builtin").unwrap_or_default();
        module_order(&dep, &builtin, names).map_err(|m| Error::RuntimeUnavailable {
            runtime: "microvm".into(),
            why: format!("kernel {} has no module {m}", self.version),
        })
    }
}

/// [`Kernel::module_order`] over the texts of `modules.dep` and
/// `modules.builtin`; the error is the missing module.
pub fn module_order(dep: &str, builtin: &str, names: &[&str]) -> std::result::Result<Vec<String>, String> {
    let mut deps: HashMap<String, (&str, Vec<&str>)> = HashMap::new();
    for line in dep.lines() {
        let Some((path, rest)) = line.split_once(':') else { continue };
        deps.insert(module_name(path), (path, rest.split_whitespace().collect()));
    }
    let builtin: Vec<String> = builtin.lines().map(module_name).collect();
    let mut order: Vec<String> = Vec::new();
    for name in names {
        let name = name.replace('-', "_");
        if builtin.contains(&name) {
            continue;
        }
        let (path, list) = deps.get(&name).ok_or_else(|| name.clone())?;
        // modules.dep lists the whole closure, deepest last: load it reversed.
        for d in list.iter().rev().chain(std::iter::once(path)) {
            if !order.iter().any(|o| o == d) {
                order.push((*d).to_owned());
            }
        }
    }
    Ok(order)
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok()).collect()
}

fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split(".ko").next().unwrap_or(base).replace('-', "_")
}

/// The ELF kernel inside `bzimage` (xz, zstd or gzip payload), or `None`.
pub fn extract_vmlinux(bzimage: &[u8]) -> Option<Vec<u8>> {
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    const ZSTD: &[u8] = b"\x28\xb5\x2f\xfd";
    const GZIP: &[u8] = b"\x1f\x8b\x08";
    let find = |m: &[u8]| bzimage.windows(m.len()).position(|w| w == m);
    let mut found: Vec<(usize, &[u8])> = [XZ, ZSTD, GZIP].iter().filter_map(|m| find(m).map(|p| (p, *m))).collect();
    found.sort();
    found.into_iter().find_map(|(pos, magic)| {
        let data = &bzimage[pos..];
        let mut out = Vec::new();
        let ok = match magic {
            XZ => xz_single_stream(data, &mut out),
            ZSTD => zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out)).is_ok(),
            _ => flate2::read::GzDecoder::new(data).read_to_end(&mut out).is_ok(),
        };
        (ok && out.starts_with(b"\x7fELF")).then_some(out)
    })
}

/// Decodes one xz stream at the start of `data`. The kernel's stream uses
/// the x86 BCJ filter (liblzma handles it), and the bzImage's trailer after
/// the stream must not reach the decoder, so liblzma is driven until
/// `StreamEnd` rather than read to the end.
fn xz_single_stream(mut data: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(mut s) = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0) else { return false };
    out.reserve(data.len() * 8);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.len().max(1 << 20));
        }
        let before = s.total_in();
        let Ok(status) = s.process_vec(data, out, xz2::stream::Action::Run) else { return false };
        data = &data[(s.total_in() - before) as usize..];
        match status {
            xz2::stream::Status::StreamEnd => return true,
            _ if data.is_empty() && out.len() < out.capacity() => return false,
            _ => {}
        }
    }
}

/// The decompressed kernel of `kernel` in `cache`, made on first use (about
/// 1 s and 66 MB for Debian 12's).
pub fn cached_vmlinux(kernel: &Kernel, cache: &Path) -> Result<PathBuf> {
    let io = |what: String| move |e| Error::io(what, e);
    let meta = std::fs::metadata(&kernel.image).map_err(io(format!("reading {}", kernel.image.display())))?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    let path = cache.join(format!("vmlinux-{}-{}-{mtime}", kernel.version, meta.len()));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache).map_err(io(format!("creating {}", cache.display())))?;
    let image = std::fs::read(&kernel.image).map_err(io(format!("reading {}", kernel.image.display())))?;
    let elf = extract_vmlinux(&image).ok_or_else(|| Error::RuntimeUnavailable {
        runtime: "microvm".into(),
        why: format!("{}: no xz, zstd or gzip ELF payload in it", kernel.image.display()),
    })?;
    // Concurrent first runs each write their own file; the rename is atomic.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, elf).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str =
        "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fuse/fuse.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
";

    #[test]
    fn modules_load_after_what_they_need_once_each() {
        let order = module_order(DEP, "", &["virtio_mmio", "virtiofs", "virtio_console"]).expect("order");
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_mmio.ko",
                "kernel/fs/fuse/fuse.ko",
                "kernel/fs/fuse/virtiofs.ko",
                "kernel/drivers/char/virtio_console.ko",
            ]
        );
        let builtin = "kernel/drivers/virtio/virtio_mmio.ko\n";
        assert_eq!(module_order(DEP, builtin, &["virtio-mmio"]).expect("builtin"), Vec::<String>::new());
        assert_eq!(module_order(DEP, "", &["virtio_pci"]), Err("virtio_pci".into()));
    }

    #[test]
    fn the_newest_kernel_with_modules_is_found() {
        let root = tempfile::tempdir().expect("tempdir");
        let boot = root.path().join("boot");
        std::fs::create_dir_all(&boot).expect("boot");
        for v in ["6.1.0-9-amd64", "6.1.0-10-amd64", "6.2.0-1-amd64"] {
            std::fs::write(boot.join(format!("vmlinuz-{v}")), "k").expect("image");
        }
        assert_eq!(Kernel::find(root.path()), None, "no modules, no kernel");
        for v in ["6.1.0-9-amd64", "6.1.0-10-amd64"] {
            let m = root.path().join("lib/modules").join(v);
            std::fs::create_dir_all(&m).expect("modules");
            std::fs::write(m.join("modules.dep"), DEP).expect("dep");
        }
        let k = Kernel::find(root.path()).expect("kernel");
        assert_eq!(k.version, "6.1.0-10-amd64", "numeric order, and only with modules");
        assert_eq!(k.module_order(&["virtiofs"]).expect("order").len(), 4);
    }

    #[test]
    fn a_gzip_payload_is_found_after_the_setup_code() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"\x7fELF-the-kernel").expect("gzip");
        let mut image = b"MZ setup code \x1f\x8b not a stream".to_vec();
        image.extend(gz.finish().expect("gzip"));
        image.extend(b"trailer");
        assert_eq!(extract_vmlinux(&image).as_deref(), Some(&b"\x7fELF-the-kernel"[..]));
        assert_eq!(extract_vmlinux(b"nothing here"), None);
    }
}
