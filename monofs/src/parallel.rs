//! The thread pool for work that mixes file I/O with hashing and
//! compression.
//!
//! A thread blocked in `read(2)` on a cold page cache, or on a full write
//! queue, does no CPU work; with one thread per core that idles a core. Twice
//! as many threads as cores keeps the CPUs busy while some threads wait.

use std::sync::OnceLock;

/// The stack of threads that walk directory trees a call per level (the
/// scan and store of a commit, a restore): about 4.5 KiB a level,
/// so 2 MiB (a spawned thread's default) ended a commit 460 levels deep.
/// 64 MiB holds 14,000 levels, beyond the 2,048 that PATH_MAX lets a path
/// on disk have; it is address space, taken only as it is used.
pub const DEEP_STACK: usize = 64 << 20;

/// Keeps signals sent to the process (Ctrl-C, `kill`, a terminal's
/// resize) off this thread, for the thread that handles them: a process
/// whose main thread blocks them to wait for them (a mount, a sandbox's
/// supervisor) was killed by one delivered to a pool thread started
/// earlier, which had them at their default action.
fn block_process_signals() {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in PROCESS_SIGNALS {
        set.add(s);
    }
    let _ = set.thread_block();
}

/// The signals a program is sent to be told something (to stop, to reload,
/// that its terminal changed), as opposed to those the kernel sends a
/// thread for its own doing (SIGSEGV, SIGPIPE).
pub const PROCESS_SIGNALS: [nix::sys::signal::Signal; 12] = {
    use nix::sys::signal::Signal;
    [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCONT,
        Signal::SIGALRM,
        Signal::SIGPWR,
        Signal::SIGVTALRM,
        Signal::SIGPROF,
    ]
};

/// The shared pool (built on first use).
pub fn io_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores * 2).max(4))
            .thread_name(|i| format!("monofs-io-{i}"))
            .stack_size(DEEP_STACK)
            .start_handler(|_| block_process_signals())
            .build()
            .unwrap_or_else(|_| rayon::ThreadPoolBuilder::new().build().expect("a default rayon pool"))
    })
}

#[cfg(test)]
mod tests {
    /// Work on the pool never takes a signal sent to the process.
    #[test]
    fn pool_threads_block_process_signals() {
        let mask = super::io_pool().install(|| nix::sys::signal::SigSet::thread_get_mask().expect("mask"));
        for s in super::PROCESS_SIGNALS {
            assert!(mask.contains(s), "{s} reaches a pool thread");
        }
    }
}
