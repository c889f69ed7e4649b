//! Logs: `tracing` to stderr, as text or one JSON object per line, through
//! a non-blocking writer so that a slow stderr never holds up an IO thread.
//!
//! What is logged where: one line per server event at info (listening,
//! paused, resumed, draining, stopped), one per connection event at debug
//! (opened, closed with its reason, refused, timed out), nothing per
//! message.

use clap::ValueEnum;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO berth::server: listening addr=...`
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and the
    /// event's fields at the top level.
    Json,
}

/// Lines the writer holds for stderr before it drops new ones.
const BUFFERED_LINES: usize = 64 * 1024;

/// Keeps the log writer's thread; dropping it writes out what is queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Send logs to stderr. The filter is `RUST_LOG`, else `BERTH_LOG`, else
/// `info` (`debug` with `verbose`), in `tracing-subscriber`'s
/// `EnvFilter` syntax (`info,berth=debug`).
///
/// Events go through a bounded queue to a writer thread: an IO thread
/// never waits for stderr. If stderr stalls and the queue fills, new lines
/// are dropped (lossy) rather than slowing the server down.
///
/// Starts a thread: call it after blocking the termination signals, so
/// that the thread inherits the mask.
pub fn init(format: LogFormat, verbose: bool) -> LogGuard {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_from_env("BERTH_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(default));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("berth-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    LogGuard { _writer: guard }
}
