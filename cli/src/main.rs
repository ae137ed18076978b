//! The `monofs` command: a thin layer over the `monofs` library.

mod args;
mod commands;
mod passphrase;
mod progress;
mod style;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MONOFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let cli = args::Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// One `error:` line with the whole cause chain, then a hint if the library
/// has one.
fn report(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err:#}");
    if let Some(hint) = err.chain().find_map(|e| e.downcast_ref::<monofs::Error>()).and_then(monofs::Error::hint) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}
