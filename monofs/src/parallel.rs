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

/// The shared pool (built on first use).
pub fn io_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores * 2).max(4))
            .thread_name(|i| format!("monofs-io-{i}"))
            .stack_size(DEEP_STACK)
            .build()
            .unwrap_or_else(|_| rayon::ThreadPoolBuilder::new().build().expect("a default rayon pool"))
    })
}
