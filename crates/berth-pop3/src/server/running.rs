//! [`Pop3Server`]: a running POP3 server, and how it stops.
//!
//! [`Pop3Server::builder`] is in `builder.rs`, beside the builder it
//! returns: the builder starts the server, so the server does not depend
//! on it.

use std::net::SocketAddr;
use std::time::Duration;

use berth::{Framed, Server, ServerHandle, WorkerPool};

use super::Pop3Handler;

/// How long [`Pop3Server::shutdown`] waits for the commands still queued.
pub const WORKER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running POP3 server: a berth server running the [`Pop3Handler`], and
/// the handler's worker pool. Started with
/// [`Pop3ServerBuilder::start`](super::Pop3ServerBuilder::start).
///
/// Dropping it stops the server abortively (as dropping a berth
/// [`Server`] does) and then waits for the workers; prefer
/// [`Pop3Server::shutdown`].
pub struct Pop3Server {
    // Dropped in this order: the server (with the handler) first, then
    // the pool.
    server: Server<Framed<Pop3Handler>>,
    pool: WorkerPool,
}

impl Pop3Server {
    /// The server started on `server`, whose handler uses `pool`.
    pub(super) fn new(server: Server<Framed<Pop3Handler>>, pool: WorkerPool) -> Self {
        Pop3Server { server, pool }
    }

    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// A handle to pause accepting or shut the server down from any thread.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The berth server (for its engine, counters and handler).
    #[must_use]
    pub fn server(&self) -> &Server<Framed<Pop3Handler>> {
        &self.server
    }

    /// Shut the server down gracefully, giving open connections up to
    /// `drain` (see [`ServerHandle::shutdown`]); sessions still open then
    /// end without entering the UPDATE state, so they delete nothing. Then
    /// let the workers finish, waiting at most [`WORKER_SHUTDOWN_TIMEOUT`].
    /// Returns whether they all finished in time.
    pub fn shutdown(self, drain: Duration) -> bool {
        let Pop3Server { server, pool } = self;
        server.shutdown(drain);
        pool.shutdown(WORKER_SHUTDOWN_TIMEOUT)
    }
}

impl std::fmt::Debug for Pop3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Server")
            .field("local_addr", &self.local_addr())
            .field("engine", &self.server.engine())
            .finish_non_exhaustive()
    }
}
