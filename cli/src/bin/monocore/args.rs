//! Command-line arguments of `monocore`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// OCI images as monofs trees.
#[derive(Parser, Debug)]
#[command(
    name = "monocore",
    version,
    about = "monocore: OCI images as monofs trees (pull, import, images, rmi, unpack)"
)]
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
