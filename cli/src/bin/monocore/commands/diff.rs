use std::process::ExitCode;

use anyhow::Context;
use monocore_sandbox::sandbox::KEPT_PREFIX;
use monofs_overlay::ImageStore;

use crate::args::DiffArgs;

pub fn run(a: DiffArgs, store: &ImageStore) -> anyhow::Result<ExitCode> {
    let repo = store.repo();
    let kept = repo.refs_with_prefix(KEPT_PREFIX)?;
    let mut matches = kept.iter().filter(|(id, _)| !a.id.is_empty() && id.starts_with(&a.id));
    let (id, rev) = match (matches.next(), matches.next()) {
        (Some(m), None) => m,
        (Some(_), Some(_)) => anyhow::bail!("'{}' matches several kept sandboxes; give more of the id", a.id),
        (None, _) => anyhow::bail!("no kept sandbox '{}' (sandboxes are kept with `monocore tmp --keep`)", a.id),
    };
    let rev = repo.read_revision(rev).with_context(|| format!("sandbox {id}"))?;
    let image = rev.parents.first().context("the kept sandbox has no image revision")?;
    let changes = repo.diff_trees(&repo.read_revision(image)?.root, &rev.root)?;
    if a.json {
        super::print_json(&changes)?;
    } else {
        for c in &changes {
            println!("{} {}", c.status.letter(), c.quoted_path());
        }
    }
    Ok(ExitCode::SUCCESS)
}
