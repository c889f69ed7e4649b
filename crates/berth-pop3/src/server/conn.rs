//! Session ownership: the connection's state owns its [`Session`]; the
//! jobs queued on the worker pool and the autologout janitor hold only
//! [`Weak`] references to it.
//!
//! So when the connection closes for any reason other than `QUIT` (the
//! client went away, a reset, the autologout, server shutdown) the session
//! is dropped, which releases the mailbox lock and deletes nothing; jobs
//! still queued for it then do nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use berth::{ConnHandle, IoBuf};

use super::autologout::Clock;
use crate::{After, Reply, Session};

/// Per-connection state of the [`Pop3Handler`](super::Pop3Handler): owns
/// the session (created when the connection is established).
#[derive(Default)]
pub struct ConnState {
    pub(super) conn: Option<Arc<Pop3Conn>>,
}

impl std::fmt::Debug for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnState")
            .field("open", &self.conn.is_some())
            .finish()
    }
}

/// One connection's session and its last activity.
pub(super) struct Pop3Conn {
    /// `None` once the session has ended (`QUIT`, too many failed logins,
    /// autologout, a failed write). Jobs of one connection run one at a
    /// time, so only the janitor ever competes for the lock.
    pub(super) session: Mutex<Option<Session>>,
    /// When a command last arrived or was answered, in milliseconds since
    /// the janitor's epoch.
    last_active: AtomicU64,
}

impl Pop3Conn {
    /// A connection owning `session`, active at `now`.
    pub(super) fn new(session: Session, now: u64) -> Self {
        Pop3Conn {
            session: Mutex::new(Some(session)),
            last_active: AtomicU64::new(now),
        }
    }

    /// Note activity at `now` (see [`Clock::now`]).
    pub(super) fn touch(&self, now: u64) {
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// When the connection was last active (see [`Clock::now`]).
    pub(super) fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }
}

/// Run one command of a connection (on a worker) and send the reply.
pub(super) fn respond(
    conn: &Weak<Pop3Conn>,
    handle: &ConnHandle,
    clock: Clock,
    command: impl FnOnce(&mut Session) -> Reply,
) {
    // The connection is gone, and with it the session: nothing to do.
    let Some(pc) = conn.upgrade() else { return };
    if !handle.is_open() {
        return;
    }
    // A poisoned lock means an earlier job panicked; the pool has aborted
    // the connection.
    let Ok(mut guard) = pc.session.lock() else {
        return;
    };
    let Some(session) = guard.as_mut() else {
        return;
    };
    let reply = command(session);
    let written = handle.write_buf(IoBuf::from(reply.bytes));
    if reply.after == After::Close || written.is_err() {
        // Dropping the session releases the mailbox lock (after QUIT the
        // UPDATE state has already run).
        *guard = None;
        let _ = handle.close();
    }
    pc.touch(clock.now());
}
