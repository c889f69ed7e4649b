//! Runs every file of the fuzz seed corpora (`fuzz/corpus/<target>/`)
//! through the same checks as the fuzz targets.

use std::fs;
use std::path::PathBuf;

use berth::codec::fuzzing::{check_length_field, check_line};

/// Run `check` on every file of `fuzz/corpus/<target>`; returns how many.
fn run_corpus(target: &str, check: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in &files {
        let data = fs::read(file).expect("corpus file");
        eprintln!("{target}: {}", file.display());
        check(&data);
    }
    files.len()
}

#[test]
fn length_field_corpus() {
    assert!(run_corpus("length_field", check_length_field) >= 5);
}

#[test]
fn line_corpus() {
    assert!(run_corpus("line", check_line) >= 5);
}
