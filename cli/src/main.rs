//! The `monofs` command: a thin layer over the `monofs` library.

mod args;
mod commands;
mod control;
mod logging;
mod passphrase;
mod progress;
mod served;
mod style;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // fuser warns when its own unmount at the end of a session fails; ours
    // (detach, a signal) always came first, so it fails on every detach.
    logging::init("MONOFS_LOG", "warn,rustls_platform_verifier=off,fuser::session=error");
    logging::catching_panics(run)
}

fn run() -> ExitCode {
    let cli = match logging::parse_args::<args::Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // A mounted repository belongs to its mount process: run there.
    if let Some(repo) = cli.command.served_repo()
        && let Some(result) = control::forward(repo)
    {
        return result.unwrap_or_else(|err| {
            report(&mut std::io::stderr().lock(), &err);
            ExitCode::FAILURE
        });
    }
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    let mut ctx = commands::Ctx { out: &mut out, err: &mut err, served: None };
    match commands::run(cli.command, &mut ctx) {
        Ok(code) => code,
        Err(e) => {
            report(&mut std::io::stderr().lock(), &e);
            ExitCode::FAILURE
        }
    }
}

/// One `error:` line with the whole cause chain (see
/// [`logging::error_line`]), then a hint if the library has one.
pub fn report(to: &mut dyn Write, err: &anyhow::Error) {
    let _ = writeln!(to, "error: {}", logging::error_line(err));
    if let Some(hint) = err.chain().find_map(|e| e.downcast_ref::<monofs::Error>()).and_then(monofs::Error::hint) {
        let _ = writeln!(to, "hint: {hint}");
    }
}
