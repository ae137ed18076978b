use std::process::ExitCode;

use crate::args::{RepoArg, StatsArgs};
use crate::style;

pub fn gc(a: RepoArg) -> anyhow::Result<ExitCode> {
    let mut repo = super::open(&a.repo)?;
    let s = repo.gc()?;
    println!(
        "removed {} objects ({}), kept {}; store {} -> {}",
        s.removed,
        style::bytes(s.removed_bytes),
        s.kept,
        style::bytes(s.size_before),
        style::bytes(s.size_after)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let s = repo.stats()?;
    if a.json {
        let mut v = serde_json::to_value(s)?;
        v["dedup_ratio"] = s.dedup_ratio().into();
        v["compression_ratio"] = s.compression_ratio().into();
        style::print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("revisions:          {}", s.revisions);
    println!("objects:            {}", s.objects);
    println!("logical size:       {} (all revisions)", style::bytes(s.logical_bytes));
    println!("unique data:        {}", style::bytes(s.unique_bytes));
    println!("stored:             {}", style::bytes(s.stored_bytes));
    println!("store file:         {}", style::bytes(s.file_bytes));
    println!("dedup ratio:        {:.2}x", s.dedup_ratio());
    println!("compression ratio:  {:.2}x", s.compression_ratio());
    Ok(ExitCode::SUCCESS)
}
