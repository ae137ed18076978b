use std::process::ExitCode;

use anyhow::Context;
use monofs_overlay::ImageStore;

use crate::args::ImportArgs;

pub fn run(a: ImportArgs, store: &mut ImageStore) -> anyhow::Result<ExitCode> {
    let spinner = super::progress::Spinner::new();
    spinner.attach(store);
    let s = store
        .import_path(&a.path, &a.tag, a.reference.as_deref())
        .with_context(|| format!("importing {}", a.path.display()))?;
    spinner.finish();
    if a.json {
        super::print_json(&s)?;
    } else {
        println!(
            "{}: imported {} ({} layers applied, {} reused; {} logical, {} new stored)",
            s.name,
            s.manifest_digest,
            s.layers_applied,
            s.layers_reused,
            super::human(s.logical_bytes),
            super::human(s.new_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
