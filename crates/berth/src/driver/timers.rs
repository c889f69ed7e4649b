//! The deadlines an IO thread keeps, and the nearest of them, which bounds
//! the loop's wait: no deadline, no wake-up. The shutdown deadline (here),
//! connect timeouts (the connector), the accept back-off (the acceptor),
//! and the connections' timers in the wheel (`wheel.rs`), fired here.
//!
//! Each connection has three timers: idle (no bytes either way), frame (a
//! frame begun and not finished) and the handler's own. None costs a wheel
//! operation per message: bytes moving only store the tick in
//! `last_active`, and an idle entry that comes due early (bytes moved since
//! it was scheduled) reschedules itself for `last_active + idle`. A frame
//! or user timer moved later keeps its entry the same way. A timer that
//! runs out calls the handler's `timed_out` and, by default, closes the
//! connection through the normal close path (never an io_uring linked
//! timeout, which could cancel a receive whose bytes would then be lost).

use std::time::Instant;

use crate::driver::backend::Backend;
use crate::driver::core::{Core, Parts};
use crate::driver::key::Key;
use crate::driver::state::{ConnState, flags::*};
use crate::driver::stats::CloseReason;
use crate::driver::wheel::{Due, TimerKind, Wheel};
use crate::handler::Handler;
use crate::lifecycle::Timeout;

/// The thread's own deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Connections still open at this instant are closed abortively.
    stop_at: Option<Instant>,
    /// The earliest deadline a [`Timers::hurry`] asked for, kept for a
    /// `Stop` that has not arrived yet.
    hurry_at: Option<Instant>,
    /// The stop deadline fired.
    stop_fired: bool,
}

impl Timers {
    /// Set the shutdown deadline (a `Stop`); the earliest deadline seen wins.
    pub fn set_stop(&mut self, at: Instant) {
        let at = earliest(earliest(at, self.stop_at), self.hurry_at);
        self.stop_at = Some(at);
    }

    /// Bring the shutdown deadline forward to `at` if it is earlier; if the
    /// `Stop` has not arrived yet, its deadline will be moved when it does.
    pub fn hurry(&mut self, at: Instant) {
        self.hurry_at = Some(earliest(at, self.hurry_at));
        if let Some(stop) = self.stop_at {
            self.stop_at = Some(earliest(at, Some(stop)));
        }
    }

    /// Whether the shutdown deadline has passed with `live` connections
    /// still open; true once.
    pub fn stop_due(&mut self, now: Instant, live: usize) -> bool {
        let due = self
            .stop_at
            .is_some_and(|at| !self.stop_fired && now >= at && live > 0);
        if due {
            self.stop_fired = true;
        }
        due
    }

    /// The nearest of the thread's own deadlines and `others`.
    pub fn nearest(&self, others: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
        let stop = self.stop_at.filter(|_| !self.stop_fired);
        others.into_iter().chain([stop]).flatten().min()
    }
}

fn earliest(at: Instant, other: Option<Instant>) -> Instant {
    other.map_or(at, |o| o.min(at))
}

/// Give the connection's frame and user timers the wheel entries they
/// need after a callback set them (`TIMERS_DIRTY`).
#[cold]
pub(crate) fn schedule(st: &mut ConnState, key: Key, wheel: &mut Wheel) {
    st.clear(TIMERS_DIRTY);
    // The frame timer only moves later: an entry already queued comes
    // first and reschedules itself.
    if st.timers.frame_at != 0 && !st.has(FRAME_QUEUED) {
        st.set(FRAME_QUEUED);
        wheel.insert(key, TimerKind::Frame, st.timers.frame_at);
    }
    let t = &mut st.timers;
    if t.user_at != 0 && (t.user_sched == 0 || t.user_sched > t.user_at) {
        t.user_sched = t.user_at;
        wheel.insert(key, TimerKind::User, t.user_at);
    }
}

impl<H: Handler, I> Core<H, I> {
    /// Fire every connection timer due at `now`.
    pub fn fire_timers<B: Backend<Io = I>>(&mut self, be: &mut B, now: Instant) {
        if self.wheel.len() == 0 {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        self.wheel.advance(now, |d| due.push(d));
        for d in due.drain(..) {
            self.fire(be, d);
        }
        self.due = due;
    }

    fn fire<B: Backend<Io = I>>(&mut self, be: &mut B, d: Due) {
        let now = self.wheel.now();
        let idle = self.budget.limits.idle_timeout.map(Wheel::ticks);
        let Some(Parts { e, wheel, .. }) = self.entry_parts(d.key) else {
            return; // the connection is gone: a stale entry
        };
        if e.st.has(RELEASING) {
            return;
        }
        let which = match d.kind {
            TimerKind::Idle => {
                let Some(idle) = idle else { return };
                let at = e.st.last_active.saturating_add(idle);
                if at > now {
                    // Bytes moved since: not idle yet.
                    wheel.insert(d.key, TimerKind::Idle, at);
                    return;
                }
                // Again in one idle period, in case the handler keeps it.
                wheel.insert(d.key, TimerKind::Idle, now.saturating_add(idle));
                if e.st.has(CLOSE_PENDING) {
                    // Asked to close an idle period ago and still not done:
                    // the peer reads nothing. Reset it.
                    e.st.close_for(CloseReason::Timeout);
                    e.st.set(ABORT);
                    return self.kick(be, d.key);
                }
                Timeout::Idle
            }
            TimerKind::Frame => {
                e.st.clear(FRAME_QUEUED);
                let at = e.st.timers.frame_at;
                if at == 0 {
                    return; // the frame completed
                }
                if at > now {
                    // A later frame's deadline: its turn comes then.
                    e.st.set(FRAME_QUEUED);
                    wheel.insert(d.key, TimerKind::Frame, at);
                    return;
                }
                e.st.timers.frame_at = 0;
                if e.st.has(AWAIT_PROXY) {
                    tracing::warn!(conn = %e.st.id, peer = %e.st.peer,
                        "no PROXY protocol header within the frame timeout");
                    e.st.close_for(CloseReason::Timeout);
                    return self.proxy_failed(be, d.key);
                }
                Timeout::Frame
            }
            TimerKind::User => {
                let t = &mut e.st.timers;
                if t.user_sched != d.at {
                    return; // stale: a later entry stands for the timer
                }
                t.user_sched = 0;
                if t.user_at == 0 {
                    return; // cancelled
                }
                if t.user_at > now {
                    t.user_sched = t.user_at; // moved later
                    wheel.insert(d.key, TimerKind::User, t.user_at);
                    return;
                }
                t.user_at = 0;
                Timeout::User
            }
        };
        tracing::debug!(conn = %e.st.id, peer = %e.st.peer, ?which, "timed out");
        self.call(d.key, |h, c, s| h.timed_out(c, s, which));
        if let Some(e) = self.entry(d.key)
            && e.st.is_closing()
        {
            e.st.close_for(CloseReason::Timeout);
        }
        self.kick(be, d.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_stop_deadline_fires_once_and_only_with_live_connections() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.nearest([None]), None);
        timers.set_stop(t0 + Duration::from_secs(1));
        assert!(!timers.stop_due(t0, 3), "not yet");
        assert!(
            !timers.stop_due(t0 + Duration::from_secs(2), 0),
            "nothing to abort"
        );
        assert!(timers.stop_due(t0 + Duration::from_secs(2), 3));
        assert!(!timers.stop_due(t0 + Duration::from_secs(3), 3), "once");
        assert_eq!(
            timers.nearest([None]),
            None,
            "a fired deadline no longer bounds the wait"
        );
    }

    #[test]
    fn an_earlier_deadline_wins_whenever_it_comes() {
        let t0 = Instant::now();
        let secs = |n| t0 + Duration::from_secs(n);
        let mut timers = Timers::default();
        timers.set_stop(secs(30));
        timers.hurry(secs(60));
        assert_eq!(
            timers.nearest([None]),
            Some(secs(30)),
            "a later one changes nothing"
        );
        timers.hurry(secs(1));
        assert_eq!(timers.nearest([None]), Some(secs(1)));
        timers.set_stop(secs(30));
        assert_eq!(
            timers.nearest([None]),
            Some(secs(1)),
            "a repeated Stop keeps it"
        );
        // A hurry that reaches the thread before its Stop.
        let mut timers = Timers::default();
        timers.hurry(secs(2));
        assert_eq!(timers.nearest([None]), None, "not stopping yet");
        timers.set_stop(secs(30));
        assert_eq!(timers.nearest([None]), Some(secs(2)));
    }

    #[test]
    fn the_nearest_deadline_bounds_the_wait() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set_stop(t0 + Duration::from_secs(5));
        let connect = Some(t0 + Duration::from_secs(2));
        assert_eq!(timers.nearest([connect, None]), connect);
        assert_eq!(timers.nearest([None]), Some(t0 + Duration::from_secs(5)));
    }
}
