//! The command line of `berth bench`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use berth::EngineChoice;
use clap::Args;

use super::attack::AttackPlan;
use super::mode::Mode;

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
    /// repeated); each connection binds a port of its own, in turn, outside
    /// the kernel's ephemeral range (so that the kernel's own choices for
    /// other programs' connects are left alone), and one that another
    /// socket holds is left for the next (counted in `connect_retries`, not
    /// as an error). Default: 127.0.0.2 to 127.0.0.5 for `--churn`
    /// against an IPv4 loopback address (letting the kernel pick a port
    /// means searching past every port still in TIME_WAIT, which caps a
    /// churn run at the load generator; 127.0.0.1 is left out because
    /// ordinary sockets hold ports there), otherwise none (the kernel picks).
    #[arg(long, value_delimiter = ',')]
    pub(super) source: Vec<IpAddr>,
    /// Attack beside the load: this many slowloris connections, each
    /// sending one byte every `--slowloris-interval` seconds and never
    /// finishing anything (in packet mode: a 255-byte packet, one byte at
    /// a time). Opened from a thread of their own as the run starts.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub(super) slowloris: u32,
    /// Seconds between two bytes of a slowloris connection.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub(super) slowloris_interval: f64,
    /// Attack beside the load: this many connections that send as fast as
    /// the server takes bytes (whole packets in packet mode) and never
    /// read, so its replies pile up. One thread each.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(super) never_read: u32,
    /// Reopen attacker connections the server closes (slowloris: at its
    /// next byte; never-read: after 100 ms). Without it, a closed attacker
    /// stays closed.
    #[arg(long)]
    pub(super) attack_reconnect: bool,
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
        if !(0.001..=3600.0).contains(&self.slowloris_interval) {
            return Err("--slowloris-interval must be 0.001 to 3600 seconds".into());
        }
        Ok(())
    }

    /// The attack these flags ask for (possibly none).
    pub(super) fn attack_plan(&self) -> AttackPlan {
        AttackPlan {
            addr: self.addr,
            mode: self.mode,
            slowloris: self.slowloris,
            slowloris_interval: Duration::from_secs_f64(self.slowloris_interval),
            never_read: self.never_read,
            reconnect: self.attack_reconnect,
        }
    }
}
