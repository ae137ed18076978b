use std::path::Path;
use std::process::ExitCode;

use crate::args::CleanArgs;

pub fn run(a: CleanArgs, home: &Path) -> anyhow::Result<ExitCode> {
    let cleaned = monocore_sandbox::sandbox::clean(home)?;
    if a.json {
        super::print_json(&cleaned)?;
        return Ok(ExitCode::SUCCESS);
    }
    for id in &cleaned.sandboxes {
        println!("released sandbox {id}");
    }
    if cleaned.worktrees > 0 {
        println!("removed {} stale sandbox working tree(s)", cleaned.worktrees);
    }
    if let Some(why) = &cleaned.store_busy {
        eprintln!("monocore: image store not cleaned ({why}); run `monocore clean` again when no sandbox runs");
    }
    if cleaned.sandboxes.is_empty() && cleaned.worktrees == 0 {
        println!("nothing to clean");
    }
    Ok(ExitCode::SUCCESS)
}
