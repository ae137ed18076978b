use std::process::ExitCode;

use crate::args::CheckoutArgs;
use crate::style;

pub fn run(a: CheckoutArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let repo = ctx.open(&a.repo)?;
    let rev = repo.resolve(&a.rev)?;
    match &a.to {
        Some(dir) => {
            let bar = crate::progress::Bar::new("checkout");
            let result = repo.restore_revision(&rev, dir, a.force, &bar);
            bar.finish();
            let summary = result?;
            let wrote = format!(
                "wrote {} files, {} into {}{}",
                summary.files,
                style::bytes(summary.bytes),
                dir.display(),
                if summary.skipped > 0 {
                    format!(" ({} device nodes skipped: not root)", summary.skipped)
                } else {
                    String::new()
                }
            );
            if let Some(refused) = summary.xattrs_refused() {
                anyhow::bail!("{wrote}, but {refused}");
            }
            note!(ctx, "{wrote}");
        }
        None => {
            ctx.move_worktree(&repo, |r| r.checkout(&rev, a.force))?;
            note!(ctx, "working tree is now at {}", rev.short(12));
        }
    }
    Ok(ExitCode::SUCCESS)
}
