//! Keys, object ids and the sealed frame every object is stored in.

mod keys;
mod seal;

pub use keys::{KdfParams, KeyFile, Keys, WrongPassphrase};
pub use seal::{Codec, MAX_OBJECT_SIZE, SealError};
