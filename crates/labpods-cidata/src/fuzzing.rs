//! Fuzz entry point (`fuzz/fuzz_targets/cidata_image.rs`) and the replay of its corpus in
//! this crate's unit tests: the reader gets whatever a seed URL served (the simulator reads
//! seeds as a host would). Any bytes: no panic, and what reads as a seed writes back to an
//! image that reads the same.

use crate::{File, read, write};

/// Reads `image`; panics on a broken invariant.
pub fn image(image: &[u8]) {
    let Ok(seed) = read(image) else {
        return;
    };
    let files: Vec<File<'_>> = seed
        .files
        .iter()
        .map(|(name, data)| File { name, data })
        .collect();
    // Not every readable image is one this writer makes (names, counts): only those are
    // compared.
    if let Ok(again) = write(&files, 0) {
        let back = read(&again).unwrap_or_else(|e| panic!("a written image does not read: {e}"));
        // A foreign image's directory need not be in order; ours always is.
        let mut read_back = back.files.clone();
        read_back.sort();
        assert_eq!(
            back.files, read_back,
            "the writer's directory is not sorted"
        );
        let mut files = seed.files.clone();
        files.sort();
        assert_eq!(back.files, files);
        assert_eq!(back.volume_id, "cidata");
    }
}

#[cfg(test)]
mod tests {
    /// The fuzz corpus (seeds this crate and pycdlib wrote, and what the fuzzer kept) still
    /// holds.
    #[test]
    fn the_fuzz_corpus_replays_cleanly() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/cidata_image"
        );
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            super::image(&input);
            n += 1;
        }
        assert!(n >= 2, "only {n} inputs in {dir}");
    }
}
