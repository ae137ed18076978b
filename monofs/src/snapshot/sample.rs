//! The files a repository's dictionary is trained from: small regular
//! files, spread evenly over the whole scanned tree so that no single
//! directory's style dominates.

use std::path::Path;

use rayon::prelude::*;

use super::scan::{ScanDir, ScanNode};
use crate::crypto::dictionary;

/// How many files are read; zstd learns little more from more, and
/// training time grows with the sample.
const MAX_FILES: usize = 512;

/// Files smaller than this teach nothing a dictionary can reuse.
const MIN_FILE: u64 = 256;

/// Contents of up to [`MAX_FILES`] small files of `root`; files that
/// cannot be read are skipped (the snapshot reports them).
pub(super) fn read(root: &ScanDir) -> Vec<Vec<u8>> {
    let mut small = Vec::new();
    collect(root, &mut small);
    let step = small.len().div_ceil(MAX_FILES).max(1);
    let picked: Vec<&Path> = small.into_iter().step_by(step).collect();
    picked.into_par_iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn collect<'a>(dir: &'a ScanDir, out: &mut Vec<&'a Path>) {
    for (_, node) in &dir.entries {
        match node {
            ScanNode::Dir(sub) => collect(sub, out),
            ScanNode::File { path, stat, .. } if (MIN_FILE..=dictionary::MAX_INPUT as u64).contains(&stat.size) => {
                out.push(path)
            }
            _ => {}
        }
    }
}
