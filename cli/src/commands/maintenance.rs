use std::process::ExitCode;

use crate::args::{RepoArg, StatsArgs};
use crate::style;

pub fn gc(a: RepoArg, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let s = match ctx.served {
        // The mount's edits are stored first, and what it holds is kept.
        Some(served) => served.vfs.gc()?,
        None => super::open(&a.repo)?.gc()?,
    };
    say!(
        ctx,
        "removed {} objects ({}), kept {}; store {} -> {}",
        s.removed,
        style::bytes(s.removed_bytes),
        s.kept,
        style::bytes(s.size_before),
        style::bytes(s.size_after)
    );
    if s.dictionaries_removed > 0 {
        say!(ctx, "removed {} dictionary records that no object can use", s.dictionaries_removed);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stats(a: StatsArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let repo = ctx.open(&a.repo)?;
    let s = repo.stats()?;
    if a.json {
        let mut v = serde_json::to_value(s)?;
        v["dedup_ratio"] = s.dedup_ratio().into();
        v["compression_ratio"] = s.compression_ratio().into();
        style::print_json(&mut *ctx.out, &v)?;
        return Ok(ExitCode::SUCCESS);
    }
    say!(ctx, "revisions:          {}", s.revisions);
    say!(ctx, "objects:            {}", s.objects);
    say!(ctx, "logical size:       {} (all revisions)", style::bytes(s.logical_bytes));
    say!(ctx, "unique data:        {}", style::bytes(s.unique_bytes));
    say!(ctx, "stored:             {}", style::bytes(s.stored_bytes));
    say!(ctx, "store file:         {}", style::bytes(s.file_bytes));
    say!(ctx, "dedup ratio:        {:.2}x", s.dedup_ratio());
    say!(ctx, "compression ratio:  {:.2}x", s.compression_ratio());
    say!(ctx, "dictionaries:       {}", s.dictionaries);
    Ok(ExitCode::SUCCESS)
}
