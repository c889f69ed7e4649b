//! Restarts that refuse nothing: how a server whose listener shares its
//! address with a newer process (`SO_REUSEPORT`) stops accepting.
//!
//! Closing a listener resets every connection still queued in its backlog,
//! and with `SO_REUSEPORT` the kernel keeps queueing new connections to
//! the old listener until the moment it closes (HAProxy's documentation
//! warns about exactly this; `net.ipv4.tcp_migrate_req`, which would move
//! them to a sibling, is off by default). So the accepting thread of a
//! server built with `reuse_port` stops in stages, with time passed in:
//!
//! 1. **Steer.** A classic BPF program is attached to the listener's
//!    reuseport group ([`steering_program`]): every new connection goes
//!    to the newest listener of the group, not to this one.
//! 2. **Drain.** The listener stays open for the grace period and keeps
//!    accepting (even while paused) what still lands in its queue: a
//!    handshake whose SYN chose this listener before the steering
//!    completes one round trip later. Accepted connections go to the IO
//!    threads as usual and are served.
//! 3. **Close.** When the grace period is over, the queue is emptied with
//!    non-blocking accepts until `EAGAIN`, and the listener is closed.
//! 4. **Settle.** Connections are served as usual until the grace period
//!    has passed since the last one was accepted, so that each had time to
//!    send its request before the drain closes it.
//! 5. **Stop.** The drain proper: the IO threads stop as without
//!    `reuse_port` ([`ServerHandle::shutdown`](crate::ServerHandle::shutdown)).
//!
//! The stop's deadline bounds every stage; a zero deadline steers and
//! closes at once. Whatever starts the drain (SIGTERM in the CLI, a
//! `shutdown` through a handle) takes this path: it is the handling of
//! the `Stop` command on the accepting thread.

use std::time::{Duration, Instant};

/// The default grace period ([`ServerBuilder::handover_grace`](crate::ServerBuilder::handover_grace)).
///
/// It must cover a round trip to the farthest client (a handshake begun
/// before the steering ends that much later in this listener's queue) and
/// the time a freshly accepted connection needs to send its first bytes.
/// On loopback and a LAN both take well under a millisecond; 250 ms covers
/// most of the Internet and delays a restart by as much. A handshake that
/// takes longer (a lost SYN-ACK is resent after a second) can still be
/// reset when the listener closes.
pub const DEFAULT_HANDOVER_GRACE: Duration = Duration::from_millis(250);

/// The index, in the reuseport group's socket array, of the listener new
/// connections are steered to.
///
/// The kernel keeps a group's listening sockets in an array in the order
/// they started listening; when one closes, the last moves into its place.
/// A classic BPF program returns an index into that array, and an index
/// past its end makes the kernel fall back to its hash. Steering to index 1
/// assumes one old and one new listener: the old one (this server) started
/// first, or took index 0 when its own predecessor closed, and the new one
/// joined after it. Restart after restart this holds. Once the old
/// listener has closed, the program stays with the group: with one socket
/// left, index 1 is out of range and the hash picks that socket; the next
/// new listener joins at index 1 and gets every new connection from the
/// moment it listens, which is what the next restart wants anyway.
///
/// Several servers sharing the address for load sharing do not fit this
/// assumption: stopping one would steer all new connections to whichever
/// sits at index 1, for good.
pub(crate) const STEER_TO_INDEX: u32 = 1;

/// The steering program: `ret #STEER_TO_INDEX`, one classic BPF instruction.
pub(crate) fn steering_program() -> [libc::sock_filter; 1] {
    [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: STEER_TO_INDEX,
    }]
}

/// Where the accepting thread is in stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Accepting as usual.
    Running,
    /// Steered away; accepting what still lands in the queue until `close_at`.
    Draining { close_at: Instant },
    /// The listener is closed; connections are served as usual until `stop_at`.
    Settling { stop_at: Instant },
    /// The IO threads have been told to stop.
    Stopped,
}

/// The accepting thread's way of stopping: at once, or in the stages of a
/// handover (see the module docs).
#[derive(Debug)]
pub(crate) struct Handover {
    /// The grace period; `None`: no handover, the listener closes at once.
    grace: Option<Duration>,
    stage: Stage,
    /// The stop's deadline, once a stop has come.
    deadline: Option<Instant>,
    /// When the last connection was accepted while draining.
    last_accept: Option<Instant>,
    /// Connections accepted while draining (for the log).
    accepted: u64,
}

impl Handover {
    /// `grace`: `Some` for a listener shared with `SO_REUSEPORT`.
    pub fn new(grace: Option<Duration>) -> Self {
        Handover {
            grace,
            stage: Stage::Running,
            deadline: None,
            last_accept: None,
            accepted: 0,
        }
    }

    /// Whether a stop steers new connections away from the listener.
    pub fn steers(&self) -> bool {
        self.grace.is_some()
    }

    /// A stop came at `now`. Returns true when the IO threads must be
    /// stopped at once; false when a handover began, and they are stopped
    /// when [`Handover::settled`] says so. A second stop changes nothing.
    pub fn stop(&mut self, now: Instant, deadline: Instant) -> bool {
        if self.stage != Stage::Running {
            return false;
        }
        self.deadline = Some(deadline);
        match self.grace {
            Some(grace) if deadline > now => {
                let close_at = now.checked_add(grace).map_or(deadline, |t| t.min(deadline));
                self.stage = Stage::Draining { close_at };
                false
            }
            _ => {
                self.stage = Stage::Stopped;
                true
            }
        }
    }

    /// A connection was taken from the queue at `now`.
    pub fn accepted(&mut self, now: Instant) {
        if matches!(self.stage, Stage::Draining { .. }) {
            self.last_accept = Some(now);
            self.accepted += 1;
        }
    }

    /// Whether the listener should accept at all (pause aside).
    pub fn accepting(&self) -> bool {
        matches!(self.stage, Stage::Running | Stage::Draining { .. })
    }

    /// Draining: accept even while paused — whatever is left in the queue
    /// is reset when the listener closes.
    pub fn draining(&self) -> bool {
        matches!(self.stage, Stage::Draining { .. })
    }

    /// Stopped without a handover: a connection accepted now is closed
    /// unserved.
    pub fn is_stopped(&self) -> bool {
        self.stage == Stage::Stopped
    }

    /// Whether the listener should close now. Draining, the engine first
    /// empties the queue (and calls [`Handover::closed`] after closing).
    pub fn should_close(&self, now: Instant) -> bool {
        match self.stage {
            Stage::Stopped => true,
            Stage::Draining { close_at } => now >= close_at,
            Stage::Running | Stage::Settling { .. } => false,
        }
    }

    /// The listener was closed at `now` after draining. Returns the number
    /// of connections accepted meanwhile.
    pub fn closed(&mut self, now: Instant) -> u64 {
        if let Stage::Draining { .. } = self.stage {
            let grace = self.grace.unwrap_or_default();
            let deadline = self.deadline.unwrap_or(now);
            let settled = self
                .last_accept
                .map_or(now, |t| t.checked_add(grace).unwrap_or(deadline));
            let stop_at = settled.max(now).min(deadline);
            self.stage = Stage::Settling { stop_at };
        }
        self.accepted
    }

    /// Settling and due at `now`: the IO threads are to be stopped, with
    /// the stop's deadline, which this returns (once).
    pub fn settled(&mut self, now: Instant) -> Option<Instant> {
        match self.stage {
            Stage::Settling { stop_at } if now >= stop_at => {
                self.stage = Stage::Stopped;
                self.deadline
            }
            _ => None,
        }
    }

    /// The next instant a stage may end at.
    pub fn timer(&self) -> Option<Instant> {
        match self.stage {
            Stage::Draining { close_at } => Some(close_at),
            Stage::Settling { stop_at } => Some(stop_at),
            Stage::Running | Stage::Stopped => None,
        }
    }
}

#[cfg(test)]
mod tests;
