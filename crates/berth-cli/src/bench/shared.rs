//! What the client's IO threads, the pacer and `run` share: the load every
//! connection sends, the measured window, the counters and the dialer.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::args::BenchArgs;
use super::dial::Dialer;
use super::pace::Paced;
use super::stats::{Counters, Latency, Window};
use super::template::Template;

/// What every connection sends.
pub(super) struct Load {
    pub(super) template: Template,
    /// Bytes per message.
    pub(super) size: usize,
    /// Messages in flight per connection (closed loop).
    pub(super) depth: u32,
    /// `--rate`: the pacer sends, not the replies.
    pub(super) open_loop: bool,
    /// `--churn`: one message per connection, then a new connection.
    pub(super) churn: bool,
}

/// Everything the client's IO threads, the pacer and `run` share.
pub(super) struct Shared {
    pub(super) load: Load,
    pub(super) window: Window,
    /// Set when the measured window ends: nothing more is sent, reconnected
    /// or counted as an error.
    pub(super) stop: AtomicBool,
    pub(super) latency: Latency,
    pub(super) counters: Counters,
    pub(super) dialer: Dialer,
    pub(super) paced: Paced,
}

impl Shared {
    pub(super) fn new(args: &BenchArgs) -> Result<Self, String> {
        let dialer = Dialer::new(args)?;
        Ok(Shared {
            load: Load {
                template: Template::new(args.size as usize, args.mode),
                size: args.size as usize,
                depth: args.depth,
                open_loop: args.rate.is_some(),
                churn: args.churn,
            },
            window: Window::new(
                Instant::now(),
                Duration::from_secs_f64(args.warmup),
                Duration::from_secs_f64(args.duration),
            ),
            stop: AtomicBool::new(false),
            latency: Latency::new(),
            counters: Counters::default(),
            dialer,
            paced: Paced::default(),
        })
    }
}
