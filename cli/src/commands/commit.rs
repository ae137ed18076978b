use std::process::ExitCode;

use monofs::CommitOptions;
use serde_json::json;

use crate::args::CommitArgs;
use crate::style;

fn default_author() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

pub fn run(a: CommitArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let opts = CommitOptions {
        message: a.message,
        author: a.author.unwrap_or_else(default_author),
        time: None,
        discard_changes: a.force,
    };
    let started = std::time::Instant::now();
    let summary = match (&a.from, ctx.served) {
        // The mount stores its edits and commits them with no flush in
        // between (see `Vfs::with_flushed`); it compacts at gc.
        (None, Some(served)) => served.vfs.commit(&opts)?,
        // It would move the working tree to DIR under the mount, whose next
        // flush would move it back: nothing to do here that means well.
        (Some(dir), Some(_)) => anyhow::bail!(
            "{} is mounted: commit --from would replace the mounted working tree; copy {} into the mount and run `monofs commit` without --from, or detach it first",
            a.repo.display(),
            dir.display()
        ),
        (from, _) => {
            let mut repo = ctx.open(&a.repo)?;
            let summary = match from {
                Some(dir) => {
                    let bar = crate::progress::Bar::new("commit");
                    let result = repo.commit_dir(dir, &opts, &bar);
                    bar.finish();
                    result?
                }
                None => repo.commit_worktree(&opts)?,
            };
            if let super::RepoRef::Own(own) = &mut repo {
                own.compact_if_sparse()?;
            }
            summary
        }
    };
    if a.json {
        style::print_json(
            &mut *ctx.out,
            &json!({
                "revision": summary.revision.to_hex(),
                "root": summary.root.to_hex(),
                "size": summary.size,
                "files": summary.files,
                "reused_files": summary.reused_files,
                "new_objects": summary.new_objects,
                "new_bytes": summary.new_bytes,
                "seconds": started.elapsed().as_secs_f64(),
            }),
        )?;
    } else {
        say!(ctx, "{}", summary.revision);
        if a.from.is_some() {
            note!(
                ctx,
                "{} files ({} unchanged), {}; added {} in {} new objects, {:.2}s",
                summary.files,
                summary.reused_files,
                style::bytes(summary.size),
                style::bytes(summary.new_bytes),
                summary.new_objects,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
