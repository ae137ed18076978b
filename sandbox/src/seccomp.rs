//! The command's system-call filter (namespace runtime), after Docker's
//! default profile: calls that reach kernel code no sandbox needs, and that
//! its dropped capabilities do not already refuse, fail with EPERM. Most of
//! all, no namespaces of its own: in a new user namespace the command would
//! have every capability again, and with them mounts and the rest of the
//! kernel's surface. `clone3` fails with ENOSYS, as with Docker, so that
//! libc falls back to `clone`, whose flags a filter can read.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Calls refused outright.
const DENIED: &[i64] = &[
    // Namespaces and mounts (also the new mount API).
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    // The kernel keyring is not namespaced.
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    // Large surfaces of their own.
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    // The host's kernel, modules, swap, accounting, logs.
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_open_by_handle_at,
    libc::SYS_lookup_dcookie,
    libc::SYS_vhangup,
];

/// Legacy calls only x86-64 has.
#[cfg(target_arch = "x86_64")]
const DENIED_LEGACY: &[i64] =
    &[libc::SYS_uselib, libc::SYS_ustat, libc::SYS_sysfs, libc::SYS__sysctl, libc::SYS_iopl, libc::SYS_ioperm];
#[cfg(not(target_arch = "x86_64"))]
const DENIED_LEGACY: &[i64] = &[];

/// `clone` flags that make namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
];

/// The bit that marks an x32 system call on x86-64.
const X32: i64 = 0x4000_0000;

/// Compiles the filter for this machine's architecture. Calls made with
/// another architecture's numbers (a 32-bit program's) kill the process:
/// seccompiler filters one architecture.
pub fn filters() -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))?;
    let compile = |rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32| -> Result<BpfProgram, String> {
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), arch)
            .map_err(|e| format!("seccomp: {e}"))?;
        filter.try_into().map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))
    };
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().chain(DENIED_LEGACY).map(|&n| (n, Vec::new())).collect();
    let mut clone_rules = Vec::new();
    for &flag in NAMESPACE_FLAGS {
        let flag = flag as u64;
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(flag), flag)
            .map_err(|e| format!("seccomp: {e}"))?;
        clone_rules.push(SeccompRule::new(vec![cond]).map_err(|e| format!("seccomp: {e}"))?);
    }
    denied.insert(libc::SYS_clone, clone_rules);
    // The same calls by the x32 ABI's numbers (the x86-64 ones with a high
    // bit set, on kernels that take them), which would go around the list.
    if std::env::consts::ARCH == "x86_64" {
        let x32: Vec<(i64, Vec<SeccompRule>)> = denied.iter().map(|(n, r)| (n | X32, r.clone())).collect();
        denied.extend(x32);
    }
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new()), (libc::SYS_clone3 | X32, Vec::new())]);
    Ok(vec![compile(denied, libc::EPERM)?, compile(clone3, libc::ENOSYS)?])
}

/// Installs `filters` on this thread (and what it executes); needs
/// `no_new_privs`.
pub fn apply(filters: &[BpfProgram]) -> Result<(), String> {
    for f in filters {
        seccompiler::apply_filter(f).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_machine() {
        let filters = filters().expect("compile");
        assert_eq!(filters.len(), 2);
        assert!(filters.iter().all(|f| !f.is_empty()));
    }
}
