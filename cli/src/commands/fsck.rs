use std::process::ExitCode;

use monofs::FsckReport;
use monofs::Repository;
use monofs::store::{Integrity, StoreError};
use serde_json::json;

use crate::args::FsckArgs;
use crate::style;

pub fn run(a: FsckArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    // Every page of the store file checked as it opens: a damaged one is
    // reported, not trusted (a mount's store is checked by `fsck` itself).
    let report = match ctx.open_stored_with(&a.repo, Repository::open_verified) {
        Ok(repo) => repo.fsck()?,
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<StoreError>()).and_then(StoreError::damage) {
            // Nothing more can be read from it safely.
            Some(why) => FsckReport::damaged(why.to_owned()),
            None => return Err(e),
        },
    };
    let store = match &report.store {
        Integrity::Sound => None,
        Integrity::Repaired => Some(
            "the store file was damaged; it went back to its last sound commit (changes made after it are lost)"
                .to_owned(),
        ),
        Integrity::Damaged(why) => Some(format!("the store file is damaged beyond repair: {why}")),
        Integrity::Unchecked(why) => Some(format!("the store file's structure was not checked: {why}")),
    };
    if a.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| json!({"id": p.id.to_hex(), "kind": p.kind.name(), "error": p.error, "paths": p.paths}))
            .collect();
        let records: Vec<_> = report.records.iter().map(|r| json!({"key": r.key, "error": r.error})).collect();
        style::print_json(
            &mut *ctx.out,
            &json!({
                "store": store,
                "checked": report.checked,
                "problems": problems,
                "records": records,
                "sound": report.is_sound(),
            }),
        )?;
    } else {
        if let Some(store) = &store {
            say!(ctx, "{store}");
        }
        for p in &report.problems {
            say!(ctx, "bad {} {}: {}", p.kind.name(), p.id, p.error);
            for path in &p.paths {
                say!(ctx, "  used by {}", if path.is_empty() { "(revision)" } else { path });
            }
        }
        for r in &report.records {
            say!(ctx, "bad dictionary record {}: {} (gc removes it)", r.key, r.error);
        }
        if !matches!(report.store, Integrity::Damaged(_)) {
            let problems = report.problems.len() + report.records.len();
            say!(ctx, "checked {} objects, {} problems", report.checked, problems);
        }
    }
    if report.is_sound() {
        return Ok(ExitCode::SUCCESS);
    }
    if report.problems.is_empty() && !report.records.is_empty() {
        note!(
            ctx,
            "error: the repository {} has {} unusable dictionary records",
            a.repo.display(),
            report.records.len()
        );
    } else if report.problems.is_empty() {
        note!(ctx, "error: the store file of {} was damaged", a.repo.display());
    } else {
        note!(
            ctx,
            "error: the repository {} has {} damaged or missing objects",
            a.repo.display(),
            report.problems.len()
        );
    }
    Ok(ExitCode::FAILURE)
}
