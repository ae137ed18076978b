use std::process::ExitCode;

use monofs::{InitOptions, Repository};

use crate::args::InitArgs;

pub fn run(a: InitArgs) -> anyhow::Result<ExitCode> {
    let passphrase = if a.encrypt { Some(crate::passphrase::new(&a.repo)?) } else { None };
    Repository::init(&a.repo, InitOptions { passphrase, ..Default::default() })?;
    let how = if a.encrypt { "encrypted " } else { "" };
    eprintln!("created {how}repository {}", a.repo.display());
    Ok(ExitCode::SUCCESS)
}
