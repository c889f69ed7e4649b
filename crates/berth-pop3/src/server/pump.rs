//! The pump: runs a connection's commands in order on the worker pool and
//! writes their responses in bounded chunks.
//!
//! Input. The command lines of one read are queued together (the
//! handler's `frames_done`) and run by one job: one worker hop and, for
//! short responses, one write for all of them, which is what makes
//! pipelining pay. A job runs while input is queued, so lines that arrive
//! while it runs join it. At most one job per connection is queued or
//! running (`Run::Scheduled`), so the pool's per-connection queue never
//! fills; input is bounded here instead: past [`MAX_QUEUED_INPUT`] octets
//! of waiting lines, reading pauses until the pump has taken them down to
//! [`RESUME_INPUT`].
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
//! input: under a megabyte. When the core gains write watermarks and a
//! writability callback, that callback can drive [`Pop3Conn::written`]
//! instead.

use std::collections::VecDeque;

use berth::{ConnHandle, IoBuf};

use super::LOG_TARGET;
use super::autologout::Clock;
use super::conn::{Driver, Input, Pop3Conn};
use crate::{After, Fill, MIN_FILL_ROOM, Response};

/// Output is written in chunks of this many octets.
pub(super) const CHUNK: usize = 64 * 1024;

/// Writes queued per connection before the pump waits for one to complete.
pub(super) const MAX_IN_FLIGHT: usize = 2;

/// Octets of queued input above which reading pauses.
pub(super) const MAX_QUEUED_INPUT: usize = 64 * 1024;

/// Octets of queued input at or below which a paused connection reads again.
pub(super) const RESUME_INPUT: usize = 16 * 1024;

/// Whether the pump has work scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// No job queued or running; nothing to do.
    Idle,
    /// A job is queued or running; it takes any input queued meanwhile.
    Scheduled,
    /// Waiting for a write to complete before the next chunk.
    Parked,
}

/// A connection's queued input and its writes in flight, shared by the IO
/// thread (which queues input and learns of completed writes) and the job
/// running the pump. Its lock is held only for these few fields.
pub(super) struct Flow {
    input: VecDeque<Input>,
    input_weight: usize,
    in_flight: usize,
    run: Run,
    paused: bool,
}

/// What the IO thread should do after [`Pop3Conn::queue`].
pub(super) struct Queued {
    /// Submit a job that runs [`Pop3Conn::pump`].
    pub(super) schedule: bool,
    /// Pause reading: too much input is waiting.
    pub(super) pause: bool,
}

impl Flow {
    /// The flow of a new connection, whose greeting is being written.
    pub(super) fn after_greeting() -> Self {
        Flow {
            input: VecDeque::new(),
            input_weight: 0,
            in_flight: 1,
            run: Run::Idle,
            paused: false,
        }
    }

    /// Take a write slot, or park (and say so) if none is free.
    fn take_slot(&mut self) -> bool {
        if self.in_flight < MAX_IN_FLIGHT {
            self.in_flight += 1;
            true
        } else {
            self.run = Run::Parked;
            false
        }
    }
}

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
    pub(super) fn queue(&self, batch: impl Iterator<Item = Input>) -> Queued {
        let mut flow = self.flow();
        for input in batch {
            flow.input_weight += input.weight();
            flow.input.push_back(input);
        }
        let pause = flow.input_weight > MAX_QUEUED_INPUT;
        // Paused again even if the flag says so already: a resume sent
        // by the pump may still be on its way.
        flow.paused |= pause;
        let schedule = flow.run == Run::Idle && !flow.input.is_empty();
        if schedule {
            flow.run = Run::Scheduled;
        }
        Queued { schedule, pause }
    }

    /// On the IO thread, from `write_completed`: one of the connection's
    /// writes is done. Returns whether to schedule the pump, which was
    /// waiting for a free write slot. This is the "next chunk" trigger
    /// (a writability callback can take its place).
    pub(super) fn written(&self) -> bool {
        let mut flow = self.flow();
        flow.in_flight = flow.in_flight.saturating_sub(1);
        let wake = flow.run == Run::Parked && flow.in_flight < MAX_IN_FLIGHT;
        if wake {
            flow.run = Run::Scheduled;
        }
        wake
    }

    /// On a worker: run the queued commands in order and write their
    /// responses, until the input runs out or [`MAX_IN_FLIGHT`] writes
    /// are queued.
    pub(super) fn pump(&self, handle: &ConnHandle, clock: Clock) {
        if !handle.is_open() {
            return;
        }
        // A poisoned lock means an earlier job panicked; the pool has
        // aborted the connection.
        let Ok(mut guard) = self.session.lock() else {
            return;
        };
        let Some(driver) = guard.as_mut() else {
            // The session is over (QUIT, autologout): input is ignored.
            self.discard_input();
            return;
        };
        loop {
            let turn = if driver.out.len() >= CHUNK {
                self.flush(handle, driver, clock)
            } else if driver.body.is_some() {
                self.fill(handle, driver, clock)
            } else {
                self.next_command(handle, driver, clock)
            };
            match turn {
                Turn::Go => {}
                Turn::Stop => return,
                Turn::End => {
                    // Dropping the session releases the mailbox lock (after
                    // QUIT the UPDATE state has already run).
                    *guard = None;
                    self.discard_input();
                    return;
                }
            }
        }
    }

    /// Write the chunk if a slot is free; otherwise park.
    fn flush(&self, handle: &ConnHandle, driver: &mut Driver, clock: Clock) -> Turn {
        if !self.flow().take_slot() {
            return Turn::Stop;
        }
        self.send(handle, driver, clock)
    }

    /// Write everything in `out` (a slot is taken).
    fn send(&self, handle: &ConnHandle, driver: &mut Driver, clock: Clock) -> Turn {
        let chunk = std::mem::take(&mut driver.out);
        if handle.write_buf(IoBuf::from(chunk)).is_err() {
            // The connection is gone: end the session.
            let _ = handle.close();
            return Turn::End;
        }
        self.touch(clock.now());
        Turn::Go
    }

    /// Produce the next piece of the response in progress.
    fn fill(&self, handle: &ConnHandle, driver: &mut Driver, clock: Clock) -> Turn {
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
            Ok(Fill::More) => self.flush(handle, driver, clock),
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
    fn next_command(&self, handle: &ConnHandle, driver: &mut Driver, clock: Clock) -> Turn {
        let mut flow = self.flow();
        let Some(input) = flow.input.pop_front() else {
            if driver.out.is_empty() {
                flow.run = Run::Idle;
                return Turn::Stop;
            }
            if !flow.take_slot() {
                return Turn::Stop;
            }
            // Idle once this write is queued: a job scheduled from now on
            // runs after this one returns.
            flow.run = Run::Idle;
            drop(flow);
            return match self.send(handle, driver, clock) {
                Turn::Go => Turn::Stop,
                end => end,
            };
        };
        flow.input_weight -= input.weight();
        let resume = flow.paused && flow.input_weight <= RESUME_INPUT;
        if resume {
            flow.paused = false;
        }
        drop(flow);
        if resume {
            let _ = handle.resume_reading();
        }

        let Response { head, body, after } = match input {
            Input::Line(line) => driver.session.respond(&line),
            Input::TooLong => driver.session.line_too_long().into(),
        };
        self.touch(clock.now());
        driver.out.extend_from_slice(&head);
        driver.body = body;
        if after == After::Close {
            // QUIT (after its UPDATE) or too many failed logins: the last
            // response. Close once it is written; the session ends.
            self.flow().in_flight += 1;
            self.send(handle, driver, clock);
            let _ = handle.close();
            return Turn::End;
        }
        Turn::Go
    }

    /// Drop queued input of a session that is over.
    fn discard_input(&self) {
        let mut flow = self.flow();
        flow.input.clear();
        flow.input_weight = 0;
        flow.run = Run::Idle;
    }
}
