//! zstd dictionaries shared by a repository's objects (docs/FORMAT.md,
//! "Dictionaries").
//!
//! Most files of a source tree are a few KiB; compressed one by one, each
//! starts from nothing. A dictionary trained once from a sample of them
//! gives every small object that shared context, which shrinks such trees
//! by several percent more than zstd alone, at little extra CPU.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use zstd::zstd_safe::{CDict, DDict};

/// Prefix of the `meta` keys that hold dictionaries: `dict/` followed by the
/// dictionary id as 8 lowercase hex digits.
pub const META_PREFIX: &[u8] = b"dict/";

/// Objects larger than this are compressed without the dictionary: a few
/// dozen KiB of shared context no longer matter for them.
pub const MAX_INPUT: usize = 128 << 10;

/// Largest dictionary trained (zstd's own default size).
const CAPACITY: usize = 112_640;

/// Fewest sample bytes worth training on; below this a dictionary is more
/// noise than context.
pub const MIN_SAMPLE_BYTES: usize = 1 << 20;

/// A trained zstd dictionary with its compression and decompression forms.
pub struct Dictionary {
    id: u32,
    raw: Vec<u8>,
    cdict: &'static CDict<'static>,
    ddict: DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary").field("id", &self.id).field("len", &self.raw.len()).finish()
    }
}

impl Dictionary {
    /// Wraps raw dictionary bytes for compression at `level`; `None` unless
    /// they are a zstd dictionary that carries an id (frames name their
    /// dictionary by it) and that zstd loads both ways: one with the right
    /// header and broken tables is refused here, not by every object.
    pub fn new(raw: Vec<u8>, level: i32) -> Option<Dictionary> {
        let id = id_of(&raw)?;
        let ddict = DDict::try_create(&raw)?;
        let cdict = interned_cdict(&raw, level)?;
        Some(Dictionary { id, raw, cdict, ddict })
    }

    /// The id zstd writes into every frame compressed with it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw dictionary, as stored.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Its key in the `meta` table.
    pub fn meta_key(&self) -> Vec<u8> {
        meta_key(self.id)
    }

    pub(super) fn cdict(&self) -> &'static CDict<'static> {
        self.cdict
    }

    pub(super) fn ddict(&self) -> &DDict<'static> {
        &self.ddict
    }
}

/// The compression form of a dictionary, built once per process and kept
/// for its lifetime: each thread's compressor refers to it rather than
/// copying its tables for every object. There is one per distinct
/// dictionary and level, so reopening a repository adds nothing.
fn interned_cdict(raw: &[u8], level: i32) -> Option<&'static CDict<'static>> {
    /// Dictionary hash and level -> its compression form.
    type Interned = HashMap<([u8; 32], i32), &'static CDict<'static>>;
    static INTERNED: OnceLock<Mutex<Interned>> = OnceLock::new();
    let key = (*blake3::hash(raw).as_bytes(), level);
    let mut map = INTERNED.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cdict) = map.get(&key) {
        return Some(cdict);
    }
    let cdict: &'static CDict<'static> = Box::leak(Box::new(CDict::try_create(raw, level)?));
    map.insert(key, cdict);
    Some(cdict)
}

/// The id a raw dictionary carries, if it is a zstd dictionary with one.
pub fn id_of(raw: &[u8]) -> Option<u32> {
    zstd::zstd_safe::get_dict_id_from_dict(raw).map(|id| id.get())
}

/// The id of a dictionary that [`Dictionary::new`] would take, checked
/// without keeping its compression form (a record from elsewhere is
/// checked before it is stored).
pub fn check(raw: &[u8]) -> Option<u32> {
    let id = id_of(raw)?;
    DDict::try_create(raw)?;
    CDict::try_create(raw, 1)?;
    Some(id)
}

/// The `meta` key of dictionary `id`.
pub fn meta_key(id: u32) -> Vec<u8> {
    let mut key = META_PREFIX.to_vec();
    key.extend_from_slice(format!("{id:08x}").as_bytes());
    key
}

/// The dictionaries a codec knows, and the one it compresses with.
#[derive(Default)]
pub(super) struct DictionarySet {
    all: BTreeMap<u32, Arc<Dictionary>>,
}

impl DictionarySet {
    /// Adds `dict` unless one with its id is known.
    pub fn add(&mut self, dict: Dictionary) {
        self.all.entry(dict.id).or_insert_with(|| Arc::new(dict));
    }

    pub fn get(&self, id: u32) -> Option<Arc<Dictionary>> {
        self.all.get(&id).cloned()
    }

    /// The dictionary new objects are compressed with: the lowest id, so
    /// that every process picks the same one when a replica holds several.
    pub fn current(&self) -> Option<Arc<Dictionary>> {
        self.all.values().next().cloned()
    }

    pub fn list(&self) -> Vec<Arc<Dictionary>> {
        self.all.values().cloned().collect()
    }
}

/// Shared between clones of one codec, so a dictionary added after opening
/// (trained by a commit, received by a sync) reaches every handle.
pub(super) type SharedSet = Arc<RwLock<DictionarySet>>;

/// Trains a dictionary from samples of file content; `None` when they are
/// too few or zstd finds nothing to learn.
pub fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    let bytes: usize = samples.iter().map(Vec::len).sum();
    if bytes < MIN_SAMPLE_BYTES {
        return None;
    }
    // zstd suggests about a hundredth of the sample size.
    let capacity = (bytes / 32).clamp(16 << 10, CAPACITY);
    match zstd::dict::from_samples(samples, capacity) {
        Ok(dict) => Some(dict),
        Err(e) => {
            tracing::debug!(error = %e, samples = samples.len(), bytes, "no dictionary trained");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text-like samples with shared vocabulary, as source files have.
    pub(crate) fn samples() -> Vec<Vec<u8>> {
        let words = ["static", "int", "return", "struct", "device", "const", "unsigned", "long", "void", "error"];
        (0..400u32)
            .map(|i| {
                let mut s = Vec::new();
                for j in 0..500u32 {
                    let w = words[((i * 7 + j * 13) % words.len() as u32) as usize];
                    s.extend_from_slice(format!("{w}_{} ", (i ^ j) % 97).as_bytes());
                }
                s
            })
            .collect()
    }

    #[test]
    fn trains_and_names_itself() {
        let raw = train(&samples()).expect("trained");
        let dict = Dictionary::new(raw, 3).expect("has an id");
        assert_ne!(dict.id(), 0);
        assert_eq!(dict.meta_key(), format!("dict/{:08x}", dict.id()).into_bytes());
    }

    /// The right magic number and id, then tables zstd cannot load: such a
    /// record (sent by a replica) made every later commit panic.
    #[test]
    fn a_dictionary_zstd_cannot_load_is_refused() {
        let mut raw = vec![0x37, 0xA4, 0x30, 0xEC, 1, 0, 0, 0];
        raw.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        assert_eq!(id_of(&raw), Some(1));
        assert_eq!(check(&raw), None);
        assert!(Dictionary::new(raw, 3).is_none());
    }

    #[test]
    fn too_little_to_learn_from() {
        assert!(train(&vec![b"tiny".to_vec(); 10]).is_none());
        assert!(Dictionary::new(b"not a dictionary".to_vec(), 3).is_none());
    }

    #[test]
    fn lowest_id_is_current() {
        let mut set = DictionarySet::default();
        let a = Dictionary::new(train(&samples()).expect("a"), 3).expect("a");
        let b = Dictionary::new(train(&samples()[100..]).expect("b"), 3).expect("b");
        let low = a.id().min(b.id());
        set.add(a);
        set.add(b);
        assert_eq!(set.current().expect("current").id(), low);
        assert_eq!(set.list().len(), 2);
    }
}
