//! [`Pop3ServerBuilder`]: the server's settings, with safe defaults, and
//! [`Pop3Server::builder`], which makes one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth::{Framed, WorkerPool};

use super::{Pop3Handler, Pop3Server, ServerError};
use crate::{Config, Shared, Users};

/// The default for [`Pop3ServerBuilder::workers`].
pub const DEFAULT_WORKERS: usize = 4;

/// The default for [`Pop3ServerBuilder::idle_timeout`]: ten minutes, the
/// least RFC 1939 allows.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The default for [`Pop3ServerBuilder::login_timeout`]: three minutes
/// (Dovecot's).
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(180);

/// Configures a POP3 server and builds its [`Pop3Handler`], or starts it
/// on a berth server. Made by [`Pop3Server::builder`] or
/// [`Pop3ServerBuilder::new`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Pop3ServerBuilder {
    config: Config,
    workers: usize,
    idle_timeout: Duration,
    login_timeout: Duration,
}

impl Pop3Server {
    /// A builder for a server of the mailboxes under `maildir` (user `u`'s
    /// mailbox is `maildir/u/{new,cur,tmp}`) to `users`, with the defaults
    /// of [`Config::new`] and [`Pop3ServerBuilder::new`].
    pub fn builder(users: Users, maildir: impl Into<PathBuf>) -> Pop3ServerBuilder {
        Pop3ServerBuilder::new(Config::new(users, maildir))
    }
}

impl Pop3ServerBuilder {
    /// A builder serving `config`, with [`DEFAULT_WORKERS`] workers, the
    /// [`DEFAULT_IDLE_TIMEOUT`] and the [`DEFAULT_LOGIN_TIMEOUT`].
    pub fn new(config: Config) -> Self {
        Pop3ServerBuilder {
            config,
            workers: DEFAULT_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
        }
    }

    /// Worker threads that run the commands: all Maildir access happens
    /// there, never on an IO thread. Zero makes [`Self::build`] fail.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Close a session after this long with no byte moving either way
    /// (the RFC 1939 autologout timer, sending `-ERR autologout; idle for
    /// too long`; nothing is deleted). It is the berth server's idle
    /// timeout ([`berth::ServerBuilder::idle_timeout`], set by
    /// [`Pop3Handler::configure`]), counted by its IO threads' timer
    /// wheels in 10 ms ticks; a session whose command is still running is
    /// looked at again an idle period later.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Close a session that has not logged in this long after it
    /// connected, sending `-ERR disconnected: no login within ...`
    /// (default [`DEFAULT_LOGIN_TIMEOUT`]): a client cannot hold a
    /// connection (and a place under the connection limits) without
    /// credentials, however busily it sends other commands. Zero turns it
    /// off.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Close a session after this many failed `PASS`/`APOP` attempts (see
    /// [`Config::max_auth_failures`]).
    pub fn max_auth_failures(mut self, n: u32) -> Self {
        self.config.max_auth_failures = n;
        self
    }

    /// Close a session at its bad command past this many (see
    /// [`Config::max_bad_commands`]; default
    /// [`DEFAULT_MAX_BAD_COMMANDS`](crate::DEFAULT_MAX_BAD_COMMANDS)).
    pub fn max_bad_commands(mut self, n: u32) -> Self {
        self.config.max_bad_commands = n;
        self
    }

    /// Hold the answer to a failed `PASS`/`APOP` back for this long after
    /// a client address's first failure, twice as long after each further
    /// one, up to [`Self::max_auth_failure_delay`]; a successful login
    /// from the address clears it (see [`crate::penalty`]). No thread
    /// waits meanwhile, and commands pipelined behind the attempt wait
    /// for its answer. Default
    /// [`DEFAULT_AUTH_FAILURE_DELAY`](crate::penalty::DEFAULT_AUTH_FAILURE_DELAY)
    /// (2 s); zero turns the delay off.
    pub fn auth_failure_delay(mut self, delay: Duration) -> Self {
        self.config.auth_failure_delay = delay;
        self
    }

    /// The cap on the failed-login delay (default
    /// [`DEFAULT_MAX_AUTH_FAILURE_DELAY`](crate::penalty::DEFAULT_MAX_AUTH_FAILURE_DELAY),
    /// 15 s).
    pub fn max_auth_failure_delay(mut self, max: Duration) -> Self {
        self.config.max_auth_failure_delay = max;
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

    /// Start the worker pool and return the handler that uses it. Start
    /// it wrapped in [`Framed`] on a berth server passed through
    /// [`Pop3Handler::configure`] (for the autologout's idle timeout);
    /// once that server has stopped, shut its
    /// [`Pop3Handler::worker_pool`] down (a clone taken before), so the
    /// commands still queued finish.
    ///
    /// # Errors
    ///
    /// [`ServerError::Workers`] if a worker thread cannot start (or
    /// [`Self::workers`] is zero).
    pub fn build(self) -> Result<Pop3Handler, ServerError> {
        let pool = WorkerPool::builder()
            .threads(self.workers)
            .name("pop3-worker")
            .build()?;
        let shared = Arc::new(Shared::new(self.config));
        Ok(Pop3Handler::new(
            shared,
            pool,
            self.idle_timeout,
            self.login_timeout,
        ))
    }

    /// [`Self::build`] the handler and start it on `server` (which sets
    /// the address, the IO threads, the engine...), with the handler's
    /// settings applied ([`Pop3Handler::configure`]: the idle timeout).
    ///
    /// # Errors
    ///
    /// As [`Self::build`], or [`ServerError::Start`] if the berth server
    /// cannot start.
    pub fn start(self, server: berth::ServerBuilder) -> Result<Pop3Server, ServerError> {
        let handler = self.build()?;
        let pool = handler.worker_pool().clone();
        let server = handler.configure(server).start(Framed::new(handler))?;
        Ok(Pop3Server::new(server, pool))
    }
}
