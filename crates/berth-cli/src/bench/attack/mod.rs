//! Attackers that run beside the measured load (`--slowloris`,
//! `--never-read`): connections that hold a server's resources without
//! doing useful work, so a run shows what the good clients keep.
//!
//! They are plain blocking or non-blocking `std` sockets on threads of
//! their own, not connections of the berth client: a never-reading
//! connection must not read, which a berth connection always does, and
//! the attackers must cost the load generator's CPU next to nothing
//! unless the server lets them (a server that keeps reading what it
//! cannot send back keeps the never-reading writers busy).
//!
//! - `slowloris`: one thread, N non-blocking connections, each sending one
//!   byte every `--slowloris-interval` seconds (default 1) and throwing
//!   away what comes back. In packet mode the first byte is a header
//!   announcing a 255-byte packet, so a packet completes only every 255
//!   bytes (more than four minutes at one byte a second).
//! - `never_read`: one thread per connection, writing as fast as the
//!   socket takes it (64 KiB at a time; whole 255-byte packets in packet
//!   mode) and never reading, so the server's replies pile up.
//!
//! A connection the server closes is reopened only with
//! `--attack-reconnect` (slowloris: at its next byte; never-read: after
//! 100 ms). Every thread stops when the run stops, or at its deadline.

mod never_read;
mod slowloris;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::mode::Mode;

/// What the attackers do.
#[derive(Debug, Clone, Copy)]
pub(super) struct AttackPlan {
    pub(super) addr: SocketAddr,
    pub(super) mode: Mode,
    pub(super) slowloris: u32,
    pub(super) slowloris_interval: Duration,
    pub(super) never_read: u32,
    pub(super) reconnect: bool,
}

impl AttackPlan {
    fn is_empty(&self) -> bool {
        self.slowloris == 0 && self.never_read == 0
    }
}

/// Counted by the threads of one kind of attacker.
#[derive(Default)]
struct KindCounters {
    open: AtomicU64,
    closed: AtomicU64,
    reconnects: AtomicU64,
    connect_errors: AtomicU64,
    bytes: AtomicU64,
}

impl KindCounters {
    fn read(&self) -> KindReport {
        KindReport {
            open: self.open.load(Relaxed),
            closed: self.closed.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            connect_errors: self.connect_errors.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
        }
    }
}

/// Counted by the attack threads.
#[derive(Default)]
struct Counters {
    slowloris: KindCounters,
    never_read: KindCounters,
    /// Latest time (ns since the attack began) at which a thread finished
    /// opening its first connections.
    ready_ns: AtomicU64,
    /// Threads that have finished opening their first connections.
    ready_threads: AtomicU64,
}

/// What every attack thread shares.
struct Shared {
    plan: AttackPlan,
    start: Instant,
    /// The run has stopped.
    stop: AtomicBool,
    /// The latest a thread runs, whatever happens to the run.
    deadline: Instant,
    counters: Counters,
}

impl Shared {
    fn over(&self) -> bool {
        self.stop.load(Relaxed) || Instant::now() >= self.deadline
    }

    /// A thread has opened (or tried to open) its first connections.
    fn mark_ready(&self) {
        let ns = self.start.elapsed().as_nanos() as u64;
        self.counters.ready_ns.fetch_max(ns, Relaxed);
        self.counters.ready_threads.fetch_add(1, Relaxed);
    }
}

/// The attack under way.
pub(super) struct Attack {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What one kind of attacker did.
pub(super) struct KindReport {
    /// Connections open when the attack stopped.
    pub(super) open: u64,
    /// Connections the server closed (or reset).
    pub(super) closed: u64,
    /// Connections reopened (`--attack-reconnect`).
    pub(super) reconnects: u64,
    /// Connects that failed, first ones and reconnects.
    pub(super) connect_errors: u64,
    /// Bytes sent (for never-reading connections: got into their sockets).
    pub(super) bytes: u64,
}

/// What the attack did, for the report.
pub(super) struct AttackReport {
    pub(super) slowloris: KindReport,
    pub(super) never_read: KindReport,
    /// Milliseconds from the start of the attack until every attacker had
    /// opened its first connections (or until it stopped, if one had not).
    pub(super) ready_ms: f64,
}

impl Attack {
    /// Start the attackers of `plan` (none if it names none); they stop at
    /// `deadline` at the latest.
    pub(super) fn start(plan: AttackPlan, deadline: Instant) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            plan,
            start: Instant::now(),
            stop: AtomicBool::new(false),
            deadline,
            counters: Counters::default(),
        });
        let mut threads = Vec::new();
        if plan.is_empty() {
            return Ok(Attack { shared, threads });
        }
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| format!("attack thread: {e}"))
        };
        if plan.slowloris > 0 {
            let s = Arc::clone(&shared);
            threads.push(spawn(
                "slowloris".into(),
                Box::new(move || slowloris::run(&s)),
            )?);
        }
        for i in 0..plan.never_read {
            let s = Arc::clone(&shared);
            threads.push(spawn(
                format!("never-read-{i}"),
                Box::new(move || never_read::run(&s)),
            )?);
        }
        Ok(Attack { shared, threads })
    }

    /// Stop every attacker, close their connections, and say what they did.
    pub(super) fn stop(self) -> Option<AttackReport> {
        let stopped_at = self.shared.start.elapsed();
        self.shared.stop.store(true, Relaxed);
        let n_threads = self.threads.len() as u64;
        for t in self.threads {
            let _ = t.join();
        }
        if self.shared.plan.is_empty() {
            return None;
        }
        let c = &self.shared.counters;
        let ready_ns = if c.ready_threads.load(Relaxed) < n_threads {
            stopped_at.as_nanos() as u64
        } else {
            c.ready_ns.load(Relaxed)
        };
        Some(AttackReport {
            slowloris: c.slowloris.read(),
            never_read: c.never_read.read(),
            ready_ms: ready_ns as f64 / 1e6,
        })
    }
}
