//! [`Pop3ServerBuilder`]: the server's settings, with safe defaults.

use std::sync::Arc;
use std::time::Duration;

use berth::{Framed, WorkerPool};

use super::{Pop3Handler, Pop3Server, ServerError};
use crate::{Config, Shared};

/// The default for [`Pop3ServerBuilder::workers`].
pub const DEFAULT_WORKERS: usize = 4;

/// The default for [`Pop3ServerBuilder::idle_timeout`]: ten minutes, the
/// least RFC 1939 allows.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Configures a POP3 server and builds its [`Pop3Handler`], or starts it
/// on a berth server. Made by [`Pop3Server::builder`] or
/// [`Pop3ServerBuilder::new`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Pop3ServerBuilder {
    config: Config,
    workers: usize,
    idle_timeout: Duration,
}

impl Pop3ServerBuilder {
    /// A builder serving `config`, with [`DEFAULT_WORKERS`] workers and
    /// the [`DEFAULT_IDLE_TIMEOUT`].
    pub fn new(config: Config) -> Self {
        Pop3ServerBuilder {
            config,
            workers: DEFAULT_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Worker threads that run the commands: all Maildir access happens
    /// there, never on an IO thread. Zero makes [`Self::build`] fail.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Close a session after this long without a command (the RFC 1939
    /// autologout timer; nothing is deleted). The timer checks at a
    /// quarter of this, between 10 ms and 1 s.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Close a session after this many failed `PASS`/`APOP` attempts (see
    /// [`Config::max_auth_failures`]).
    pub fn max_auth_failures(mut self, n: u32) -> Self {
        self.config.max_auth_failures = n;
        self
    }

    /// The host name in the greeting's APOP timestamp (see
    /// [`Config::hostname`]; default `localhost`).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.config.hostname = name.into();
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Start the worker pool and the autologout timer, and return the
    /// handler that uses them. Start it on a berth server wrapped in
    /// [`Framed`]; once that server has stopped, shut its
    /// [`Pop3Handler::worker_pool`] down (a clone taken before), so the
    /// commands still queued finish.
    ///
    /// # Errors
    ///
    /// [`ServerError::Workers`] or [`ServerError::Autologout`] if a thread
    /// cannot start (or [`Self::workers`] is zero).
    pub fn build(self) -> Result<Pop3Handler, ServerError> {
        let pool = WorkerPool::builder()
            .threads(self.workers)
            .name("pop3-worker")
            .build()?;
        let shared = Arc::new(Shared::new(self.config));
        Pop3Handler::new(shared, pool, self.idle_timeout).map_err(ServerError::Autologout)
    }

    /// [`Self::build`] the handler and start it on `server` (which sets
    /// the address, the IO threads, the engine...).
    ///
    /// # Errors
    ///
    /// As [`Self::build`], or [`ServerError::Start`] if the berth server
    /// cannot start.
    pub fn start(self, server: berth::ServerBuilder) -> Result<Pop3Server, ServerError> {
        let handler = self.build()?;
        let pool = handler.worker_pool().clone();
        let server = server.start(Framed::new(handler))?;
        Ok(Pop3Server::new(server, pool))
    }
}
