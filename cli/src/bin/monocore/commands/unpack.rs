use std::process::ExitCode;

use anyhow::Context;
use monofs_overlay::ImageStore;
use monofs_overlay::pull::PullOptions;

use crate::args::UnpackArgs;

pub fn run(a: UnpackArgs, store: &mut ImageStore) -> anyhow::Result<ExitCode> {
    let spinner = super::progress::Spinner::new();
    spinner.attach(store);
    // Local store first (as given, then `:latest`, then normalised); only a
    // missing image is pulled.
    if store.lookup(&a.image)?.is_none() {
        store.pull(&a.image, &PullOptions::default()).with_context(|| format!("pulling {}", a.image))?;
    }
    let s = store
        .unpack(&a.image, &a.dir, &spinner)
        .with_context(|| format!("unpacking {} into {}", a.image, a.dir.display()))?;
    spinner.finish();
    let wrote = format!("{}: {} files, {} written to {}", a.image, s.files, super::human(s.bytes), a.dir.display());
    if let Some(refused) = s.xattrs_refused() {
        anyhow::bail!("{wrote}, but {refused}");
    }
    eprintln!("{wrote}");
    Ok(ExitCode::SUCCESS)
}
