//! Keys, object ids and the sealed frame every object is stored in.

pub mod dictionary;
mod keys;
mod seal;

pub use dictionary::Dictionary;
pub use keys::{KdfParams, KeyFile, Keys, WrongPassphrase};
pub use seal::{Codec, MAX_OBJECT_SIZE, SealError, looks_sealed};
