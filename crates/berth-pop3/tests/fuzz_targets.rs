//! The POP3 fuzz target on stable Rust: its check
//! (`berth_pop3::fuzzing::check_commands`) over every file of its seed
//! corpus (`fuzz/corpus/pop3_command/`), then over generated inputs (see
//! `fuzz/stable.rs`).

#[path = "../../../fuzz/stable.rs"]
mod stable;

use berth_pop3::fuzzing::check_commands;
use proptest::prelude::*;

/// Words of the input format: keywords, separators, a login.
const WORDS: &[&[u8]] = &[
    b"\r\n",
    b" ",
    b"USER ",
    b"PASS ",
    b"APOP ",
    b"STAT",
    b"LIST ",
    b"RETR ",
    b"DELE ",
    b"NOOP",
    b"RSET",
    b"QUIT",
    b"TOP ",
    b"UIDL",
    b"CAPA",
    b"alice",
    b"wonderland",
    b"1",
    b"0",
    b"99999999999999999999999",
];

#[test]
fn pop3_command_corpus() {
    assert!(stable::run_corpus("pop3_command", check_commands) >= 10);
}

proptest! {
    #![proptest_config(stable::config())]

    #[test]
    fn pop3_command_generated(data in stable::inputs("pop3_command", WORDS)) {
        check_commands(&data.0);
    }
}
