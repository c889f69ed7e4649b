//! The deadlines an IO thread keeps, and the nearest of them, which bounds
//! the loop's wait: no deadline, no wake-up. Today: the shutdown deadline
//! (here), connect timeouts (the connector) and the accept back-off (the
//! acceptor). Per-connection timers (idle and frame timeouts) belong here.

use std::time::Instant;

/// The thread's own deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Connections still open at this instant are closed abortively.
    stop_at: Option<Instant>,
    /// The stop deadline fired.
    stop_fired: bool,
}

impl Timers {
    /// Set the shutdown deadline.
    pub fn set_stop(&mut self, at: Instant) {
        self.stop_at = Some(at);
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
    fn the_nearest_deadline_bounds_the_wait() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set_stop(t0 + Duration::from_secs(5));
        let connect = Some(t0 + Duration::from_secs(2));
        assert_eq!(timers.nearest([connect, None]), connect);
        assert_eq!(timers.nearest([None]), Some(t0 + Duration::from_secs(5)));
    }
}
