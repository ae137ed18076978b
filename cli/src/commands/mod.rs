//! One module per subcommand; each opens the repository, calls the library
//! and prints.

mod checkout;
mod commit;
mod diff;
mod fsck;
mod init;
mod log;
mod maintenance;
mod tag;

use std::path::Path;
use std::process::ExitCode;

use crate::args::Command;

/// Runs one parsed command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(a) => init::run(a),
        Command::Commit(a) => commit::run(a),
        Command::Log(a) => log::run(a),
        Command::Tag(a) => tag::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Checkout(a) => checkout::run(a),
        Command::Gc(a) => maintenance::gc(a),
        Command::Fsck(a) => fsck::run(a),
        Command::Stats(a) => maintenance::stats(a),
    }
}

/// Opens REPO, asking for its passphrase only if it is encrypted.
pub fn open(repo: &Path) -> anyhow::Result<monofs::Repository> {
    Ok(monofs::Repository::open(repo, &mut || crate::passphrase::existing(repo))?)
}
