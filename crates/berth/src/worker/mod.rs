//! A worker pool: business logic off the IO threads.
//!
//! Handler callbacks run on the IO threads and must stay short. Longer work
//! (a database query, a computation) goes to a [`WorkerPool`]: a fixed set
//! of threads, separate from the IO threads, that run jobs and send their
//! results back through the connection's [`ConnHandle`].
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use berth::{Conn, Handler, IoBuf, Lifecycle, Server, WorkerPool};
//!
//! struct Shout {
//!     pool: WorkerPool,
//! }
//!
//! impl Lifecycle for Shout {
//!     type State = ();
//! }
//!
//! impl Handler for Shout {
//!     fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
//!         // The slow part runs on a worker; replies keep the order of reads.
//!         let _ = self.pool.submit(conn, move |reply| {
//!             let _ = reply.write(&buf.to_ascii_uppercase());
//!         });
//!     }
//! }
//!
//! let pool = WorkerPool::builder().threads(2).build().expect("pool starts");
//! let server = Server::builder()
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .start(Shout { pool: pool.clone() })
//!     .expect("server starts");
//! let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut reply = [0u8; 5];
//! client.read_exact(&mut reply).unwrap();
//! assert_eq!(&reply, b"HELLO");
//! drop(client);
//! server.shutdown(Duration::from_secs(1));
//! assert!(pool.shutdown(Duration::from_secs(1)));
//! ```
//!
//! # Per-connection order
//!
//! Each connection with work outstanding has its own FIFO queue, keyed by
//! [`ConnId`]. The queue is scheduled onto the pool as a unit (like an
//! actor's mailbox): at most one worker runs it at a time, one job per
//! turn, so the jobs of one connection run one at a time and in submission
//! order, while the queues of different connections run in parallel. No
//! thread is tied to a connection and no lock is held while a job runs.
//! The queue holds a [`ConnHandle`] while it is non-empty, so a connection
//! with work outstanding is not closed on its own (see
//! [`Lifecycle::closing`](crate::Lifecycle::closing)); the queue and its handle
//! are dropped as soon as it empties.
//!
//! # Flow control
//!
//! Each queue has a bound `B` ([`WorkerPoolBuilder::queue_per_connection`]),
//! counting the jobs waiting to start. A submission is never refused for a
//! full queue, nothing is lost: it is enqueued, and reading on the connection
//! is paused. [`WorkerPool::submit`] (from a callback) pauses at once, on
//! every submission that leaves `B` or more jobs waiting;
//! [`WorkerPool::submit_to`] (from any thread) asks through the handle when
//! the queue becomes full. Reading resumes when the queue drains to the
//! low-water mark `B / 2` (so with `B = 1`, when it empties).
//!
//! So a flooding client cannot grow memory without bound: its connection's
//! queue holds at most `B - 1` jobs plus those submitted by the callback
//! that filled it (one read's worth). One caveat: if a single callback can
//! submit more than `B - B / 2` jobs, a worker can drain the queue to the
//! mark and send a resume while that callback refills it; the resume then
//! lets one more read in before the next full submission pauses again.
//!
//! Pausing shares the connection's one pause flag with the handler: a
//! handler that pauses reading for its own reasons may see the pool resume
//! it.
//!
//! # Failures and shutdown
//!
//! A job that panics is logged, its connection is aborted, and the worker
//! goes on; later jobs of that connection still run (their writes fail with
//! [`ConnError::Closed`](crate::ConnError::Closed)). [`WorkerPool::shutdown`],
//! or dropping the last clone, stops accepting jobs, lets the queued ones
//! run, and joins the threads, waiting no longer than a timeout.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::conn::{Conn, ConnHandle, ConnId};

mod sched;
mod types;

use sched::{Owner, Via};
pub use types::{
    DEFAULT_QUEUE_PER_CONNECTION, DROP_TIMEOUT, WorkError, WorkerBuildError, WorkerStats,
};

/// Configures and builds a [`WorkerPool`].
#[derive(Debug, Clone)]
pub struct WorkerPoolBuilder {
    threads: usize,
    queue: usize,
    name: String,
}

impl WorkerPoolBuilder {
    /// Number of worker threads (default: the available parallelism).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// The per-connection queue bound `B` (default
    /// [`DEFAULT_QUEUE_PER_CONNECTION`]); see the [module docs](self).
    pub fn queue_per_connection(mut self, n: usize) -> Self {
        self.queue = n;
        self
    }

    /// Thread name prefix (default `berth-worker`); threads are `name-0`, `name-1`, ...
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Start the threads.
    pub fn build(self) -> Result<WorkerPool, WorkerBuildError> {
        if self.threads == 0 {
            return Err(WorkerBuildError::NoThreads);
        }
        if self.queue == 0 {
            return Err(WorkerBuildError::NoQueue);
        }
        let owner = Owner::start(self.threads, self.queue, &self.name)?;
        Ok(WorkerPool {
            owner: Arc::new(owner),
        })
    }
}

/// A fixed-size pool of worker threads running jobs for connections, in
/// order per connection and in parallel across connections.
///
/// Cheap to clone: clones share the pool. See the [module docs](self) for
/// ordering, flow control and shutdown.
#[derive(Clone)]
pub struct WorkerPool {
    owner: Arc<Owner>,
}

impl WorkerPool {
    /// A builder with the defaults.
    pub fn builder() -> WorkerPoolBuilder {
        WorkerPoolBuilder {
            threads: thread::available_parallelism().map_or(4, |n| n.get()),
            queue: DEFAULT_QUEUE_PER_CONNECTION,
            name: "berth-worker".to_owned(),
        }
    }

    /// From a [`Handler`](crate::Handler) callback: queue `job` for `conn`.
    /// It runs on a worker after every job submitted before it for this
    /// connection, with a handle to reply through. If this leaves the queue
    /// full, reading on `conn` pauses at once: no further read is delivered
    /// until the queue drains to the low-water mark.
    pub fn submit<F>(&self, conn: &mut Conn<'_>, job: F) -> Result<(), WorkError>
    where
        F: FnOnce(&ConnHandle) + Send + 'static,
    {
        self.owner.inner.enqueue(Via::Conn(conn), Box::new(job))
    }

    /// From any thread: queue `job` for the handle's connection, as
    /// [`WorkerPool::submit`] does. A full queue pauses reading through the
    /// handle, which takes effect shortly after.
    pub fn submit_to<F>(&self, handle: &ConnHandle, job: F) -> Result<(), WorkError>
    where
        F: FnOnce(&ConnHandle) + Send + 'static,
    {
        if !handle.is_open() {
            return Err(WorkError::ConnClosed);
        }
        self.owner.inner.enqueue(Via::Handle(handle), Box::new(job))
    }

    /// Jobs of connection `id` waiting to start (not counting a running one).
    pub fn pending(&self, id: ConnId) -> usize {
        self.owner.inner.pending(id)
    }

    /// The per-connection queue bound.
    pub fn queue_bound(&self) -> usize {
        self.owner.inner.bound
    }

    /// The counters now.
    pub fn stats(&self) -> WorkerStats {
        self.owner.inner.stats()
    }

    /// Stop accepting jobs (for every clone), run the queued ones, and join
    /// the threads, waiting at most `timeout`. Past it, jobs not yet started
    /// are dropped unrun and threads still inside a job are left to finish
    /// on their own. Returns whether every thread finished in time.
    pub fn shutdown(self, timeout: Duration) -> bool {
        self.owner.stop(timeout)
    }
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("bound", &self.owner.inner.bound)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod tests;
