//! Session ownership: the connection's state owns its [`Session`]; the
//! jobs queued on the worker pool hold only [`Weak`](std::sync::Weak)
//! references to it.
//!
//! So when the connection closes for any reason other than `QUIT` (the
//! client went away, a reset, the autologout, server shutdown) the session
//! is dropped, which releases the mailbox lock and deletes nothing; jobs
//! still queued for it then do nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::flow::{Flow, Input};
use crate::{Body, Session};

/// Per-connection state of the [`Pop3Handler`](super::Pop3Handler): owns
/// the session (created when the connection is established).
#[derive(Default)]
pub struct ConnState {
    pub(super) conn: Option<Arc<Pop3Conn>>,
    /// The command lines of the read being delivered, queued together
    /// when it ends (`frames_done`).
    pub(super) batch: Vec<Input>,
}

impl std::fmt::Debug for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnState")
            .field("open", &self.conn.is_some())
            .field("batch", &self.batch.len())
            .finish()
    }
}

/// The session of a connection and the response it is producing.
pub(super) struct Driver {
    pub(super) session: Session,
    /// The rest of the response being sent, if it is not complete.
    pub(super) body: Option<Body>,
    /// Response bytes not yet written.
    pub(super) out: Vec<u8>,
}

impl Driver {
    /// Whether part of a response is still to be written: ending the
    /// session now would cut it.
    pub(super) fn mid_response(&self) -> bool {
        self.body.is_some() || !self.out.is_empty()
    }
}

/// One connection's session, its queued input and its output flow.
pub(super) struct Pop3Conn {
    /// `None` once the session has ended (`QUIT`, too many failed logins
    /// or bad commands, a timeout, a failed write). Held by the job that
    /// runs the connection's commands (at most one at a time), so only the
    /// timeouts, on the IO thread, ever compete for the lock (and only
    /// try it).
    pub(super) session: Mutex<Option<Driver>>,
    /// Input waiting to run, writes in flight, a held-back answer and the
    /// deadlines (see `flow.rs`). Locked after `session` when both are.
    pub(super) flow: Mutex<Flow>,
    /// What the session is sent if it has not logged in by its deadline.
    pub(super) login_timeout_reply: Arc<[u8]>,
}

impl Pop3Conn {
    /// A connection owning `session`, whose greeting has been queued for
    /// writing, that must log in by `login_deadline` (if set).
    pub(super) fn new(
        session: Session,
        login_deadline: Option<Instant>,
        login_timeout_reply: Arc<[u8]>,
    ) -> Self {
        Pop3Conn {
            session: Mutex::new(Some(Driver {
                session,
                body: None,
                out: Vec::new(),
            })),
            flow: Mutex::new(Flow::after_greeting(login_deadline)),
            login_timeout_reply,
        }
    }

    pub(super) fn flow(&self) -> std::sync::MutexGuard<'_, Flow> {
        self.flow.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
