use std::process::ExitCode;

use monofs::{InitOptions, Repository};

use crate::args::InitArgs;

pub fn run(a: InitArgs, ctx: &mut super::Ctx<'_>) -> anyhow::Result<ExitCode> {
    let passphrase = if a.encrypt { Some(crate::passphrase::new(&a.repo)?) } else { None };
    Repository::init(&a.repo, InitOptions { passphrase, ..Default::default() })?;
    let how = if a.encrypt { "encrypted " } else { "" };
    note!(ctx, "created {how}repository {}", a.repo.display());
    Ok(ExitCode::SUCCESS)
}
