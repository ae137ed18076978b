use std::path::Path;
use std::process::ExitCode;

use crate::args::PsArgs;

pub fn run(a: PsArgs, home: &Path) -> anyhow::Result<ExitCode> {
    let sandboxes = monocore_sandbox::sandbox::list(home);
    if a.json {
        super::print_json(&sandboxes)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<16}  {:<20}  {:<9}  {:<8}  {:>9}  COMMAND", "ID", "IMAGE", "ISOLATION", "STATUS", "MEMORY");
    for s in sandboxes {
        let r = &s.record;
        let memory = s.memory.map(super::human).unwrap_or_else(|| "-".into());
        println!(
            "{:<16}  {:<20}  {:<9}  {:<8}  {:>9}  {}",
            r.id,
            r.image,
            r.isolation,
            s.status,
            memory,
            r.command.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
