//! KVM or TCG: which accelerator the guest's CPU runs on.

use std::path::Path;

/// How the guest CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's software emulation (slow, but works everywhere).
    Tcg,
}

/// What the host offers, as read by [`Host::probe`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Host {
    /// `/dev/kvm` opens read-write.
    pub kvm_usable: bool,
    /// `kvm_intel` or `kvm_amd` is loaded.
    pub kvm_module: bool,
    /// The CPU shows `vmx` or `svm`.
    pub vmx_or_svm: bool,
}

impl Host {
    /// Reads `/dev/kvm`, `/sys/module` and `/proc/cpuinfo`.
    pub fn probe() -> Host {
        let kvm_usable = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
        let kvm_module = Path::new("/sys/module/kvm_intel").exists() || Path::new("/sys/module/kvm_amd").exists();
        let vmx_or_svm = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
            s.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
        });
        Host { kvm_usable, kvm_module, vmx_or_svm }
    }
}

/// KVM when the host has real hardware virtualisation: `/dev/kvm` usable
/// and a vmx/svm CPU or a kvm_intel/kvm_amd module. A paravirtual
/// `/dev/kvm` on a CPU without either (nested cloud sandboxes, this build
/// machine) cannot boot a stock kernel, so that gets TCG. `choice` is
/// `MONOCORE_ACCEL` (`kvm`, `tcg`); asking for KVM where there is none is an
/// error, never a quiet fallback.
pub fn decide(host: Host, choice: Option<&str>) -> Result<Accel, String> {
    match choice.filter(|c| !c.is_empty()) {
        Some("kvm") if host.kvm_usable => Ok(Accel::Kvm),
        Some("kvm") => Err("MONOCORE_ACCEL=kvm but /dev/kvm cannot be opened read-write".into()),
        Some("tcg") => Ok(Accel::Tcg),
        Some(other) => Err(format!("MONOCORE_ACCEL={other}: expected kvm or tcg")),
        None if host.kvm_usable && (host.kvm_module || host.vmx_or_svm) => Ok(Accel::Kvm),
        None => Ok(Accel::Tcg),
    }
}

/// [`decide`] for this host and `MONOCORE_ACCEL`.
pub fn detect() -> Result<Accel, String> {
    decide(Host::probe(), std::env::var("MONOCORE_ACCEL").ok().as_deref())
}

/// The host's TSC rate in kHz, from `/proc/cpuinfo`. Under TCG the guest's
/// RDTSC reads the host's TSC, so telling the guest kernel the rate
/// (`tsc_early_khz=`) skips its PIT calibration, which fails when the
/// emulated CPU is slowed down by host load and then hangs the boot.
pub fn host_tsc_khz() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    // Only a TSC that ticks at a fixed rate says anything about the rate.
    if !flags.split_whitespace().any(|f| f == "constant_tsc") {
        return None;
    }
    let mhz: f64 = info.lines().find(|l| l.starts_with("cpu MHz"))?.split(':').nth(1)?.trim().parse().ok()?;
    (mhz > 0.0).then_some((mhz * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_only_with_real_hardware_virtualisation() {
        let paravirtual = Host { kvm_usable: true, kvm_module: false, vmx_or_svm: false };
        assert_eq!(decide(paravirtual, None), Ok(Accel::Tcg));
        let intel = Host { kvm_usable: true, kvm_module: true, vmx_or_svm: true };
        assert_eq!(decide(intel, None), Ok(Accel::Kvm));
        let flags_only = Host { kvm_usable: true, kvm_module: false, vmx_or_svm: true };
        assert_eq!(decide(flags_only, None), Ok(Accel::Kvm));
        let no_device = Host { kvm_usable: false, kvm_module: true, vmx_or_svm: true };
        assert_eq!(decide(no_device, None), Ok(Accel::Tcg));
    }

    #[test]
    fn the_override_is_obeyed_or_refused() {
        let none = Host::default();
        assert_eq!(decide(none, Some("tcg")), Ok(Accel::Tcg));
        assert!(decide(none, Some("kvm")).is_err(), "no silent fallback");
        assert!(decide(none, Some("hvf")).is_err());
        let paravirtual = Host { kvm_usable: true, ..Host::default() };
        assert_eq!(decide(paravirtual, Some("kvm")), Ok(Accel::Kvm));
        assert_eq!(decide(paravirtual, Some("")), Ok(Accel::Tcg));
    }
}
