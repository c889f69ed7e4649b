//! The worker pool's value types: its errors, its counters and its
//! constants.

use std::time::Duration;

/// How long dropping the last [`WorkerPool`](super::WorkerPool) clone waits for queued jobs.
pub const DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// The default per-connection queue bound.
pub const DEFAULT_QUEUE_PER_CONNECTION: usize = 64;

/// Why a [`WorkerPool`](super::WorkerPool) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerBuildError {
    /// [`WorkerPoolBuilder::threads`](super::WorkerPoolBuilder::threads) was zero.
    #[error("a worker pool needs at least one thread")]
    NoThreads,
    /// [`WorkerPoolBuilder::queue_per_connection`](super::WorkerPoolBuilder::queue_per_connection) was zero.
    #[error("the per-connection queue bound must be at least 1")]
    NoQueue,
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Why a job was not accepted. The job is dropped without running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkError {
    /// The pool is shutting down or shut down.
    #[error("the worker pool is shut down")]
    ShutDown,
    /// The connection is already closed ([`WorkerPool::submit_to`](super::WorkerPool::submit_to) only).
    #[error("the connection is closed")]
    ConnClosed,
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerStats {
    /// Worker threads started.
    pub threads: usize,
    /// Jobs waiting to start, over every connection.
    pub queued: usize,
    /// Workers running a job now.
    pub busy: usize,
    /// Jobs that returned normally.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs dropped unrun because shutdown timed out.
    pub discarded: u64,
    /// Connections with a queue now (work waiting or running).
    pub connections: usize,
    /// Times the pool paused reading on a connection because its queue was full.
    pub read_pauses: u64,
}
