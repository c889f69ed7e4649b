//! Counters of one IO thread, written only by it and summed by
//! [`ServerStats`](crate::ServerStats) when read.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one IO thread, written only by it.
#[derive(Debug, Default)]
pub(crate) struct ThreadStats {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
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
