//! What a run counts: the measured window, latency histograms sharded by
//! connection, and event counters.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth::Conn;
use hdrhistogram::Histogram;

/// When the run began, and the part of it that is measured (after the
/// warm-up). Timestamps in messages are nanoseconds since `start`.
pub(super) struct Window {
    pub(super) start: Instant,
    pub(super) from: Instant,
    pub(super) to: Instant,
}

impl Window {
    pub(super) fn new(start: Instant, warmup: Duration, duration: Duration) -> Self {
        Window {
            start,
            from: start + warmup,
            to: start + warmup + duration,
        }
    }

    /// Nanoseconds since the run began.
    pub(super) fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Nanoseconds from the run's start to `t` (0 for a time before it).
    pub(super) fn ns_at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Whether `t` falls in the measured part of the run.
    pub(super) fn measures(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

/// Events of the whole run, counted by every IO thread.
#[derive(Default)]
pub(super) struct Counters {
    /// Echoes that did not match what was sent.
    pub(super) mismatches: AtomicU64,
    /// Connects that failed while the run lasted.
    pub(super) connect_errors: AtomicU64,
    /// Connections the server closed while the run lasted (not in churn).
    pub(super) closes: AtomicU64,
    /// Churn: connections that finished their echo in the measured window.
    pub(super) completed_conns: AtomicU64,
    /// Connections established (for the progress line).
    pub(super) established: AtomicU64,
    /// Messages echoed, warm-up included (for the progress line).
    pub(super) total_messages: AtomicU64,
}

/// Latencies and message count of the measured window, for the
/// connections of one shard.
pub(super) struct Shard {
    pub(super) hist: Histogram<u64>,
    pub(super) messages: u64,
}

/// A histogram per shard of connections (by connection id), so IO threads
/// seldom contend for a lock; a received buffer takes one lock for all its
/// messages.
pub(super) struct Latency {
    shards: Vec<Mutex<Shard>>,
}

/// An empty histogram of 1 µs to 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

impl Latency {
    pub(super) fn new() -> Self {
        Latency {
            shards: (0..256)
                .map(|_| {
                    Mutex::new(Shard {
                        hist: histogram(),
                        messages: 0,
                    })
                })
                .collect(),
        }
    }

    /// The histogram shard of connection `conn`.
    pub(super) fn shard(&self, conn: &Conn<'_>) -> MutexGuard<'_, Shard> {
        let shard = (conn.id().as_u64() & 0xff) as usize % self.shards.len();
        self.shards[shard].lock().unwrap()
    }

    /// Every shard added up: the latencies and the number of messages.
    pub(super) fn merged(&self) -> (Histogram<u64>, u64) {
        let mut hist = histogram();
        let mut messages = 0;
        for s in &self.shards {
            let s = s.lock().unwrap();
            let _ = hist.add(&s.hist);
            messages += s.messages;
        }
        (hist, messages)
    }
}
