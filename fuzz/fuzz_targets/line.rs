//! Fuzz the line codec: see `berth::codec::fuzzing::check_line`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth::codec::fuzzing::check_line(data));
