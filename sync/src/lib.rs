//! Replication of monofs repositories: clone and backup sync between a local
//! repository and another one, on a local path or behind `monofs serve --http`.
//!
//! The pieces: an [`Endpoint`] is one side (a [`Local`] repository or an
//! [`HttpRemote`]); [`clone`] copies a whole repository as stored (sealed
//! objects stay sealed; into an empty directory, the source's store file
//! whole, checked and verified before it becomes a repository; otherwise
//! whole packs when the source keeps them); [`sync`]
//! sends what the other side lacks, walking the DAG when the key is at hand,
//! and fast-forwards refs; [`serve`] puts a repository behind HTTP(S). The
//! protocol is in docs/SYNC.md.

mod endpoint;
mod error;
mod flusher;
mod http;
pub mod pieces;
pub mod remotes;
mod server;
mod tls;
pub mod token;
mod transfer;
mod whole;
pub mod wire;

pub use endpoint::{
    Endpoint, Identity, LOCK_WAIT, Local, PackSender, PackSink, RefChange, RefState, StoreSender, Update,
};
pub use error::{Result, SyncError};
pub use http::{HttpRemote, is_url};
pub use server::{ServeOptions, Server, serve};
pub use transfer::{Direction, Mode, NoProgress, Progress, Summary, clone, clone_with, sync};
pub use whole::PARTIAL_FILE;

#[cfg(test)]
mod tests;
