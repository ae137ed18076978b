use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::json;

use crate::args::LogArgs;
use crate::style;

pub fn run(a: LogArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let repo = ctx.open_stored(&a.repo)?;
    let head = repo.head()?;
    let mut tags: HashMap<_, Vec<String>> = HashMap::new();
    for (name, id) in repo.tags()? {
        tags.entry(id).or_default().push(name);
    }
    let mut revs = repo.log(a.all)?;
    if let Some(n) = a.max_count {
        revs.truncate(n);
    }
    if a.json {
        let out: Vec<_> = revs
            .iter()
            .map(|(id, r)| {
                json!({
                    "id": id.to_hex(),
                    "parents": r.parents.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
                    "root": r.root.to_hex(),
                    "time": style::time_precise(r.time),
                    "unix_time": r.time.sec,
                    "author": r.author,
                    "message": r.message,
                    "size": r.size,
                    "tags": tags.get(id).cloned().unwrap_or_default(),
                    "head": Some(*id) == head,
                })
            })
            .collect();
        style::print_json(&mut *ctx.out, &out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (id, r) in &revs {
        let mut refs: Vec<String> = Vec::new();
        if Some(*id) == head {
            refs.push("HEAD".into());
        }
        refs.extend(tags.get(id).into_iter().flatten().map(|t| format!("tag: {t}")));
        let decoration = if refs.is_empty() { String::new() } else { format!(" ({})", refs.join(", ")) };
        say!(
            ctx,
            "{}  {}  {:>10}  {}{}",
            id.short(12),
            style::time(r.time),
            style::bytes(r.size),
            style::subject(&r.message),
            decoration
        );
    }
    Ok(ExitCode::SUCCESS)
}
