//! What a run counts: the measured window, latency histograms sharded by
//! connection, and event counters.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
    /// The same, by the kind of their error.
    pub(super) connect_errors_by_kind: ByKind,
    /// Connects from a chosen local address and port that found the pair
    /// taken, dialled again from the next pair (not errors).
    pub(super) connect_retries: AtomicU64,
    /// The same, by the kind of their error.
    pub(super) connect_retries_by_kind: ByKind,
    /// Connections the server closed while the run lasted (not in churn).
    pub(super) closes: AtomicU64,
    /// Churn: connections that finished their echo in the measured window.
    pub(super) completed_conns: AtomicU64,
    /// Connections established (for the progress line).
    pub(super) established: AtomicU64,
    /// Messages echoed, warm-up included (for the progress line).
    pub(super) total_messages: AtomicU64,
}

impl Counters {
    /// A connect failed with `err` while the run lasted.
    pub(super) fn connect_error(&self, err: &io::Error) {
        self.connect_errors.fetch_add(1, Relaxed);
        self.connect_errors_by_kind.add(err);
    }

    /// A connect failed with `err` and is dialled again.
    pub(super) fn connect_retry(&self, err: &io::Error) {
        self.connect_retries.fetch_add(1, Relaxed);
        self.connect_retries_by_kind.add(err);
    }
}

/// Errors counted by kind: a handful of kinds in a run, and errors are
/// rare, so one lock for all of them.
#[derive(Default)]
pub(super) struct ByKind(Mutex<BTreeMap<String, u64>>);

impl ByKind {
    pub(super) fn add(&self, err: &io::Error) {
        *self.0.lock().unwrap().entry(kind_name(err)).or_default() += 1;
    }

    /// Every kind seen, with its count, by name.
    pub(super) fn counts(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
}

/// The name of an error's kind (`io::ErrorKind`, e.g. `AddrInUse` or
/// `ConnectionRefused`), or `os_error_N` for a system error that std does
/// not name.
fn kind_name(err: &io::Error) -> String {
    let kind = format!("{:?}", err.kind());
    match err.raw_os_error() {
        Some(n) if kind == "Uncategorized" || kind == "Other" => format!("os_error_{n}"),
        _ => kind,
    }
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

#[cfg(test)]
mod tests {
    use super::ByKind;
    use std::io;

    #[test]
    fn errors_are_counted_by_the_name_of_their_kind() {
        let k = ByKind::default();
        k.add(&io::Error::from(io::ErrorKind::AddrInUse));
        k.add(&io::Error::from(io::ErrorKind::AddrInUse));
        k.add(&io::Error::new(
            io::ErrorKind::TimedOut,
            "connect timed out",
        ));
        // An errno std has no kind for is named by its number.
        k.add(&io::Error::from_raw_os_error(4095));
        let got: Vec<(String, u64)> = k.counts().into_iter().collect();
        let want = [("AddrInUse", 2), ("TimedOut", 1), ("os_error_4095", 1)];
        assert_eq!(got, want.map(|(k, n)| (k.to_owned(), n)));
    }
}
