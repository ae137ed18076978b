//! The QEMU `-M microvm` command line, built from a typed config.

use std::path::PathBuf;

use super::accel::Accel;

/// The guest's virtio-serial ports, in order (`nr` 1..): the command's
/// standard streams, the exit port, and the control port on which the
/// host sends signal numbers for the command (see docs/SANDBOX.md).
pub const PORTS: [&str; 5] = ["stdin", "stdout", "stderr", "exit", "signal"];

/// Everything the command line needs.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// The decompressed ELF kernel (booted through PVH).
    pub kernel: PathBuf,
    /// The generated initramfs.
    pub initrd: PathBuf,
    /// The vhost-user-fs socket (our backend listens; QEMU connects).
    pub fs_socket: PathBuf,
    /// Sockets for [`PORTS`] (we listen; QEMU connects).
    pub port_sockets: [PathBuf; 5],
    /// Serial console log (kernel messages, init failures).
    pub console_log: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// vCPUs.
    pub cpus: u32,
    /// Accelerator.
    pub accel: Accel,
    /// Host TSC rate (TCG only; see [`super::accel::host_tsc_khz`]).
    pub tsc_khz: Option<u64>,
    /// Verbose kernel and init (`MONOCORE_MICROVM_DEBUG`).
    pub debug: bool,
    /// With `-t`: the socket of the virtio console (`hvc0`, port 0; we
    /// listen, QEMU connects).
    pub tty_socket: Option<PathBuf>,
    /// Volumes: (virtio-fs tag, vhost-user socket), one device each.
    pub volumes: Vec<(String, PathBuf)>,
    /// A host tap device to give the guest as its `eth0`.
    pub tap: Option<String>,
}

impl VmConfig {
    /// The kernel command line. `-M microvm` adds `virtio_mmio.device=`
    /// entries, but Debian's kernel lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES:
    /// the transports are found through ACPI (`acpi=on`) instead.
    pub fn kernel_cmdline(&self) -> String {
        let mut v = vec![
            "console=ttyS0",
            if self.debug { "loglevel=7 monocore.debug" } else { "quiet loglevel=1" },
            // Triple-fault reboot; with -no-reboot QEMU then exits.
            "reboot=t",
            "panic=-1",
            "rdinit=/init",
            "8250.nr_uarts=1",
            "i8042.noaux i8042.nokbd i8042.nopnp i8042.dumbkbd",
            "mitigations=off",
            "random.trust_cpu=on",
            "cryptomgr.notests",
            "pci=off",
        ];
        let tsc = match (self.accel, self.tsc_khz) {
            (Accel::Tcg, Some(khz)) => format!("tsc_early_khz={khz} tsc=reliable"),
            _ => String::new(),
        };
        if !tsc.is_empty() {
            v.push(&tsc);
        }
        v.join(" ")
    }

    /// The arguments (without argv\[0\]).
    pub fn to_args(&self) -> Vec<String> {
        let mem = self.memory_mib;
        let (accel, cpu) = match self.accel {
            Accel::Kvm => ("kvm", "host"),
            // x86-64-v2 and up, which some images need.
            Accel::Tcg => ("tcg,thread=multi,tb-size=64", "max"),
        };
        let mut a: Vec<String> =
            ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-accel", accel, "-cpu", cpu]
                .map(String::from)
                .into();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
        push(&["-smp", &self.cpus.to_string(), "-m", &format!("{mem}M")]);
        // virtio-fs needs guest RAM the backend can map: a shared memfd.
        push(&["-object", &format!("memory-backend-memfd,id=mem,size={mem}M,share=on")]);
        push(&["-M", "microvm,memory-backend=mem,isa-serial=on,rtc=on,pit=on,acpi=on,x-option-roms=off"]);
        push(&["-kernel", &self.kernel.display().to_string(), "-initrd", &self.initrd.display().to_string()]);
        push(&["-append", &self.kernel_cmdline()]);
        push(&["-serial", &format!("file:{}", self.console_log.display())]);
        push(&["-chardev", &format!("socket,id=vfs,path={}", self.fs_socket.display())]);
        push(&["-device", "vhost-user-fs-device,chardev=vfs,tag=rootfs"]);
        for (tag, socket) in &self.volumes {
            push(&["-chardev", &format!("socket,id={tag},path={}", socket.display())]);
            push(&["-device", &format!("vhost-user-fs-device,chardev={tag},tag={tag}")]);
        }
        if let Some(tap) = &self.tap {
            push(&["-netdev", &format!("tap,id=net0,ifname={tap},script=no,downscript=no")]);
            push(&["-device", "virtio-net-device,netdev=net0"]);
        }
        push(&["-device", &format!("virtio-serial-device,max_ports={}", PORTS.len() + 1)]);
        if let Some(path) = &self.tty_socket {
            // Port 0 is the console port: the guest makes it a tty (hvc0).
            push(&["-chardev", &format!("socket,id=tty,path={}", path.display())]);
            push(&["-device", "virtconsole,chardev=tty,name=tty,nr=0"]);
        }
        for (i, (name, path)) in PORTS.iter().zip(&self.port_sockets).enumerate() {
            push(&["-chardev", &format!("socket,id={name},path={}", path.display())]);
            push(&["-device", &format!("virtserialport,chardev={name},name={name},nr={}", i + 1)]);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(accel: Accel) -> VmConfig {
        VmConfig {
            kernel: "/k".into(),
            initrd: "/run/monocore/x/initrd".into(),
            fs_socket: "/run/monocore/x/fs.sock".into(),
            port_sockets: PORTS.map(|p| format!("/run/monocore/x/{p}.sock").into()),
            console_log: "/run/monocore/x/console.log".into(),
            memory_mib: 512,
            cpus: 2,
            accel,
            tsc_khz: Some(2_445_404),
            debug: false,
            tty_socket: None,
            volumes: vec![],
            tap: None,
        }
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn tcg_command_line() {
        let args = config(Accel::Tcg).to_args();
        assert_eq!(after(&args, "-accel"), ["tcg,thread=multi,tb-size=64"]);
        assert_eq!(after(&args, "-cpu"), ["max"]);
        assert_eq!(after(&args, "-smp"), ["2"]);
        assert_eq!(after(&args, "-m"), ["512M"]);
        assert_eq!(after(&args, "-object"), ["memory-backend-memfd,id=mem,size=512M,share=on"]);
        assert!(after(&args, "-M")[0].contains("memory-backend=mem") && after(&args, "-M")[0].contains("acpi=on"));
        assert_eq!(after(&args, "-kernel"), ["/k"]);
        let append = after(&args, "-append")[0];
        assert!(append.contains("tsc_early_khz=2445404 tsc=reliable") && append.contains("rdinit=/init"), "{append}");
        assert!(args.contains(&"-no-reboot".to_owned()) && args.contains(&"-nodefaults".to_owned()));
        let devices = after(&args, "-device");
        assert!(devices.contains(&"virtio-serial-device,max_ports=6"), "{devices:?}");
        assert!(devices.contains(&"virtserialport,chardev=exit,name=exit,nr=4"), "{devices:?}");
        assert_eq!(devices.last().copied(), Some("virtserialport,chardev=signal,name=signal,nr=5"));
        assert_eq!(after(&args, "-chardev")[0], "socket,id=vfs,path=/run/monocore/x/fs.sock");
        assert_eq!(after(&args, "-chardev").len(), 6);
    }

    #[test]
    fn terminal_volumes_and_network_devices() {
        let mut c = config(Accel::Tcg);
        c.tty_socket = Some("/r/tty.sock".into());
        c.volumes = vec![("vol0".into(), "/r/vol0.sock".into())];
        c.tap = Some("mcabc".into());
        let args = c.to_args();
        let devices = after(&args, "-device");
        assert!(devices.contains(&"virtconsole,chardev=tty,name=tty,nr=0"), "{devices:?}");
        assert!(devices.contains(&"vhost-user-fs-device,chardev=vol0,tag=vol0"), "{devices:?}");
        assert!(devices.contains(&"virtio-net-device,netdev=net0"), "{devices:?}");
        assert_eq!(after(&args, "-netdev"), ["tap,id=net0,ifname=mcabc,script=no,downscript=no"]);
        let chardevs = after(&args, "-chardev");
        assert!(chardevs.contains(&"socket,id=tty,path=/r/tty.sock") && chardevs.len() == 8, "{chardevs:?}");
    }

    #[test]
    fn kvm_uses_the_host_cpu_and_its_own_clock() {
        let args = config(Accel::Kvm).to_args();
        assert_eq!(after(&args, "-accel"), ["kvm"]);
        assert_eq!(after(&args, "-cpu"), ["host"]);
        assert!(!after(&args, "-append")[0].contains("tsc"));
    }
}
