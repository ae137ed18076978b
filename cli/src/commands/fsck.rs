use std::process::ExitCode;

use serde_json::json;

use crate::args::FsckArgs;
use crate::style;

pub fn run(a: FsckArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let report = repo.fsck()?;
    if a.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| json!({"id": p.id.to_hex(), "kind": p.kind.name(), "error": p.error, "paths": p.paths}))
            .collect();
        style::print_json(&json!({"checked": report.checked, "problems": problems}))?;
    } else {
        for p in &report.problems {
            println!("bad {} {}: {}", p.kind.name(), p.id, p.error);
            for path in &p.paths {
                println!("  used by {}", if path.is_empty() { "(revision)" } else { path });
            }
        }
        println!("checked {} objects, {} problems", report.checked, report.problems.len());
    }
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the repository {} has {} damaged or missing objects",
            a.repo.display(),
            report.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
