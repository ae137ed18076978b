//! One module per subcommand.

mod clean;
mod diff;
mod images;
mod import;
mod progress;
mod ps;
mod pull;
mod rmi;
mod stop;
mod tmp;
mod unpack;

use std::process::ExitCode;

use anyhow::Context;
use monofs_overlay::ImageStore;

use crate::args::{Cli, Command};

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = cli.home.filter(|h| !h.as_os_str().is_empty()).unwrap_or_else(monofs_overlay::default_home);
    let open = || open_store(&home);
    match cli.command {
        Command::Pull(a) => pull::run(a, &mut open()?),
        Command::Import(a) => import::run(a, &mut open()?),
        Command::Images(a) => images::run(a, &open()?),
        Command::Rmi(a) => rmi::run(a, &open()?),
        Command::Unpack(a) => unpack::run(a, &mut open()?),
        Command::Tmp(a) => tmp::run(*a, &home),
        Command::Diff(a) => diff::run(a, &open()?),
        // These work while a sandbox holds the image store.
        Command::Ps(a) => ps::run(a, &home),
        Command::Stop(a) => stop::run(a, &home),
        Command::Clean(a) => clean::run(a, &home),
    }
}

/// Opens the image store (shared: sandboxes, pulls and listings run side by side).
pub fn open_store(home: &std::path::Path) -> anyhow::Result<ImageStore> {
    ImageStore::open(home).with_context(|| format!("opening the image store in {}", home.display()))
}

/// Bytes for people: `12.3 MB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
