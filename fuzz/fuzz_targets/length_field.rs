//! Fuzz the length-field codec: see `berth::codec::fuzzing::check_length_field`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth::codec::fuzzing::check_length_field(data));
