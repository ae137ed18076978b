use std::path::Path;
use std::process::ExitCode;

use crate::args::CleanArgs;

pub fn run(a: CleanArgs, home: &Path) -> anyhow::Result<ExitCode> {
    let cleaned = monocore_sandbox::sandbox::clean(home)?;
    if a.json {
        super::print_json(&cleaned)?;
    } else if cleaned.sandboxes.is_empty() {
        println!("nothing to clean");
    } else {
        for id in &cleaned.sandboxes {
            println!("released sandbox {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
