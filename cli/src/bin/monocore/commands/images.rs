use std::process::ExitCode;

use monofs_overlay::ImageStore;

use crate::args::ImagesArgs;

pub fn run(a: ImagesArgs, store: &ImageStore) -> anyhow::Result<ExitCode> {
    let list = store.list()?;
    if a.json {
        super::print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = list.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<19}  {:>6}  {:>10}  {:>10}", "NAME", "MANIFEST", "LAYERS", "SIZE", "STORED");
    for i in &list {
        let short: String = i.manifest_digest.chars().take(19).collect();
        println!(
            "{:<width$}  {:<19}  {:>6}  {:>10}  {:>10}",
            i.name,
            short,
            i.layers,
            super::human(i.logical_bytes),
            super::human(i.stored_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
