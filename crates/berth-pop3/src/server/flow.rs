//! A connection's flow: its queued [`Input`], its writes in flight, a
//! failed login's answer held back, and the deadlines its timer serves.
//! The IO thread (which queues input, learns of completed writes and runs
//! the timer) and the job running the pump share it under one lock,
//! `Pop3Conn::flow`, held only for these few fields.
//!
//! Its [`Run`] state says who schedules the pump next: the IO thread
//! queueing input to an idle pump, a completed write for a parked one, the
//! timer for one waiting with a held answer. How the pump uses it is in
//! `pump.rs`; the timer's side in `timers.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use berth::{ConnHandle, IoBuf};

/// Writes queued per connection before the pump waits for one to complete.
pub(super) const MAX_IN_FLIGHT: usize = 2;

/// Octets of queued input above which reading pauses.
pub(super) const MAX_QUEUED_INPUT: usize = 64 * 1024;

/// Octets of queued input at or below which a paused connection reads again.
pub(super) const RESUME_INPUT: usize = 16 * 1024;

/// One unit of client input, in order.
pub(super) enum Input {
    /// A command line, without its CRLF.
    Line(IoBuf),
    /// A line longer than the limit (its bytes were skipped).
    TooLong,
}

impl Input {
    /// What it costs to hold while it waits, for flow control.
    pub(super) fn weight(&self) -> usize {
        /// Bookkeeping per queued line.
        const OVERHEAD: usize = 32;
        match self {
            Input::Line(line) => line.len() + OVERHEAD,
            Input::TooLong => OVERHEAD,
        }
    }
}

/// Whether the pump has work scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// No job queued or running; nothing to do.
    Idle,
    /// A job is queued or running; it takes any input queued meanwhile.
    Scheduled,
    /// Waiting for a write to complete before the next chunk.
    Parked,
    /// Waiting for the connection's timer to write a held-back answer.
    Delayed,
}

/// A connection's queued input, its writes in flight, an answer held back
/// and the deadlines its timer serves (see the module docs).
pub(super) struct Flow {
    input: VecDeque<Input>,
    input_weight: usize,
    in_flight: usize,
    run: Run,
    paused: bool,
    /// A failed login's answer, until its delay has passed.
    held: Option<Held>,
    /// When the session is closed if it has not logged in: `None` once it
    /// has, or without a pre-login timeout.
    login_deadline: Option<Instant>,
}

/// A failed login's answer, held back until `due`.
pub(super) struct Held {
    due: Instant,
    bytes: Vec<u8>,
    /// The answer ends the session (too many failed logins).
    close: bool,
    /// Keeps the connection from closing (`Lifecycle::closing` waits for
    /// every handle) while the answer waits.
    _handle: ConnHandle,
}

impl Held {
    /// `answer`, to be written at `due` (and then the connection closed,
    /// if `close`), keeping the connection of `handle` open until then.
    pub(super) fn new(due: Instant, answer: Vec<u8>, close: bool, handle: &ConnHandle) -> Self {
        Held {
            due,
            bytes: answer,
            close,
            _handle: handle.clone(),
        }
    }
}

/// A held answer whose time has come, taken by the IO thread.
pub(super) struct Released {
    /// The answer (its write is counted).
    pub(super) bytes: Vec<u8>,
    /// Close the connection once it is written.
    pub(super) close: bool,
    /// Schedule the pump: input is waiting.
    pub(super) schedule: bool,
    /// What is left of the held answer (its handle): dropped once the
    /// answer is queued, so the connection cannot close in between.
    pub(super) keep_alive: Held,
}

/// What the IO thread should do after [`Flow::queue`].
pub(super) struct Queued {
    /// Submit a job that runs the pump.
    pub(super) schedule: bool,
    /// Pause reading: too much input is waiting.
    pub(super) pause: bool,
}

impl Flow {
    /// The flow of a new connection, whose greeting is being written,
    /// that must log in by `login_deadline` (if set).
    pub(super) fn after_greeting(login_deadline: Option<Instant>) -> Self {
        Flow {
            input: VecDeque::new(),
            input_weight: 0,
            in_flight: 1,
            run: Run::Idle,
            paused: false,
            held: None,
            login_deadline,
        }
    }

    /// On the IO thread, at the end of a read: queue its command lines.
    pub(super) fn queue(&mut self, batch: impl Iterator<Item = Input>) -> Queued {
        for input in batch {
            self.input_weight += input.weight();
            self.input.push_back(input);
        }
        let pause = self.input_weight > MAX_QUEUED_INPUT;
        // Paused again even if the flag says so already: a resume sent
        // by the pump may still be on its way.
        self.paused |= pause;
        let schedule = self.run == Run::Idle && !self.input.is_empty();
        if schedule {
            self.run = Run::Scheduled;
        }
        Queued { schedule, pause }
    }

    /// The next queued input, and whether reading should resume now that
    /// it is taken (the input has gone down to [`RESUME_INPUT`]).
    pub(super) fn next_input(&mut self) -> Option<(Input, bool)> {
        let input = self.input.pop_front()?;
        self.input_weight -= input.weight();
        let resume = self.paused && self.input_weight <= RESUME_INPUT;
        if resume {
            self.paused = false;
        }
        Some((input, resume))
    }

    /// Drop queued input of a session that is over; the pump goes idle.
    pub(super) fn discard_input(&mut self) {
        self.input.clear();
        self.input_weight = 0;
        self.run = Run::Idle;
    }

    /// The pump stops with nothing left to do: a job scheduled from now on
    /// runs after the current one returns.
    pub(super) fn idle(&mut self) {
        self.run = Run::Idle;
    }

    /// Count a write whose completion `written` will report.
    pub(super) fn count_write(&mut self) {
        self.in_flight += 1;
    }

    /// Take a write slot, or park (and say so) if none is free.
    pub(super) fn take_slot(&mut self) -> bool {
        if self.in_flight < MAX_IN_FLIGHT {
            self.in_flight += 1;
            true
        } else {
            self.run = Run::Parked;
            false
        }
    }

    /// On the IO thread, from `write_completed`: one of the connection's
    /// writes is done. Returns whether to schedule the pump, which was
    /// parked waiting for a free write slot.
    pub(super) fn written(&mut self) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        let wake = self.run == Run::Parked && self.in_flight < MAX_IN_FLIGHT;
        if wake {
            self.run = Run::Scheduled;
        }
        wake
    }

    /// Keep a failed login's answer until its time, the pump waiting for
    /// it. Returns when the timer should fire next.
    pub(super) fn hold(&mut self, held: Held) -> Option<Instant> {
        self.held = Some(held);
        self.run = Run::Delayed;
        self.next_wake(None)
    }

    /// When the connection's timer should fire next: the earliest of the
    /// held answer's time and the login deadline, or `login_retry`
    /// instead of the latter when the login deadline has passed but the
    /// session was busy.
    pub(super) fn next_wake(&self, login_retry: Option<Instant>) -> Option<Instant> {
        let login = login_retry.or(self.login_deadline);
        let held = self.held.as_ref().map(|h| h.due);
        match (login, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a login deadline is running.
    pub(super) fn awaiting_login(&self) -> bool {
        self.login_deadline.is_some()
    }

    /// Whether the login deadline has passed at `now`.
    pub(super) fn login_expired(&self, now: Instant) -> bool {
        self.login_deadline.is_some_and(|at| at <= now)
    }

    /// The session logged in: the login deadline no longer runs.
    pub(super) fn logged_in(&mut self) {
        self.login_deadline = None;
    }

    /// The session is over: no answer is held any longer and no deadline
    /// runs. Returns the held answer, to drop outside the lock.
    pub(super) fn end(&mut self) -> Option<Held> {
        self.login_deadline = None;
        self.held.take()
    }

    /// On the IO thread, when the timer fires at `now`: the held answer,
    /// if its time has come, its write counted and the pump's state set
    /// (scheduled if input is waiting, else idle).
    pub(super) fn release(&mut self, now: Instant) -> Option<Released> {
        let mut held = self.held.take_if(|h| h.due <= now)?;
        self.in_flight += 1;
        let schedule = !held.close && self.run == Run::Delayed && !self.input.is_empty();
        if self.run == Run::Delayed {
            self.run = if schedule { Run::Scheduled } else { Run::Idle };
        }
        Some(Released {
            bytes: std::mem::take(&mut held.bytes),
            close: held.close,
            schedule,
            keep_alive: held,
        })
    }
}
