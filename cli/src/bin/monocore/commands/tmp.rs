use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use monocore_sandbox::sandbox::{self, Ending, Isolation, Options};
use monocore_sandbox::spec::{self, Limits, Scope, Volume};
use monofs_overlay::pull::PullOptions;

use crate::args::TmpArgs;

fn options(a: TmpArgs) -> anyhow::Result<Options> {
    Ok(Options {
        image: a.image,
        command: a.command,
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        volumes: a.volumes.iter().map(|v| Volume::parse(v)).collect::<Result<_, _>>()?,
        scope: Scope::parse(&a.scope)?,
        limits: Limits {
            memory: a.memory.as_deref().map(spec::parse_memory).transpose()?,
            cpus: a.cpus.as_deref().map(spec::parse_cpus).transpose()?,
            pids: a.pids.as_deref().map(spec::parse_pids).transpose()?,
        },
        isolation: Isolation::parse(&a.isolation)?,
        timeout: a.timeout,
        tty: a.tty,
        keep: a.keep,
    })
}

pub fn run(a: TmpArgs, home: &Path) -> anyhow::Result<ExitCode> {
    let opts = options(a)?;
    sandbox::preflight(&opts)?;
    let mut store = super::open_store(home)?;
    if store.lookup(&opts.image)?.is_none() {
        let spinner = super::progress::Spinner::new();
        spinner.attach(&mut store);
        store
            .pull(&opts.image, &PullOptions::default())
            .with_context(|| format!("'{}' is not in the image store and pulling it failed", opts.image))?;
        spinner.finish();
    }
    let outcome = sandbox::run(store, &opts).with_context(|| format!("sandbox of {}", opts.image))?;
    match outcome.ending {
        Ending::Exited => {}
        Ending::TimedOut => eprintln!("monocore: sandbox {} stopped: --timeout passed", outcome.id),
        Ending::OutOfMemory => eprintln!(
            "monocore: sandbox {} killed: out of memory (--memory {} MiB)",
            outcome.id,
            opts.limits.memory.unwrap_or(0) >> 20
        ),
    }
    if let Some(rev) = outcome.kept {
        eprintln!(
            "monocore: kept sandbox {} as revision {} (see `monocore diff {}`)",
            outcome.id,
            rev.short(12),
            outcome.id
        );
    }
    Ok(ExitCode::from(u8::try_from(outcome.status).unwrap_or(255)))
}
