use std::process::ExitCode;

use serde_json::json;

use crate::args::FsckArgs;
use crate::style;

pub fn run(a: FsckArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let repo = ctx.open_stored(&a.repo)?;
    let report = repo.fsck()?;
    if a.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| json!({"id": p.id.to_hex(), "kind": p.kind.name(), "error": p.error, "paths": p.paths}))
            .collect();
        style::print_json(&mut *ctx.out, &json!({"checked": report.checked, "problems": problems}))?;
    } else {
        for p in &report.problems {
            say!(ctx, "bad {} {}: {}", p.kind.name(), p.id, p.error);
            for path in &p.paths {
                say!(ctx, "  used by {}", if path.is_empty() { "(revision)" } else { path });
            }
        }
        say!(ctx, "checked {} objects, {} problems", report.checked, report.problems.len());
    }
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        note!(
            ctx,
            "error: the repository {} has {} damaged or missing objects",
            a.repo.display(),
            report.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
