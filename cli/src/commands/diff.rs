use std::process::ExitCode;

use monofs::diff::Status;

use crate::args::DiffArgs;
use crate::style;

pub fn run(a: DiffArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let repo = ctx.open(&a.repo)?;
    let old = repo.read_revision(&repo.resolve(&a.rev_a)?)?;
    let (new, new_meta) = match &a.rev_b {
        Some(spec) => {
            let rev = repo.read_revision(&repo.resolve(spec)?)?;
            (rev.root, Some(rev.root_meta))
        }
        None => (repo.worktree()?, repo.worktree_root_meta()?),
    };
    let root = new_meta.and_then(|meta| monofs::diff::root_change(&old.root_meta, &meta));
    let changes: Vec<_> = root.into_iter().chain(repo.diff_trees(&old.root, &new)?).collect();
    if a.json {
        style::print_json(&mut *ctx.out, &changes)?;
    } else if a.stat {
        let (mut added, mut modified, mut deleted, mut grew, mut shrank) = (0, 0, 0, 0u64, 0u64);
        for c in &changes {
            let (o, n) = (c.old_size.unwrap_or(0), c.new_size.unwrap_or(0));
            match c.status {
                Status::Added => added += 1,
                Status::Deleted => deleted += 1,
                Status::Modified | Status::TypeChanged => modified += 1,
            }
            grew += n.saturating_sub(o);
            shrank += o.saturating_sub(n);
            if c.old_size.is_some() || c.new_size.is_some() {
                say!(ctx, " {} | {} -> {}", c.quoted_path(), style::bytes(o), style::bytes(n));
            }
        }
        say!(
            ctx,
            " {added} added, {modified} modified, {deleted} deleted; +{} -{}",
            style::bytes(grew),
            style::bytes(shrank)
        );
    } else {
        for c in &changes {
            say!(ctx, "{} {}", c.status.letter(), c.quoted_path());
        }
    }
    Ok(ExitCode::SUCCESS)
}
