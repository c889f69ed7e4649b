//! The command line of `berth bench`.

use std::net::{IpAddr, SocketAddr};

use berth::EngineChoice;
use clap::{Args, ValueEnum};

/// How messages are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A plain byte stream (for `berth echo`).
    Echo,
    /// 1-byte-header packets of at most 255 bytes (for `berth packet-echo`);
    /// a message of `--size` bytes is sent as consecutive packets.
    Packet,
}

/// Flags of `berth bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server to load.
    #[arg(long, default_value = berth::DEFAULT_ADDR)]
    pub(super) addr: SocketAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(super) conns: u32,
    /// Message size in bytes (packet headers included in packet mode).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=(16 << 20)))]
    pub(super) size: u32,
    /// Messages in flight per connection (1 = ping-pong).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(super) depth: u32,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    pub(super) duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub(super) warmup: f64,
    /// Open loop: send this many messages per second in total, whatever
    /// the replies do (latency counts from the intended send time).
    #[arg(long)]
    pub(super) rate: Option<f64>,
    /// Message framing.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub(super) mode: Mode,
    /// IO threads of the load generator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub(super) threads: u8,
    /// Engine of the load generator.
    #[arg(long)]
    pub(super) engine: Option<EngineChoice>,
    /// Churn: each connection sends one message, waits for the echo,
    /// closes, and a new connection takes its place. Reports connections/s.
    #[arg(long)]
    pub(super) churn: bool,
    /// Local addresses to connect from, in turn (comma-separated or
    /// repeated); each connection binds its own port from the kernel's
    /// ephemeral range. Default: 127.0.0.2 to 127.0.0.5 for `--churn`
    /// against an IPv4 loopback address (letting the kernel pick a port
    /// means searching past every port still in TIME_WAIT, which caps a
    /// churn run at the load generator; 127.0.0.1 is left out because
    /// ordinary sockets hold ports there), otherwise none (the kernel picks).
    #[arg(long, value_delimiter = ',')]
    pub(super) source: Vec<IpAddr>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

impl BenchArgs {
    /// Reject the values clap's parsers let through but a run cannot use.
    pub(super) fn check(&self) -> Result<(), String> {
        if !(self.duration > 0.0 && self.warmup >= 0.0) {
            return Err("--duration must be positive and --warmup not negative".into());
        }
        if self.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err("--rate must be a positive number of messages per second".into());
        }
        Ok(())
    }
}
