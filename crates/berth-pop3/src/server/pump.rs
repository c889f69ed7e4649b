//! The pump: runs a connection's commands in order on the worker pool and
//! writes their responses in bounded chunks.
//!
//! Input. The command lines of one read are queued together (the
//! handler's `frames_done`) and run by one job: one worker hop and, for
//! short responses, one write for all of them, which is what makes
//! pipelining pay. A job runs while input is queued, so lines that arrive
//! while it runs join it. At most one job per connection is queued or
//! running (the flow's `Run::Scheduled`), so the pool's per-connection
//! queue never fills; input is bounded here instead: past
//! [`MAX_QUEUED_INPUT`] octets of waiting lines, reading pauses until the
//! pump has taken them down to [`RESUME_INPUT`].
//!
//! Output. Responses are gathered into a chunk of up to [`CHUNK`] octets;
//! a full chunk, or what is left when the input runs out, is one write.
//! At most [`MAX_IN_FLIGHT`] writes are queued per connection (counted
//! until `write_completed` reports them): when that many are out, the
//! pump stops (`Run::Parked`) with the rest of its work kept in the
//! connection, and [`Pop3Conn::written`] (called from `write_completed`)
//! schedules it again. So a 200 MB message, or a client that sends
//! commands but does not read, costs at most [`MAX_IN_FLIGHT`] chunks in
//! the write queue, and beyond it one chunk being filled, the response in
//! progress (a streamed message's 64 KiB read buffer, or a message of up
//! to [`WHOLE_MESSAGE_LIMIT`](crate::WHOLE_MESSAGE_LIMIT) octets in wire
//! form, under 0.8 MiB even if every octet were an LF) and the queued
//! input: under a megabyte. (The core's write watermarks and
//! `writability_changed` would bound it too; counting completions keeps the
//! bound independent of the server's watermark settings.)
//!
//! A failed login. Its answer is held back for the delay the client's
//! address has earned ([`Shared::login_failed`](crate::Shared::login_failed)),
//! and so is a successful login's from an address with failures on record
//! ([`Shared::login_succeeded`](crate::Shared::login_succeeded)), for the
//! delay of its last failure,
//! without a sleeping thread: the pump writes what the commands before it
//! answered, keeps the answer in the flow ([`Held`], `Run::Delayed`), sets
//! the connection's timer and returns. Nothing schedules the pump while it
//! is delayed (`queue` only does from `Run::Idle`, `written` only from
//! `Run::Parked`), so pipelined commands wait behind the answer, their
//! input bounded as usual; when the timer fires, the IO thread writes the
//! answer and schedules the pump for what is queued
//! ([`Pop3Conn::wake`](super::timers)). A held answer keeps a handle to
//! the connection, so a client that half-closes after its attempt still
//! gets the answer before the close.
//!
//! The flow's state, and the bounds above, are in `flow.rs`.
//!
//! [`MAX_QUEUED_INPUT`]: super::flow::MAX_QUEUED_INPUT
//! [`RESUME_INPUT`]: super::flow::RESUME_INPUT
//! [`MAX_IN_FLIGHT`]: super::flow::MAX_IN_FLIGHT

use std::time::Instant;

use berth::{ConnHandle, IoBuf};

use super::LOG_TARGET;
use super::conn::{Driver, Pop3Conn};
use super::flow::{Held, Input, Queued};
use crate::{After, AuthOutcome, Fill, MIN_FILL_ROOM, Response};

/// Output is written in chunks of this many octets.
pub(super) const CHUNK: usize = 64 * 1024;

/// Where a job left off.
enum Turn {
    /// Keep going.
    Go,
    /// Stop: parked, or idle.
    Stop,
    /// The session is over: the connection is closing.
    End,
}

impl Pop3Conn {
    /// On the IO thread, at the end of a read: queue its command lines.
    /// Returns whether to schedule the pump (it was idle), and whether to
    /// pause reading (past
    /// [`MAX_QUEUED_INPUT`](super::flow::MAX_QUEUED_INPUT) octets are
    /// waiting).
    pub(super) fn queue(&self, batch: impl Iterator<Item = Input>) -> Queued {
        self.flow().queue(batch)
    }

    /// On the IO thread, from `write_completed`: one of the connection's
    /// writes is done. Returns whether to schedule the pump, which was
    /// waiting for a free write slot. This is the "next chunk" trigger
    /// (a writability callback can take its place).
    pub(super) fn written(&self) -> bool {
        self.flow().written()
    }

    /// On a worker: run the queued commands in order and write their
    /// responses, until the input runs out or
    /// [`MAX_IN_FLIGHT`](super::flow::MAX_IN_FLIGHT) writes are queued.
    pub(super) fn pump(&self, handle: &ConnHandle) {
        if !handle.is_open() {
            return;
        }
        // A poisoned lock means an earlier job panicked; the pool has
        // aborted the connection.
        let Ok(mut guard) = self.session.lock() else {
            return;
        };
        let Some(driver) = guard.as_mut() else {
            // The session is over (QUIT, a timeout): input is ignored.
            self.flow().discard_input();
            return;
        };
        loop {
            let turn = if driver.out.len() >= CHUNK {
                self.flush(handle, driver)
            } else if driver.body.is_some() {
                self.fill(handle, driver)
            } else {
                self.next_command(handle, driver)
            };
            match turn {
                Turn::Go => {}
                Turn::Stop => return,
                Turn::End => {
                    // Dropping the session releases the mailbox lock (after
                    // QUIT the UPDATE state has already run).
                    *guard = None;
                    self.flow().discard_input();
                    return;
                }
            }
        }
    }

    /// Write the chunk if a slot is free; otherwise park.
    fn flush(&self, handle: &ConnHandle, driver: &mut Driver) -> Turn {
        if !self.flow().take_slot() {
            return Turn::Stop;
        }
        Self::send(handle, driver)
    }

    /// Write everything in `out` (a slot is taken).
    fn send(handle: &ConnHandle, driver: &mut Driver) -> Turn {
        let chunk = std::mem::take(&mut driver.out);
        if handle.write_buf(IoBuf::from(chunk)).is_err() {
            // The connection is gone: end the session.
            let _ = handle.close();
            return Turn::End;
        }
        Turn::Go
    }

    /// Produce the next piece of the response in progress.
    fn fill(&self, handle: &ConnHandle, driver: &mut Driver) -> Turn {
        let Some(body) = driver.body.as_mut() else {
            return Turn::Go;
        };
        if driver.out.capacity() < CHUNK {
            // A chunk of the usual size from the start (not grown by
            // doubling): chunks of one size reuse each other's memory.
            driver
                .out
                .reserve_exact(CHUNK + MIN_FILL_ROOM - driver.out.len());
        }
        match driver.session.fill(body, &mut driver.out, CHUNK) {
            Ok(Fill::Done) => {
                driver.body = None;
                Turn::Go
            }
            Ok(Fill::More) => self.flush(handle, driver),
            Err(e) => {
                // Part of the response may be out: only ending the
                // connection without the terminator tells the client.
                tracing::warn!(target: LOG_TARGET, conn = %handle.id(), user = ?driver.session.user(),
                    error = %e, "POP3 response cut off; resetting the connection");
                let _ = handle.abort();
                Turn::End
            }
        }
    }

    /// Run the next queued command; with none left, write what is
    /// gathered and go idle.
    fn next_command(&self, handle: &ConnHandle, driver: &mut Driver) -> Turn {
        let mut flow = self.flow();
        // Checked here too: the IO thread's timer only tries the session's
        // lock, which a client that keeps commands coming keeps busy.
        if flow.awaiting_login() && flow.login_expired(Instant::now()) {
            drop(flow);
            return self.login_timed_out(handle, driver);
        }
        let Some((input, resume)) = flow.next_input() else {
            if driver.out.is_empty() {
                flow.idle();
                return Turn::Stop;
            }
            if !flow.take_slot() {
                return Turn::Stop;
            }
            // Idle once this write is queued: a job scheduled from now on
            // runs after this one returns.
            flow.idle();
            drop(flow);
            return match Self::send(handle, driver) {
                Turn::Go => Turn::Stop,
                end => end,
            };
        };
        drop(flow);
        // Down to RESUME_INPUT octets of queued input: read again.
        if resume {
            let _ = handle.resume_reading();
        }

        let Response { head, body, after } = match input {
            Input::Line(line) => driver.session.respond(&line),
            Input::TooLong => driver.session.line_too_long().into(),
        };
        match driver.session.take_auth_outcome() {
            Some(AuthOutcome::Failed) => {
                let now = Instant::now();
                let ip = handle.peer_addr().ip();
                let delay = driver.session.shared().login_failed(ip, now);
                if !delay.is_zero() {
                    return self.hold(handle, driver, head, after, now, now + delay);
                }
            }
            Some(AuthOutcome::Succeeded) => {
                let now = Instant::now();
                let ip = handle.peer_addr().ip();
                let delay = driver.session.shared().login_succeeded(ip, now);
                if driver.session.user().is_some() {
                    self.logged_in(handle);
                }
                if !delay.is_zero() {
                    // From an address with failures on record: as slow as
                    // a failure, so a slow answer does not give one away.
                    return self.hold(handle, driver, head, after, now, now + delay);
                }
            }
            None => {}
        }
        driver.out.extend_from_slice(&head);
        driver.body = body;
        if after == After::Close {
            // QUIT (after its UPDATE), too many failed logins or bad
            // commands: the last response. Close once it is written; the
            // session ends.
            self.flow().count_write();
            Self::send(handle, driver);
            let _ = handle.close();
            return Turn::End;
        }
        Turn::Go
    }

    /// Hold a login's `answer` back until `due` (see the module docs):
    /// write what the commands before it answered, keep the answer for the
    /// IO thread and set the timer. The pump stops; the session ends now if
    /// the answer closes it.
    fn hold(
        &self,
        handle: &ConnHandle,
        driver: &mut Driver,
        answer: Vec<u8>,
        after: After,
        now: Instant,
        due: Instant,
    ) -> Turn {
        if !driver.out.is_empty() {
            // Counted like every write (so one more than MAX_IN_FLIGHT
            // may be out): `written` counts each completion down.
            self.flow().count_write();
            if let Turn::End = Self::send(handle, driver) {
                return Turn::End;
            }
        }
        let close = after == After::Close;
        let wake = self.flow().hold(Held::new(due, answer, close, handle));
        if let Some(at) = wake {
            // At most the delay: sooner if the login deadline comes first.
            let _ = handle.set_timer(at.saturating_duration_since(now));
        }
        if close { Turn::End } else { Turn::Stop }
    }

    /// The login deadline passed with commands still coming: answer what
    /// ran, then the timeout, and end the session.
    fn login_timed_out(&self, handle: &ConnHandle, driver: &mut Driver) -> Turn {
        tracing::info!(target: LOG_TARGET, conn = %handle.id(), peer = %handle.peer_addr(),
            "POP3 login timeout");
        driver.out.extend_from_slice(&self.login_timeout_reply);
        let mut flow = self.flow();
        let held = flow.end();
        flow.count_write();
        drop(flow);
        Self::send(handle, driver);
        let _ = handle.close();
        drop(held);
        Turn::End
    }

    /// The session has logged in: stop the login deadline, and the timer
    /// unless something else waits for it.
    fn logged_in(&self, handle: &ConnHandle) {
        let mut flow = self.flow();
        if !flow.awaiting_login() {
            return;
        }
        flow.logged_in();
        let wake = flow.next_wake(None);
        drop(flow);
        let _ = match wake {
            Some(at) => handle.set_timer(at.saturating_duration_since(Instant::now())),
            None => handle.cancel_timer(),
        };
    }
}
