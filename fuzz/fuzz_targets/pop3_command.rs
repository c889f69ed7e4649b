//! Fuzz the POP3 command parser and session: see
//! `berth_pop3::fuzzing::check_commands`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| berth_pop3::fuzzing::check_commands(data));
