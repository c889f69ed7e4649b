//! The PROXY header parser's fuzz checks on stable Rust: every file of the
//! seed corpus (`fuzz/corpus/proxy/`), then a bounded number of seeded
//! random and mutated inputs, through the same checks as the fuzz target.

use std::fs;
use std::path::PathBuf;

use berth::proxy::fuzzing::check_proxy;
use berth::proxy::{Parsed, parse};

/// The corpus files that hold a valid header; every other one must be
/// refused.
const VALID: [&str; 10] = [
    "v1_tcp4_then_request",
    "v1_tcp6",
    "v1_unknown_short",
    "v1_unknown_worst_case_107",
    "v2_local",
    "v2_tcp4",
    "v2_tcp4_tlvs",
    "v2_tcp6_ssl_tlv",
    "v2_udp4",
    "v2_unix_stream",
];

/// The seed corpus, sorted by name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/proxy");
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, fs::read(&p).expect("corpus file"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn proxy_corpus() {
    let files = corpus();
    assert!(files.len() >= 15, "the seed corpus is missing");
    for (name, data) in &files {
        eprintln!("proxy: {name}");
        check_proxy(data);
        let answer = parse(data);
        if VALID.contains(&name.as_str()) {
            assert!(
                matches!(answer, Ok(Parsed::Complete { .. })),
                "{name}: {answer:?}"
            );
        } else {
            assert!(answer.is_err(), "{name} is accepted: {answer:?}");
        }
    }
}

/// xorshift64*: deterministic inputs from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A byte, biased towards the ones the grammar cares about.
    fn byte(&mut self) -> u8 {
        const INTERESTING: &[u8] = b"\r\n :.0123456789abcdefPROXYTCP46UNKNOWN\x00\x11\x20\x21\xff";
        if self.below(2) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
}

/// Change a few bytes of `data`: set, insert, remove, or cut short.
fn mutate(rng: &mut Rng, mut data: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let n = data.len();
        match rng.below(5) {
            0 if n > 0 => data[rng.below(n)] = rng.byte(),
            1 => data.insert(rng.below(n + 1), rng.byte()),
            2 if n > 0 => {
                data.remove(rng.below(n));
            }
            3 if n > 0 => data.truncate(rng.below(n)),
            _ if n > 16 => {
                // A random length field for version 2 headers.
                data[14] = rng.byte();
                data[15] = rng.byte();
            }
            _ => {}
        }
    }
    data
}

#[test]
fn proxy_random_and_mutated_inputs() {
    let files = corpus();
    let mut rng = Rng(0x5eed_0f9a_110e_2b01);
    for i in 0..30_000 {
        let data = match i % 3 {
            0 | 1 => {
                let (_, seed) = &files[rng.below(files.len())];
                mutate(&mut rng, seed.clone())
            }
            _ => {
                let start: &[u8] = match rng.below(3) {
                    0 => b"PROXY ",
                    1 => b"\r\n\r\n\0\r\nQUIT\n",
                    _ => b"",
                };
                let len = rng.below(120);
                let tail: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
                [start, &tail].concat()
            }
        };
        check_proxy(&data);
    }
}
