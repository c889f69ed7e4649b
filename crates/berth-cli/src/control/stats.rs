//! The `stats` object: the server's counters, its buffer pool and its
//! worker queue, read without stopping anything.

use berth::{BufPool, CloseReason, ServerHandle, ServerStats, WorkerPool};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// What `{"cmd":"stats"}` answers (under `"stats"`) and `berth ctl stats`
/// prints, its fields in this order.
#[derive(Debug, serde::Serialize)]
pub struct StatsReport {
    /// `io_uring` or `epoll`.
    engine: String,
    io_threads: usize,
    /// Accepting is paused.
    paused: bool,
    /// The graceful drain has begun.
    draining: bool,
    uptime_secs: u64,
    connections: Connections,
    /// Bytes delivered to the handler.
    bytes_in: u64,
    /// Bytes the handler wrote that the kernel took.
    bytes_out: u64,
    buffers: Buffers,
    /// Jobs waiting for a worker thread (pop3; 0 for servers without workers).
    worker_queue_depth: usize,
}

#[derive(Debug, serde::Serialize)]
struct Connections {
    /// Open now.
    active: u64,
    accepted: u64,
    closed: u64,
    /// Keyed by `CloseReason::name` (`client_close`, `server_close`,
    /// `reset`, `error`, `timeout`, `limit`, `shutdown`); they add up to
    /// `closed`.
    closed_by_reason: ByReason,
    /// Refused at accept by `--max-connections` (also counted as accepted
    /// and closed for `limit`).
    refused_max_connections: u64,
    /// Refused by `--max-connections-per-ip`.
    refused_per_ip: u64,
}

/// Closes by reason, in the order of `CloseReason::ALL`.
#[derive(Debug)]
struct ByReason(ServerStats);

impl Serialize for ByReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(CloseReason::ALL.len()))?;
        for reason in CloseReason::ALL {
            map.serialize_entry(reason.name(), &self.0.closed_for(reason))?;
        }
        map.end()
    }
}

/// The IO buffer pool (`PoolStats`).
#[derive(Debug, serde::Serialize)]
struct Buffers {
    allocated: usize,
    pooled: usize,
    in_use: usize,
}

impl StatsReport {
    /// Read the counters now.
    pub fn read(handle: &ServerHandle, pool: &BufPool, workers: Option<&WorkerPool>) -> Self {
        let s = handle.stats();
        let p = pool.stats();
        StatsReport {
            engine: handle.engine().to_string(),
            io_threads: handle.io_threads(),
            paused: handle.is_paused(),
            draining: handle.is_shutting_down(),
            uptime_secs: handle.uptime().as_secs(),
            connections: Connections {
                active: s.open(),
                accepted: s.accepted,
                closed: s.closed,
                closed_by_reason: ByReason(s),
                refused_max_connections: s.refused_max_connections,
                refused_per_ip: s.refused_per_ip,
            },
            bytes_in: s.bytes_read,
            bytes_out: s.bytes_written,
            buffers: Buffers {
                allocated: p.allocated,
                pooled: p.pooled,
                in_use: p.in_use,
            },
            worker_queue_depth: workers.map_or(0, |w| w.stats().queued),
        }
    }
}
