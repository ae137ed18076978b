//! Logging of both binaries: `tracing` to stderr, filtered by an
//! environment variable (`MONOFS_LOG`, `MONOCORE_LOG`).

use std::io::Write as _;

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
        // Colours only on a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

/// Runs `main`, turning a panic (a bug, or redb meeting a damaged store
/// file, which it answers with a panic in places) into one `error:` line,
/// a hint and exit status 1, instead of a backtrace notice and 101. With
/// `RUST_BACKTRACE` set (and not 0), the default report is printed as well.
pub fn catching_panics(main: impl FnOnce() -> std::process::ExitCode) -> std::process::ExitCode {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0") {
            default(info);
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic");
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let hint = if info.location().is_some_and(|l| l.file().contains("redb-")) {
            "the repository's store file looks damaged: restore it from a replica (monofs clone) or a backup"
        } else {
            "this is a bug: please report it with the command that caused it"
        };
        let what = if what.starts_with("internal error") { what.to_owned() } else { format!("internal error: {what}") };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {what}{at}");
        let _ = writeln!(err, "hint: {hint}");
    }));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(main)).unwrap_or(std::process::ExitCode::FAILURE)
}
