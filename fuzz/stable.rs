//! The fuzz targets on stable Rust: included (`#[path]`) by each crate's
//! `tests/fuzz_targets.rs`, so that `cargo test --workspace` runs every
//! target's check over its seed corpus and over generated inputs, with no
//! nightly and no libFuzzer.
//!
//! Generated inputs are seeds with random edits (bytes set, inserted,
//! removed, or copied from elsewhere in the input, favouring the bytes and
//! words the target's input format cares about) and plain random bytes.
//! There are [`CASES`] of them per target, or `PROPTEST_CASES` when that is
//! set. A failing input is shrunk and printed; to keep it as a regression
//! test, add it to the corpus (`fuzz/corpus/<target>/`).

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

/// Generated inputs per target when `PROPTEST_CASES` is not set: a second
/// or two per target in a debug build.
pub const CASES: u32 = 2_000;

/// The proptest configuration of every target: [`CASES`] inputs (or
/// `PROPTEST_CASES`), and at most a minute spent shrinking a failure.
pub fn config() -> ProptestConfig {
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default().cases
    } else {
        CASES
    };
    ProptestConfig {
        cases,
        max_shrink_time: Duration::from_secs(60).as_millis() as u32,
        ..ProptestConfig::default()
    }
}

/// The seed corpus of `target`: every file of `fuzz/corpus/<target>/`,
/// sorted by name. Panics if there is none.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
        .into_iter()
        .map(|file| {
            let data = fs::read(&file).expect("corpus file");
            (file, data)
        })
        .collect()
}

/// A generated input; shown as an escaped byte string when a check fails.
#[derive(Clone)]
pub struct Input(pub Vec<u8>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Run `check` on every seed of `target`; returns how many there were.
pub fn run_corpus(target: &str, check: fn(&[u8])) -> usize {
    let seeds = corpus(target);
    for (file, data) in &seeds {
        eprintln!("{target}: {}", file.display());
        check(data);
    }
    seeds.len()
}

/// One edit of an input.
#[derive(Debug, Clone)]
enum Edit {
    /// Overwrite the byte at an index.
    Set(Index, u8),
    /// Insert bytes before an index.
    Insert(Index, Vec<u8>),
    /// Remove up to this many bytes from an index.
    Remove(Index, usize),
    /// Copy up to this many bytes from the first index to before the second.
    Copy(Index, usize, Index),
}

impl Edit {
    fn apply(&self, data: &mut Vec<u8>) {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match self {
            Edit::Set(i, b) if !data.is_empty() => {
                let i = at(i, data.len());
                data[i] = *b;
            }
            Edit::Set(..) => {}
            Edit::Insert(i, bytes) => {
                let i = at(i, data.len() + 1);
                data.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove(i, n) => {
                let i = at(i, data.len() + 1);
                let end = (i + n).min(data.len());
                data.drain(i..end);
            }
            Edit::Copy(from, n, to) => {
                let from = at(from, data.len() + 1);
                let part = data[from..(from + n).min(data.len())].to_vec();
                let to = at(to, data.len() + 1);
                data.splice(to..to, part);
            }
        }
    }
}

/// Bytes that framing and parsing care about.
const SPECIAL: &[u8] = b"\0\x01\x02\x7f\x80\xff\r\n 019";

/// A byte: often one of [`SPECIAL`], otherwise any.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), prop::sample::select(SPECIAL)]
}

/// Bytes to insert: random ones, or a word of the target's `dictionary`.
fn insertion(dictionary: &'static [&'static [u8]]) -> BoxedStrategy<Vec<u8>> {
    let random = prop::collection::vec(byte(), 1..8);
    if dictionary.is_empty() {
        return random.boxed();
    }
    let word = prop::sample::select(dictionary).prop_map(<[u8]>::to_vec);
    prop_oneof![random, word].boxed()
}

fn edit(dictionary: &'static [&'static [u8]]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), insertion(dictionary)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<Index>(), 1usize..300, any::<Index>()).prop_map(|(f, n, t)| Edit::Copy(f, n, t)),
    ]
}

/// Inputs for `target`: mostly its seeds with up to 8 edits, sometimes
/// random bytes (up to 600). `dictionary` holds words of its input format
/// to insert.
pub fn inputs(
    target: &str,
    dictionary: &'static [&'static [u8]],
) -> impl Strategy<Value = Input> + use<> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, d)| d).collect();
    let edited = (
        prop::sample::select(seeds),
        prop::collection::vec(edit(dictionary), 0..8),
    )
        .prop_map(|(mut data, edits)| {
            for e in &edits {
                e.apply(&mut data);
            }
            data
        });
    let random = prop::collection::vec(byte(), 0..600);
    prop_oneof![3 => edited, 1 => random].prop_map(Input)
}
