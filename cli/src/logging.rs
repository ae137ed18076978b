//! Logging of both binaries: `tracing` to stderr, filtered by an
//! environment variable (`MONOFS_LOG`, `MONOCORE_LOG`).

/// Logs to stderr what the filter in `var` lets through (`default` when
/// unset or unreadable).
pub fn init(var: &str, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(var)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A log that cannot be written (its disk full, `2>/dev/full`) is
        // lost, not fatal: the default reports it with eprintln!, which
        // panics, and a mount process must not die for a log line.
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}
