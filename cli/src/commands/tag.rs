use std::process::ExitCode;

use serde_json::json;

use crate::args::TagArgs;
use crate::style;

pub fn run(a: TagArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let repo = ctx.open_stored(&a.repo)?;
    if let Some(name) = &a.delete {
        repo.delete_tag(name)?;
        note!(ctx, "deleted tag {name}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = &a.name {
        let rev = repo.resolve(a.rev.as_deref().unwrap_or("HEAD"))?;
        repo.set_tag(name, &rev, a.force)?;
        note!(ctx, "tagged {} as {name}", rev.short(12));
        return Ok(ExitCode::SUCCESS);
    }
    let tags = repo.tags()?;
    if a.json {
        let out: Vec<_> = tags.iter().map(|(n, id)| json!({"name": n, "revision": id.to_hex()})).collect();
        style::print_json(&mut *ctx.out, &out)?;
    } else {
        for (name, id) in tags {
            say!(ctx, "{name}  {}", id.short(12));
        }
    }
    Ok(ExitCode::SUCCESS)
}
