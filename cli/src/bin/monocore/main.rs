//! The `monocore` command: OCI images as monofs trees (pull, import,
//! images, rmi, unpack) and throwaway sandboxes of them (tmp, ps, stop,
//! clean, diff), a thin layer over `monofs-overlay` and `monocore-sandbox`.

mod args;
mod commands;
#[path = "../../logging.rs"]
mod logging;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A namespace sandbox's init is this binary, started by `monocore tmp`.
    if std::env::args_os().nth(1).is_some_and(|a| a == monocore_sandbox::init::INIT_ARG) {
        monocore_sandbox::init::main();
    }
    logging::init("MONOCORE_LOG", "warn");
    logging::catching_panics(|| {
        let cli = match logging::parse_args::<args::Cli>() {
            Ok(cli) => cli,
            Err(code) => return code,
        };
        match commands::run(cli) {
            Ok(code) => code,
            Err(err) => {
                report(&err);
                ExitCode::FAILURE
            }
        }
    })
}

/// One `error:` line with the whole cause chain, then a hint if the library
/// has one.
fn report(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", logging::error_line(err));
    let hint = err
        .chain()
        .find_map(|e| e.downcast_ref::<monofs_overlay::Error>())
        .and_then(monofs_overlay::Error::hint)
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<monofs::Error>()).and_then(monofs::Error::hint))
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<monocore_sandbox::Error>())
                .and_then(monocore_sandbox::Error::hint)
        });
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}
