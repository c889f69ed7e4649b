//! How messages are framed on the wire (`--mode`): what the flags choose,
//! and what the message template and the attackers build on.

use clap::ValueEnum;

/// How messages are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A plain byte stream (for `berth echo`).
    Echo,
    /// 1-byte-header packets of at most 255 bytes (for `berth packet-echo`);
    /// a message of `--size` bytes is sent as consecutive packets.
    Packet,
}
