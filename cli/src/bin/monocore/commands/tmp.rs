use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use monocore_sandbox::config::Config;
use monocore_sandbox::sandbox::{self, Ending, Isolation, Options};
use monocore_sandbox::spec::{self, Limits, Scope, Volume};
use monofs_overlay::pull::PullOptions;

use crate::args::TmpArgs;

/// The command line's options, with `config.toml`'s defaults for those not given.
fn options(a: TmpArgs, config: Config) -> anyhow::Result<Options> {
    let memory = a.memory.or(config.memory);
    let cpus = a.cpus.or(config.cpus);
    let pids = a.pids.or(config.pids);
    Ok(Options {
        image: a.image,
        command: a.command,
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        volumes: a.volumes.iter().map(|v| Volume::parse(v)).collect::<Result<_, _>>()?,
        scope: a.scope.or(config.scope).as_deref().map(Scope::parse).transpose()?.unwrap_or_default(),
        limits: Limits {
            memory: memory.as_deref().map(spec::parse_memory).transpose()?,
            cpus: cpus.as_deref().map(spec::parse_cpus).transpose()?,
            pids: pids.as_deref().map(spec::parse_pids).transpose()?,
        },
        isolation: a.isolation.or(config.isolation).as_deref().map(Isolation::parse).transpose()?.unwrap_or_default(),
        timeout: a.timeout,
        tty: a.tty,
        keep: a.keep,
        seccomp: seccomp(&a.security_opt)?,
    })
}

/// Whether the system-call filter stays on, from `--security-opt` values
/// (Docker's syntax; only `seccomp=unconfined` is known).
fn seccomp(opts: &[String]) -> anyhow::Result<bool> {
    let mut on = true;
    for o in opts {
        match o.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => on = false,
            _ => anyhow::bail!("invalid --security-opt '{o}': the one known is seccomp=unconfined"),
        }
    }
    Ok(on)
}

pub fn run(a: TmpArgs, home: &Path) -> anyhow::Result<ExitCode> {
    let opts = options(a, Config::load(home)?)?;
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
