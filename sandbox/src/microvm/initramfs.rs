//! The guest's initramfs, generated per run: a cpio "newc" archive with a
//! static busybox, the kernel modules needed to reach the virtio-fs root
//! (in dependency order), a shell `/init` that mounts the root and runs the
//! command, and `setids`, a tiny static program that drops to the
//! command's user.
//!
//! Two concatenated archives (the kernel unpacks both): a base part that
//! depends only on the kernel and busybox, and a small per-run part with
//! `/run.sh` (the command line, its environment and working directory) and
//! `setids`.

use std::net::Ipv4Addr;
use std::path::Path;

use super::kernel::Kernel;
use crate::error::{Error, Result};

/// Modules the guest loads, by name (their dependencies are added):
/// `virtio_mmio` for `-M microvm`'s transports, `virtiofs` for the root,
/// `virtio_console` for the stdio and exit ports and the terminal,
/// `virtio_net` for network scopes (loaded always: the base archive does
/// not depend on the run).
pub const MODULES: &[&str] = &["virtio_mmio", "virtiofs", "virtio_console", "virtio_net"];

/// Where the guest finds busybox and `setids` after `chroot` (on the
/// guest's devtmpfs, outside the sandbox's tree).
const TOOLS: &str = "/dev/.monocore";

/// A cpio newc writer.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn header(&mut self, name: &str, mode: u32, size: usize, rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [self.ino, mode, 0, 0, 1, 0, size as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad(4);
    }

    fn pad(&mut self, to: usize) {
        self.buf.resize(self.buf.len().next_multiple_of(to), 0);
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) {
        self.header(name, 0o040755, 0, (0, 0));
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.header(name, 0o100000 | perm, data.len(), (0, 0));
        self.buf.extend_from_slice(data);
        self.pad(4);
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.header(name, 0o120777, target.len(), (0, 0));
        self.buf.extend_from_slice(target.as_bytes());
        self.pad(4);
    }

    /// Adds a character device node.
    pub fn chardev(&mut self, name: &str, major: u32, minor: u32) {
        self.header(name, 0o020600, 0, (major, minor));
    }

    /// Ends the archive, padded so that another can follow.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, (0, 0));
        self.pad(512);
        self.buf
    }
}

/// The part of `/init` that supervises the command, which `/run.sh`
/// started in the background (`CMD=$!`): signal numbers read from the
/// control port (`$PORT_signal`, one per line) are sent to the command,
/// and `winch ROWS COLS` lines resize its terminal (`$TTY`, with `-t`; the
/// kernel then sends SIGWINCH to its foreground process group); init
/// waits for it; meanwhile ash's `wait` reaps every child of pid 1, so
/// orphans do not pile up. `$?` is then the command's status, 128+N when
/// signal N killed it.
macro_rules! supervise {
    () => {
        r#"( while read -r s r c; do case $s in
  winch) [ -n "$TTY" ] && $B stty rows "$r" cols "$c" <$TTY 2>/dev/null;;
  ''|*[!0-9]*) ;;
  *) kill -$s $CMD 2>/dev/null;;
esac; done <$PORT_signal ) &
wait $CMD
"#
    };
}

/// [`INIT`]'s supervising part, on its own (for tests).
pub const SUPERVISE: &str = supervise!();

/// The guest's `/init` (busybox sh). It sources `/run.sh`, which starts the
/// command, then supervises it ([`SUPERVISE`]); see docs/SANDBOX.md for the
/// steps and the ports protocol.
pub const INIT: &str = concat!(
    r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t devtmpfs dev /dev
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
case " $($B cat /proc/cmdline) " in *" monocore.debug "*) DEBUG=1;; esac
fail() {
  echo "monocore-init: $*" >/dev/console
  if [ -n "$DEBUG" ]; then $B ls -l /sys/bus/virtio/devices/ /dev; $B dmesg | $B tail -40; fi >/dev/console 2>&1
  [ -c "$PORT_exit" ] && echo "init:$*" >$PORT_exit
  $B reboot -f
}
for m in $($B cat /modules.order); do $B insmod /lib/modules/$m || fail "insmod $m"; done
$B ip link set lo up
$B mount -t virtiofs rootfs /newroot || fail "cannot mount the virtio-fs root"
for d in proc sys dev; do [ -d /newroot/$d ] || $B mkdir -p /newroot/$d; done
$B mount -t proc proc /newroot/proc
$B mount -t sysfs -o ro sys /newroot/sys
$B mount -t devtmpfs dev /newroot/dev
$B mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/dev/.monocore
$B mount -t devpts devpts /newroot/dev/pts
$B mount -t tmpfs shm /newroot/dev/shm
$B cp /bin/busybox /setids /newroot/dev/.monocore/
# Ports by name: their numbering depends on the device index, and there is
# no udev to make /dev/virtio-ports/NAME.
n=0; while { [ -z "$PORT_exit" ] || [ -z "$PORT_signal" ]; } && [ $n -lt 400 ]; do
  for p in /sys/class/virtio-ports/*; do [ -e "$p/name" ] && eval "PORT_$($B cat $p/name)=/dev/${p##*/}"; done
  [ -n "$PORT_exit" ] && [ -n "$PORT_signal" ] || $B usleep 5000; n=$((n+1))
done
for p in "$PORT_stdin" "$PORT_stdout" "$PORT_stderr" "$PORT_exit" "$PORT_signal"; do [ -c "$p" ] || fail "no virtio port $p"; done
. /run.sh
"#,
    supervise!(),
    r#"echo "exit:$?" >$PORT_exit
$B sync
$B reboot -f
"#
);

/// Quotes `s` for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What the guest runs, resolved on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestCommand {
    /// argv; `argv[0]` is absolute when the host found it in the image.
    pub argv: Vec<String>,
    /// The command's whole environment (`NAME=value`).
    pub env: Vec<String>,
    /// Working directory (created when missing, as Docker does).
    pub workdir: String,
    /// Host name.
    pub hostname: String,
    /// With `-t`: the terminal's size (rows, columns); the command runs on
    /// the virtio console `/dev/hvc0` as its controlling terminal.
    pub tty: Option<(u16, u16)>,
    /// Volumes: virtio-fs tags mounted at guest paths.
    pub volumes: Vec<GuestVolume>,
    /// Files bound over guest paths (`/etc/resolv.conf`); their contents
    /// travel in the per-run archive.
    pub files: Vec<(String, String)>,
    /// The guest's address (a /30) and gateway on `eth0`; `None`: loopback only.
    pub network: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// A volume as the guest mounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestVolume {
    /// The virtio-fs tag (`vol0`, ...).
    pub tag: String,
    /// Absolute path inside the sandbox.
    pub path: String,
    /// Mounted read-only (the backend refuses writes too).
    pub read_only: bool,
}

/// Runs as the command's user, in the sandbox's root: enters the working
/// directory (`$0`), looks the program up in `PATH` itself (busybox's
/// shell would prefer its own applets to the image's programs) and execs
/// it. 126: the directory cannot be entered or the program not run; 127:
/// no such program.
const EXEC: &str = r#"cd "$0" || exit 126
case $1 in */*) exec "$@";; esac
p=$1; shift; IFS=:
for d in ${PATH-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}; do
  [ -f "${d:-.}/$p" ] && [ -x "${d:-.}/$p" ] && exec "${d:-.}/$p" "$@"
done
echo "monocore: $p: not found in PATH" >&2; exit 127"#;

/// Waits up to 2 s for `$1` (a test) on `$2`, else fails with `$3`.
const WAIT: &str = r#"wait_for() { n=0; while ! [ $1 $2 ] && [ $n -lt 400 ]; do $B usleep 5000; n=$((n+1)); done; [ $1 $2 ] || fail "$3"; }
"#;

/// The per-run script, sourced by `/init`: the network, the given files
/// and the volumes are set up, then the command runs chrooted in the
/// sandbox's tree with exactly its environment, as its user (`setids`), in
/// its working directory, with the stdio ports (or, with `-t`, the virtio
/// console as its controlling terminal) as its standard streams, in the
/// background: its pid is left in `$CMD` for init.
pub fn run_script(cmd: &GuestCommand) -> String {
    let bb = format!("{TOOLS}/busybox");
    let inside = format!("$B chroot /newroot {bb}");
    let mut s = String::from(WAIT);
    s.push_str(&format!("$B hostname {}\n", sh_quote(&cmd.hostname)));
    if let Some((addr, gateway)) = cmd.network {
        s.push_str("wait_for -e /sys/class/net/eth0 \"no network device eth0\"\n");
        s.push_str(&format!(
            "{{ $B ip addr add {addr}/30 dev eth0 && $B ip link set eth0 up && $B ip route add default via {gateway}; }} || fail \"cannot configure eth0\"\n"
        ));
    }
    for (i, (path, _)) in cmd.files.iter().enumerate() {
        // Bound inside the chroot, so the path resolves in the sandbox's tree.
        let (q, src) = (sh_quote(path), format!("{TOOLS}/file{i}"));
        s.push_str(&format!("$B cp /files/{i} /newroot{src}\n"));
        s.push_str(&format!(
            "{inside} sh -c 'mkdir -p \"${{1%/*}}\" && {{ [ -e \"$1\" ] || : >\"$1\"; }}' - {q} && {inside} mount --bind {src} {q} || fail {}\n",
            sh_quote(&format!("cannot bind {path}"))
        ));
    }
    for v in &cmd.volumes {
        let q = sh_quote(&v.path);
        let ro = if v.read_only { " -o ro" } else { "" };
        s.push_str(&format!(
            "{inside} mkdir -p {q} && {inside} mount -t virtiofs{ro} {} {q} || fail {}\n",
            v.tag,
            sh_quote(&format!("cannot mount volume {}", v.path))
        ));
    }
    s.push_str(&format!("{inside} mkdir -p {} 2>/dev/null\n", sh_quote(&cmd.workdir)));
    let mut run = String::new();
    if let Some((rows, cols)) = cmd.tty {
        // The console stays open in init (fd 3): its input typed before the
        // command starts is kept, and its size set once holds.
        s.push_str("wait_for -c /dev/hvc0 \"no virtio console\"\n");
        s.push_str(&format!("exec 3<>/dev/hvc0\nTTY=/dev/hvc0\n$B stty rows {rows} cols {cols} <&3\n"));
        run.push_str("$B setsid -c ");
    }
    run.push_str(&format!("{inside} env -i"));
    for e in &cmd.env {
        run.push(' ');
        run.push_str(&sh_quote(e));
    }
    run.push_str(&format!(" {TOOLS}/setids {bb} sh -c {} {}", sh_quote(EXEC), sh_quote(&cmd.workdir)));
    for a in &cmd.argv {
        run.push(' ');
        run.push_str(&sh_quote(a));
    }
    // In the background, for init to supervise ([`SUPERVISE`]).
    if cmd.tty.is_some() {
        run.push_str(" <&3 >&3 2>&3 3<&- &\nCMD=$!\n");
    } else {
        run.push_str(" <$PORT_stdin >$PORT_stdout 2>$PORT_stderr &\nCMD=$!\n");
    }
    s.push_str(&run);
    s
}

/// The base archive: busybox, the modules, `/init`.
pub fn base_archive(kernel: &Kernel, busybox: &Path) -> Result<Vec<u8>> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        c.dir(d);
    }
    c.chardev("dev/console", 5, 1);
    let bb = std::fs::read(busybox).map_err(|e| Error::io(format!("reading {}", busybox.display()), e))?;
    c.file("bin/busybox", 0o755, &bb);
    c.symlink("bin/sh", "busybox");
    let order = kernel.module_order(MODULES)?;
    let mut made = std::collections::HashSet::new();
    for m in &order {
        let mut prefix = String::from("lib/modules");
        let parts: Vec<&str> = m.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            prefix = format!("{prefix}/{p}");
            if made.insert(prefix.clone()) {
                c.dir(&prefix);
            }
        }
        let path = kernel.modules.join(m);
        let data = std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        c.file(&format!("lib/modules/{m}"), 0o644, &data);
    }
    c.file("modules.order", 0o644, (order.join("\n") + "\n").as_bytes());
    c.file("init", 0o755, INIT.as_bytes());
    Ok(c.finish())
}

/// The per-run archive: `/run.sh` and `/setids` for `uid`, `gid`, `groups`.
pub fn run_archive(cmd: &GuestCommand, uid: u32, gid: u32, groups: &[u32]) -> Vec<u8> {
    let mut c = Cpio::default();
    c.file("run.sh", 0o644, run_script(cmd).as_bytes());
    if !cmd.files.is_empty() {
        c.dir("files");
    }
    for (i, (_, contents)) in cmd.files.iter().enumerate() {
        c.file(&format!("files/{i}"), 0o644, contents.as_bytes());
    }
    c.file("setids", 0o755, &setids_elf(uid, gid, groups));
    c.finish()
}

/// A static x86-64 Linux program, `setids PROG ARGS...`, that resets
/// SIGINT and SIGQUIT to their default action and unblocks all signals,
/// calls `setgroups(groups)`, `setgid(gid)`, `setuid(uid)` and execs `PROG`
/// with `ARGS` and its environment; it exits 125 if any of that fails. The
/// ids are built in, so it parses nothing. (Debian's busybox has no applet
/// that switches to numeric ids, and the image may not have one either.)
///
/// ```text
///   for (nr, a) in (rt_sigaction, 2), (rt_sigaction, 3), (rt_sigprocmask, SIG_SETMASK):
///     mov edi, a ; lea rsi, [rip+zeros] ; xor edx, edx ; mov r10d, 8 ; mov eax, nr ; syscall
///   mov edi, len(groups) ; lea rsi, [rip+groups] ; mov eax, 116 ; syscall   setgroups
///   test rax, rax ; jnz fail
///   mov edi, gid ; mov eax, 106 ; syscall ; test rax, rax ; jnz fail       setgid
///   mov edi, uid ; mov eax, 105 ; syscall ; test rax, rax ; jnz fail       setuid
///   mov rdi, [rsp+16] ; lea rsi, [rsp+16]                                  argv[1], &argv[1]
///   mov rcx, [rsp] ; lea rdx, [rsp+rcx*8+16] ; mov eax, 59 ; syscall       envp; execve
/// fail:
///   mov edi, 125 ; mov eax, 60 ; syscall                                   exit
/// zeros: 32 bytes (SIG_DFL, no flags, empty mask)
/// groups: u32 * len
/// ```
pub fn setids_elf(uid: u32, gid: u32, groups: &[u32]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: usize = 64 + 56;
    let mut code: Vec<u8> = Vec::new();
    let mut fail_fixups = Vec::new();
    let imm = |code: &mut Vec<u8>, op: u8, v: u32| {
        code.push(op);
        code.extend_from_slice(&v.to_le_bytes());
    };
    // Default dispositions for SIGINT and SIGQUIT (a background job of a
    // shell without job control, as the command is in /init, has them
    // ignored) and an empty signal mask.
    let mut zeros_fixups = Vec::new();
    for (nr, arg) in [(13u32, 2u32), (13, 3), (14, 2)] {
        imm(&mut code, 0xBF, arg);
        code.extend_from_slice(&[0x48, 0x8D, 0x35]); // lea rsi, [rip+zeros]
        zeros_fixups.push(code.len());
        code.extend_from_slice(&[0; 4]);
        code.extend_from_slice(&[0x31, 0xD2]); // xor edx, edx
        code.extend_from_slice(&[0x41, 0xBA, 8, 0, 0, 0]); // mov r10d, 8
        imm(&mut code, 0xB8, nr);
        code.extend_from_slice(&[0x0F, 0x05]);
    }
    // setgroups
    imm(&mut code, 0xBF, groups.len() as u32);
    code.extend_from_slice(&[0x48, 0x8D, 0x35]);
    let groups_fixup = code.len();
    code.extend_from_slice(&[0; 4]);
    for (nr, arg) in [(116u32, None), (106, Some(gid)), (105, Some(uid))] {
        if let Some(a) = arg {
            imm(&mut code, 0xBF, a);
        }
        imm(&mut code, 0xB8, nr);
        code.extend_from_slice(&[0x0F, 0x05, 0x48, 0x85, 0xC0, 0x0F, 0x85]);
        fail_fixups.push(code.len());
        code.extend_from_slice(&[0; 4]);
    }
    code.extend_from_slice(&[0x48, 0x8B, 0x7C, 0x24, 0x10]); // mov rdi, [rsp+16]
    code.extend_from_slice(&[0x48, 0x8D, 0x74, 0x24, 0x10]); // lea rsi, [rsp+16]
    code.extend_from_slice(&[0x48, 0x8B, 0x0C, 0x24]); // mov rcx, [rsp]
    code.extend_from_slice(&[0x48, 0x8D, 0x54, 0xCC, 0x10]); // lea rdx, [rsp+rcx*8+16]
    imm(&mut code, 0xB8, 59);
    code.extend_from_slice(&[0x0F, 0x05]);
    let fail = code.len();
    imm(&mut code, 0xBF, 125);
    imm(&mut code, 0xB8, 60);
    code.extend_from_slice(&[0x0F, 0x05]);
    let zeros_at = code.len();
    code.extend_from_slice(&[0; 32]);
    let groups_at = code.len();
    for g in groups {
        code.extend_from_slice(&g.to_le_bytes());
    }
    let rel = |from_end: usize, to: usize| (to as i64 - from_end as i64) as i32;
    let patch = |code: &mut Vec<u8>, at: usize, v: i32| code[at..at + 4].copy_from_slice(&v.to_le_bytes());
    patch(&mut code, groups_fixup, rel(groups_fixup + 4, groups_at));
    for at in fail_fixups {
        patch(&mut code, at, rel(at + 4, fail));
    }
    for at in zeros_fixups {
        patch(&mut code, at, rel(at + 4, zeros_at));
    }

    let size = (HEADERS + code.len()) as u64;
    let mut elf = Vec::with_capacity(size as usize);
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3Eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + HEADERS as u64).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for word in [0, BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&code);
    elf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn newc_layout() {
        let mut c = Cpio::default();
        c.file("x", 0o644, b"hi");
        c.chardev("c", 5, 1);
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 512, 0);
        // header (110) + "x\0" = 112; data 2, padded to 4
        assert_eq!(&out[110..112], b"x\0");
        assert_eq!(&out[112..114], b"hi");
        let dev = &out[116..];
        assert!(dev.starts_with(b"070701"));
        let field = |i: usize| std::str::from_utf8(&dev[6 + 8 * i..14 + 8 * i]).expect("hex").to_owned();
        assert_eq!((field(1), field(9), field(10)), ("00002180".into(), "00000005".into(), "00000001".into()));
        let trailer = out.windows(10).position(|w| w == b"TRAILER!!!").expect("trailer");
        assert!(trailer > 116);
    }

    #[test]
    fn the_run_script_quotes_everything() {
        let cmd = GuestCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo 'hi'; exit 7".into()],
            env: vec!["PATH=/bin".into(), "A=b c".into()],
            workdir: "/my dir".into(),
            hostname: "abc".into(),
            tty: None,
            volumes: vec![],
            files: vec![],
            network: None,
        };
        let s = run_script(&cmd);
        assert!(s.contains("\n$B hostname 'abc'\n"), "{s}");
        assert!(!s.contains("eth0") && !s.contains("hvc0") && !s.contains("virtiofs"), "{s}");
        assert!(s.contains("mkdir -p '/my dir'"), "{s}");
        assert!(
            s.contains(" env -i 'PATH=/bin' 'A=b c' /dev/.monocore/setids /dev/.monocore/busybox sh -c 'cd"),
            "{s}"
        );
        assert!(s.contains(r"'/my dir' '/bin/sh' '-c' 'echo '\''hi'\''; exit 7' <$PORT_stdin"), "{s}");
        assert!(s.ends_with(" 2>$PORT_stderr &\nCMD=$!\n"), "{s}");
    }

    #[test]
    fn terminal_volumes_files_and_network_in_the_run_script() {
        let cmd = GuestCommand {
            argv: vec!["sh".into()],
            env: vec![],
            workdir: "/".into(),
            hostname: "h".into(),
            tty: Some((40, 120)),
            volumes: vec![GuestVolume { tag: "vol0".into(), path: "/data dir".into(), read_only: true }],
            files: vec![("/etc/resolv.conf".into(), "nameserver 1.1.1.1\n".into())],
            network: Some((Ipv4Addr::new(10, 200, 0, 2), Ipv4Addr::new(10, 200, 0, 1))),
        };
        let s = run_script(&cmd);
        assert!(s.contains("$B ip addr add 10.200.0.2/30 dev eth0 &&"), "{s}");
        assert!(s.contains("$B ip route add default via 10.200.0.1;"), "{s}");
        assert!(s.contains("mount --bind /dev/.monocore/file0 '/etc/resolv.conf'"), "{s}");
        assert!(s.contains("mount -t virtiofs -o ro vol0 '/data dir' ||"), "{s}");
        assert!(s.contains("$B stty rows 40 cols 120 <&3\n$B setsid -c $B chroot"), "{s}");
        assert!(s.ends_with("'sh' <&3 >&3 2>&3 3<&- &\nCMD=$!\n"), "{s}");
        let archive = run_archive(&cmd, 0, 0, &[]);
        assert!(archive.windows(8).any(|w| w == b"files/0\0"));
    }

    #[test]
    fn setids_is_a_small_static_elf() {
        let elf = setids_elf(1000, 100, &[100, 10]);
        assert!(elf.starts_with(b"\x7fELF\x02\x01"));
        assert!(elf.len() < 400, "{}", elf.len());
        assert_eq!(&elf[elf.len() - 8..], &[100, 0, 0, 0, 10, 0, 0, 0]);
    }

    /// Runs the program on this host (x86-64 Linux, as root: setgroups
    /// needs privilege).
    #[test]
    fn setids_switches_ids_and_execs() {
        use std::os::unix::fs::PermissionsExt;
        if !cfg!(target_arch = "x86_64") || !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP setids_switches_ids_and_execs: needs root on x86-64");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_path = dir.path().to_owned();
        std::fs::set_permissions(&dir_path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let prog = dir_path.join("setids");
        std::fs::write(&prog, setids_elf(4242, 4343, &[4343, 12])).expect("write");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = std::process::Command::new(&prog)
            .args(["/bin/sh", "-c", "echo $(id -u) $(id -g) $(id -G) $X"])
            .env("X", "kept")
            .output()
            .expect("run setids");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "4242 4343 4343 12 kept\n", "{out:?}");
        let missing = std::process::Command::new(&prog).arg("/nonexistent").status().expect("run");
        assert_eq!(missing.code(), Some(125));
        // SIGINT and SIGQUIT ignored (as in a background job of /init)
        // are back to their default actions in the program it runs.
        let ignored = |via: &str| {
            let script = format!("trap '' INT QUIT; exec {via} /bin/grep SigIgn /proc/self/status");
            let out = std::process::Command::new("/bin/sh").args(["-c", &script]).output().expect("sh");
            let line = String::from_utf8_lossy(&out.stdout).into_owned();
            let mask = line.trim().strip_prefix("SigIgn:").map(|m| u64::from_str_radix(m.trim(), 16));
            mask.and_then(|m| m.ok()).unwrap_or_else(|| panic!("{line} {out:?}")) & 0b110
        };
        assert_eq!(ignored(""), 0b110, "the shell ignores them");
        assert_eq!(ignored(&prog.display().to_string()), 0);
    }

    /// Runs [`SUPERVISE`] on this host's busybox (as the guest's /init
    /// does, with a FIFO as the control port): signals reach the command,
    /// junk is ignored, and the status is the command's (128+N when
    /// killed by signal N).
    #[test]
    fn init_relays_signals_to_the_command_and_reports_its_status() {
        use std::io::{BufRead, Read, Write};
        use std::os::fd::AsRawFd;
        let busybox = Path::new(super::super::BUSYBOX);
        if !busybox.exists() {
            eprintln!("SKIP init_relays_signals_to_the_command_and_reports_its_status: no {}", busybox.display());
            return;
        }
        let cases = [
            // A command that traps TERM (and stops its own child).
            (
                "sleep 1000 & s=$!; trap 'kill $s; echo got-term; exit 5' TERM; echo ready; wait",
                "ready\ngot-term\nexit:5\n",
            ),
            // One that does not: killed by it.
            ("echo ready; exec sleep 1000", "ready\nexit:143\n"),
        ];
        for (i, (command, want)) in cases.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let fifo = dir.path().join(format!("signal{i}"));
            let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
            assert!(made.success());
            // A terminal for `winch` lines to resize.
            let pty = nix::pty::openpty(None, None).expect("openpty");
            let tty = nix::unistd::ttyname(&pty.slave).expect("ttyname");
            let script = format!(
                "B={bb}\nTTY={}\nPORT_signal={}\n$B sh -c {} &\nCMD=$!\n{SUPERVISE}echo \"exit:$?\"\n",
                sh_quote(&tty.display().to_string()),
                sh_quote(&fifo.display().to_string()),
                sh_quote(command),
                bb = busybox.display(),
            );
            let mut init = std::process::Command::new(busybox)
                .args(["sh", "-c", &script])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("busybox sh");
            let mut out = std::io::BufReader::new(init.stdout.take().expect("stdout"));
            let mut text = String::new();
            out.read_line(&mut text).expect("read");
            assert_eq!(text, "ready\n");
            let mut port = std::fs::OpenOptions::new().write(true).open(&fifo).expect("open the control port");
            port.write_all(b"junk\n\nwinch 33 99\nwinch x\n15\n").expect("send");
            drop(port);
            out.read_to_string(&mut text).expect("read");
            assert!(init.wait().expect("wait").success());
            assert_eq!(text, want, "{command}");
            let ws = crate::sys::window_size(pty.master.as_raw_fd()).expect("window size");
            assert_eq!((ws.ws_row, ws.ws_col), (33, 99), "the winch line resized the terminal");
        }
    }
}
