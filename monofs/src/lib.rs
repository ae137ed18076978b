//! monofs: a versioned, content-addressed, chunked, compressed and
//! optionally encrypted filesystem store.
//!
//! Trees are Merkle DAGs of [`object`]s kept in a [`store::Store`] (an
//! embedded redb file by default). A [`Repository`] adds keys, refs and the
//! operations behind the `monofs` command: commit (from the working tree or a
//! directory), log, tag, diff, checkout, restore, gc, fsck and stats. The
//! byte-level format is specified in `docs/FORMAT.md`.

pub mod content;
pub mod crypto;
pub mod diff;
pub mod edit;
pub mod encoding;
pub mod error;
pub mod filecache;
mod flights;
mod fsck;
pub mod fuse;
pub mod gc;
pub mod id;
pub mod nfs;
pub mod object;
pub mod parallel;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod stats;
pub mod store;
pub mod vfs;

mod commit;
mod history;
mod longpath;
mod snapshot;
mod walk;

pub use commit::{CommitOptions, CommitSummary};
pub use error::{Error, Result};
pub use fsck::{FsckReport, Problem, RecordProblem};
pub use id::ObjectId;
pub use progress::{NoProgress, Progress};
pub use repo::{InitOptions, Repository};
pub use walk::Held;
