use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::args::StopArgs;

pub fn run(a: StopArgs, home: &Path) -> anyhow::Result<ExitCode> {
    let id = monocore_sandbox::sandbox::stop(home, &a.id, Duration::from_secs(a.time))?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
