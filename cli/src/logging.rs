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

/// The `error:` line of `err`: its cause chain joined by `: `, leaving out
/// a cause whose text is already in the line (an I/O error wrapped and
/// quoted by the library), on one line.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if line.is_empty() {
            line = cause;
        } else if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    // One line, and nothing a terminal would act on (a name or revision
    // given with control characters is shown escaped).
    line.chars()
        .map(|c| match c {
            '\n' => " ".to_owned(),
            c if c.is_control() || monofs::diff::is_hidden_format(c) => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Parses the command line. A usage error is reported as one `error:` line
/// and one `usage:` line (clap's own report spreads it over a paragraph),
/// exit status 2; `--help` and `--version` print as usual.
pub fn parse_args<P: clap::Parser>() -> Result<P, std::process::ExitCode> {
    use clap::error::ErrorKind;
    P::try_parse().map_err(|e| {
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            e.exit();
        }
        let _ = std::io::stderr().lock().write_all(one_line_usage_error(&e.render().to_string()).as_bytes());
        std::process::ExitCode::from(2)
    })
}

/// clap's usage report, `error: ...` paragraph, tips, `Usage: ...` line
/// and a pointer to `--help`, as an `error:` line (tips in it) and a
/// `usage:` line.
fn one_line_usage_error(report: &str) -> String {
    let joined = |paragraph: &str| paragraph.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    let mut paragraphs = report.split("\n\n").map(str::trim).filter(|p| !p.is_empty());
    let first = joined(paragraphs.next().unwrap_or_default());
    let mut line = first.strip_prefix("error: ").unwrap_or(&first).to_owned();
    let mut usage = String::new();
    for paragraph in paragraphs {
        if paragraph.starts_with("tip:") {
            line = format!("{line} ({})", joined(paragraph));
        } else if let Some(u) = paragraph.strip_prefix("Usage: ") {
            usage = format!("usage: {} (see --help)\n", joined(u));
        }
    }
    format!("error: {line}\n{usage}")
}

#[cfg(test)]
mod tests {
    use super::{error_line, one_line_usage_error};

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let err = anyhow::Error::new(io)
            .context("/x: No such file or directory (os error 2)")
            .context("importing /x\nfrom here");
        assert_eq!(error_line(&err), "importing /x from here: /x: No such file or directory (os error 2)");
    }

    #[test]
    fn a_usage_error_is_two_lines() {
        let report = "error: the following required arguments were not provided:\n  <REPO>\n\n\
                      Usage: monofs commit <REPO>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line_usage_error(report),
            "error: the following required arguments were not provided: <REPO>\n\
             usage: monofs commit <REPO> (see --help)\n"
        );
    }

    #[test]
    fn tips_join_the_line() {
        let report = "error: unrecognized subcommand 'comit'\n\n  tip: a similar subcommand exists: 'commit'\n\n\
                      Usage: monofs <COMMAND>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line_usage_error(report),
            "error: unrecognized subcommand 'comit' (tip: a similar subcommand exists: 'commit')\n\
             usage: monofs <COMMAND> (see --help)\n"
        );
    }
}
