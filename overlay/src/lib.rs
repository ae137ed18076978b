//! monofs-overlay: OCI images as monofs trees.
//!
//! An image (from an OCI layout directory, an OCI or `docker save` archive,
//! or a registry) is imported once: its layers are applied in order with
//! OCI semantics onto a monofs tree ([`layer`]), each layer stack's tree is
//! kept by ChainID, and the image becomes a revision in the image store
//! ([`store`]) with its config. Sandboxes start from
//! [`store::ImageStore::image_root`].

pub mod digest;
pub mod error;
pub mod layer;
pub mod name;
pub mod pull;
pub mod source;
pub mod spec;
pub mod store;
mod tar_guard;

pub use error::{Error, Result};
pub use store::{ImageRecord, ImageStore, ImageSummary, ImportSummary, default_home};
