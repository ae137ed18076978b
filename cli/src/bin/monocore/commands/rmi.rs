use std::process::ExitCode;

use monofs_overlay::ImageStore;

use crate::args::RmiArgs;

pub fn run(a: RmiArgs, store: &ImageStore) -> anyhow::Result<ExitCode> {
    let name = store.remove(&a.image)?;
    println!("removed {name}");
    eprintln!("note: `monofs gc {}` reclaims its space", store.repo().path().display());
    Ok(ExitCode::SUCCESS)
}
