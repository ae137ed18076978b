//! Library-level tests of whole repository operations.

mod bounds;
mod corruption;
mod deep;
mod edit;
mod flushing;
mod full_disk;
mod history;
mod hostile;
mod inodes;
mod mounted_gc;
mod open_across_checkout;
mod root_meta;
mod roundtrip;
mod shared;
mod worktrees;

use std::path::Path;

use monofs::{CommitOptions, InitOptions, NoProgress, ObjectId, Repository};

/// Commit options with a fixed author.
pub fn opts(message: &str) -> CommitOptions {
    CommitOptions { message: message.into(), author: "test@host".into(), time: None, discard_changes: false }
}

/// A plain repository in memory.
pub fn memory_repo() -> Repository {
    Repository::in_memory(InitOptions::default()).expect("in-memory repository")
}

/// Commits `dir`, returning the revision.
pub fn commit(repo: &Repository, dir: &Path, message: &str) -> ObjectId {
    repo.commit_dir(dir, &opts(message), &NoProgress).expect("commit").revision
}

/// Restores revision `rev` into `to`.
pub fn restore(repo: &Repository, rev: &ObjectId, to: &Path) {
    let root = repo.read_revision(rev).expect("revision").root;
    repo.restore(&root, to, false, &NoProgress).expect("restore");
}
