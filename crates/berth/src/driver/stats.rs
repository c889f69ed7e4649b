//! Counters of one IO thread, written only by it and summed by
//! [`ServerStats`](crate::ServerStats) when read.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer ended its stream first, then the connection closed.
    ClientClose,
    /// The server closed it (the handler, or its default `closing`).
    ServerClose,
    /// The peer reset it.
    Reset,
    /// A read or write failed, or a handler callback panicked.
    Error,
    /// A timeout ran out.
    Timeout,
    /// A limit: refused at accept, or its write queue overflowed.
    Limit,
    /// The server shut down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in the order of [`ServerStats::closed_by_reason`](crate::ServerStats::closed_by_reason).
    pub const ALL: [CloseReason; 7] = [
        CloseReason::ClientClose,
        CloseReason::ServerClose,
        CloseReason::Reset,
        CloseReason::Error,
        CloseReason::Timeout,
        CloseReason::Limit,
        CloseReason::Shutdown,
    ];

    /// The reason's name in stats and metrics (`client_close`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::ServerClose => "server_close",
            CloseReason::Reset => "reset",
            CloseReason::Error => "error",
            CloseReason::Timeout => "timeout",
            CloseReason::Limit => "limit",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Counters of one IO thread, written only by it.
#[derive(Debug, Default)]
pub(crate) struct ThreadStats {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    /// Closes by [`CloseReason`], in the order of `CloseReason::ALL`.
    pub closed_by: [AtomicU64; 7],
    /// Connections refused at accept for `max_connections` / per address.
    pub refused: [AtomicU64; 2],
    /// Connections closed for lack of a valid PROXY protocol header.
    pub proxy_errors: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    /// A gauge: receive buffers in the thread's io_uring buffer ring.
    pub ring_buffers: AtomicU64,
}

impl ThreadStats {
    /// Add `n` to a counter of this thread.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        // Single writer: a plain load/store avoids a locked instruction.
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}
