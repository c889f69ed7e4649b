//! The connection's timeouts, on its IO thread: the autologout (the core's
//! idle timer, [`Timeout::Idle`](berth::Timeout::Idle)) and, on the one
//! timer the core gives each connection
//! ([`Timeout::User`](berth::Timeout::User)), the pre-login timeout and the
//! release of a failed login's held-back answer.
//!
//! The user timer is only a wake-up: the deadlines live in the flow
//! (`Flow::next_wake`), whoever changes one sets the timer to the earliest,
//! and a firing checks every deadline against the clock and sets the timer
//! again for what remains. So a firing that comes early or late, or one
//! for a deadline that has since gone, does no harm.
//!
//! The session lock is only tried here, never waited for: if a command is
//! running on a worker, the session is not idle (the core asks again an
//! idle period later), and a login deadline is looked at again a second
//! later.

use std::sync::TryLockError;
use std::time::{Duration, Instant};

use berth::{Conn, IoBuf};

use super::LOG_TARGET;
use super::conn::{Driver, Pop3Conn};

/// What the autologout sends before closing an idle session.
const AUTOLOGOUT: &[u8] = b"-ERR autologout; idle for too long\r\n";

/// How soon a login deadline that found a command running is looked at
/// again.
const BUSY_RETRY: Duration = Duration::from_secs(1);

impl Pop3Conn {
    /// The idle timeout ran out (the RFC 1939 autologout timer): end the
    /// session without the UPDATE state, unless a command is running.
    pub(super) fn idle(&self, conn: &mut Conn<'_>) {
        let mut guard = match self.session.try_lock() {
            Ok(guard) => guard,
            // A command is running: the session is not idle. The core
            // asks again an idle period later.
            Err(TryLockError::WouldBlock) => return,
            // An earlier job panicked; the pool has aborted the connection.
            Err(TryLockError::Poisoned(_)) => return,
        };
        let Some(driver) = guard.take() else {
            // The session is over and the connection closing.
            conn.close();
            return;
        };
        tracing::info!(target: LOG_TARGET, conn = %conn.id(), peer = %conn.peer_addr(),
            user = ?driver.session.user(), "POP3 autologout");
        self.end(conn, &driver, AUTOLOGOUT);
        // Dropping the session releases the mailbox lock and deletes
        // nothing.
        drop(driver);
    }

    /// The user timer fired at `now`: close a session whose login deadline
    /// has passed, write a held answer whose time has come, and set the
    /// timer for what remains. Returns whether to schedule the pump (input
    /// waited behind the answer).
    pub(super) fn wake(&self, conn: &mut Conn<'_>, now: Instant) -> bool {
        let mut login_retry = None;
        if self.flow().login_expired(now) {
            match self.session.try_lock() {
                Ok(mut guard) => match guard.take() {
                    Some(driver) if driver.session.user().is_none() => {
                        tracing::info!(target: LOG_TARGET, conn = %conn.id(),
                            peer = %conn.peer_addr(), "POP3 login timeout");
                        self.end(conn, &driver, &self.login_timeout_reply);
                        return false;
                    }
                    // Logged in (its job clears the deadline under this
                    // lock, so only in a race), or the session is over and
                    // the connection closing: the deadline is moot.
                    other => {
                        *guard = other;
                        self.flow().logged_in();
                    }
                },
                Err(TryLockError::WouldBlock) => login_retry = Some(now + BUSY_RETRY),
                Err(TryLockError::Poisoned(_)) => return false,
            }
        }
        let mut flow = self.flow();
        let released = flow.release(now);
        let wake = flow.next_wake(login_retry);
        drop(flow);
        if let Some(at) = wake {
            conn.set_timer(at.saturating_duration_since(now));
        }
        let Some(released) = released else {
            return false;
        };
        // One buffer: one `write_completed`, as counted. A write refused
        // (a full server under `OverflowPolicy::Refuse`) would leave a gap
        // in the replies: reset instead.
        if conn.write_buf(IoBuf::from(released.bytes)).is_err() {
            conn.abort();
            return false;
        }
        if released.close {
            conn.close();
        }
        drop(released.keep_alive);
        released.schedule
    }

    /// A line was begun and not finished within the frame timeout: close,
    /// or reset if a response is being written (or may be: a command is
    /// running), since a close in the middle of one would pass for its end.
    pub(super) fn frame_timed_out(&self, conn: &mut Conn<'_>) {
        let mid_response = match self.session.try_lock() {
            Ok(guard) => guard.as_ref().is_some_and(Driver::mid_response),
            Err(_) => true,
        };
        tracing::info!(target: LOG_TARGET, conn = %conn.id(), peer = %conn.peer_addr(),
            mid_response, "POP3 command line not finished within the frame timeout");
        if mid_response {
            conn.abort();
        } else {
            conn.close();
        }
    }

    /// End the session of `driver` (taken out of its lock) with `line`, or
    /// with a reset if a response is in progress, and close.
    fn end(&self, conn: &mut Conn<'_>, driver: &Driver, line: &[u8]) {
        let mut flow = self.flow();
        let held = flow.end();
        if driver.mid_response() {
            drop(flow);
            // The client stopped reading a response: a line now would land
            // inside it. Reset instead.
            conn.abort();
        } else {
            flow.count_write();
            drop(flow);
            let _ = conn.write_buf(IoBuf::from(line.to_vec()));
            conn.close();
        }
        // A held answer goes unsent.
        drop(held);
    }
}
