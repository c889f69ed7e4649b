//! Fuzz the PROXY header parser: see `berth::proxy::fuzzing::check_proxy`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth::proxy::fuzzing::check_proxy(data));
