//! The codecs' fuzz targets on stable Rust: each target's check
//! (`berth::codec::fuzzing`) over every file of its seed corpus
//! (`fuzz/corpus/<target>/`), then over generated inputs (see
//! `fuzz/stable.rs`).

#[path = "../../../fuzz/stable.rs"]
mod stable;

use berth::codec::fuzzing::{check_length_field, check_line};
use proptest::prelude::*;

/// The line codec's input begins with 5 configuration bytes; then lines.
const LINE_WORDS: &[&[u8]] = &[b"\r\n", b"\n", b"\r", b"\r\r\n"];

#[test]
fn length_field_corpus() {
    assert!(stable::run_corpus("length_field", check_length_field) >= 5);
}

#[test]
fn line_corpus() {
    assert!(stable::run_corpus("line", check_line) >= 5);
}

proptest! {
    #![proptest_config(stable::config())]

    #[test]
    fn length_field_generated(data in stable::inputs("length_field", &[])) {
        check_length_field(&data.0);
    }

    #[test]
    fn line_generated(data in stable::inputs("line", LINE_WORDS)) {
        check_line(&data.0);
    }
}
