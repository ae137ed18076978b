//! Command-line arguments of `monocore`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// OCI images as monofs trees.
#[derive(Parser, Debug)]
#[command(name = "monocore", version, about = "monocore: OCI images as monofs trees, run as throwaway sandboxes")]
pub struct Cli {
    /// Image store location (default: ~/.monocore).
    #[arg(long, env = "MONOCORE_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull an image from a registry into the image store.
    Pull(PullArgs),
    /// Import an OCI image layout directory or an OCI / `docker save` archive.
    Import(ImportArgs),
    /// List stored images with logical and stored size.
    Images(ImagesArgs),
    /// Remove an image (its data goes at the next `monofs gc` of the store).
    Rmi(RmiArgs),
    /// Materialise an image's root file system into a directory.
    Unpack(UnpackArgs),
    /// Run a command in a throwaway sandbox of an image (like `docker run --rm`).
    Tmp(Box<TmpArgs>),
    /// List running sandboxes.
    Ps(PsArgs),
    /// Stop a sandbox: SIGTERM, then SIGKILL after a grace period.
    Stop(StopArgs),
    /// Release what sandboxes whose monocore process was killed left behind.
    Clean(CleanArgs),
    /// Show what a sandbox kept with `--keep` changed against its image.
    Diff(DiffArgs),
}

/// `monocore tmp`.
#[derive(Args, Debug)]
pub struct TmpArgs {
    /// Image name (pulled when not in the store).
    pub image: String,
    /// Command and arguments (after `--`); default: the image's entrypoint and cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// Set an environment variable (`K=V`, or `K` to pass the host's value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file of `K=V` lines.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the sandbox (absolute).
    #[arg(short = 'w', long, value_name = "DIR", value_parser = absolute_dir)]
    pub workdir: Option<String>,
    /// User to run as: `name|uid[:group|gid]`.
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Bind a host path: `HOST:GUEST[:ro]`.
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:ro]")]
    pub volumes: Vec<String>,
    /// Network reach: none (loopback only; the default), local, public or any.
    #[arg(long)]
    pub scope: Option<String>,
    /// Isolation: namespace (the default) or microvm; `$MONOCORE_HOME/config.toml` can set the default.
    #[arg(long)]
    pub isolation: Option<String>,
    /// Memory limit (`512m`, `2g`); the command is killed beyond it.
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit in cores (`0.5`, `2`).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Most processes and threads.
    #[arg(long)]
    pub pids: Option<String>,
    /// Stop the sandbox after this long (`30s`, `5m`); exit status 124.
    #[arg(long, value_parser = positive_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Give the command a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep stdin open (it always is; accepted for Docker compatibility).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Keep the sandbox's changes as a revision (see `monocore diff ID`).
    #[arg(long)]
    pub keep: bool,
    /// `seccomp=unconfined`: no system-call filter (namespace isolation;
    /// for 32-bit programs, or a command that makes namespaces of its own).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
}

/// `monocore ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monocore stop`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Sandbox id (or an unambiguous prefix).
    pub id: String,
    /// Seconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10)]
    pub time: u64,
}

/// `monocore clean`.
#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Print what was released as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monocore diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Id of a sandbox run with `--keep`.
    pub id: String,
    /// Print the changes as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monocore pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image reference, normalised as Docker does (`alpine` is `docker.io/library/alpine:latest`).
    pub image: String,
    /// Use plain HTTP for this registry (always allowed for 127.0.0.1/localhost).
    #[arg(long)]
    pub insecure: bool,
    /// Platform to pick from a multi-arch index, `OS/ARCH[/VARIANT]` (default: this host).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Registry user name (the password is read from stdin).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the registry password or token from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monocore import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// OCI image layout directory, OCI archive or `docker save` archive.
    pub path: PathBuf,
    /// Name to store the image under (e.g. `bb`, `myimg:1`).
    #[arg(long, value_name = "NAME")]
    pub tag: String,
    /// Which image of the layout or archive (its ref name or repo tag).
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monocore images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monocore rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Image name.
    pub image: String,
}

/// `monocore unpack`.
#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// Image name (pulled first when not in the store).
    pub image: String,
    /// Target directory (missing or empty).
    pub dir: PathBuf,
}

/// A `-w` value: an absolute path, as Docker requires.
fn absolute_dir(s: &str) -> Result<String, String> {
    if s.starts_with('/') { Ok(s.to_owned()) } else { Err("must be an absolute path".into()) }
}

/// A `--timeout` value: a duration above zero.
fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than 0".into()),
        other => other.map_err(|e| e.to_string()),
    }
}
