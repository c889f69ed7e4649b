//! The RFC 1939 autologout timer: a janitor thread that closes the sessions
//! idle for too long, without entering the UPDATE state.
//!
//! The core has no timers yet; the ROADMAP plans a timer wheel per IO
//! thread, which will replace this thread. Until then the rest of the
//! server sees only [`Janitor::start`], [`Janitor::clock`],
//! [`Janitor::watch`] and [`Janitor::unwatch`].

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use berth::{ConnHandle, ConnId};

use super::LOG_TARGET;
use super::conn::Pop3Conn;

/// What the janitor sends before closing an idle session.
const AUTOLOGOUT: &[u8] = b"-ERR autologout; idle for too long\r\n";

/// Milliseconds since a fixed instant, shared by the janitor and the jobs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// Milliseconds since the epoch.
    pub(super) fn now(self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The autologout timer of every session of one server: a thread that wakes
/// at a coarse interval and closes the sessions idle for too long.
pub(super) struct Janitor {
    inner: Arc<JanitorInner>,
    thread: Option<JoinHandle<()>>,
}

struct JanitorInner {
    clock: Clock,
    idle: Duration,
    watched: Mutex<HashMap<ConnId, Watched>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct Watched {
    handle: ConnHandle,
    conn: Weak<Pop3Conn>,
}

impl Janitor {
    /// Start the thread; it closes sessions idle for longer than `idle`.
    pub(super) fn start(idle: Duration) -> io::Result<Self> {
        let inner = Arc::new(JanitorInner {
            clock: Clock {
                epoch: Instant::now(),
            },
            idle,
            watched: Mutex::new(HashMap::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let run = Arc::clone(&inner);
        let thread = thread::Builder::new()
            .name("pop3-janitor".to_owned())
            .spawn(move || run.run(tick))?;
        Ok(Janitor {
            inner,
            thread: Some(thread),
        })
    }

    /// The clock activity is measured with.
    pub(super) fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Watch `conn`, reached through `handle`, until [`Janitor::unwatch`].
    pub(super) fn watch(&self, handle: ConnHandle, conn: &Arc<Pop3Conn>) {
        let entry = Watched {
            handle,
            conn: Arc::downgrade(conn),
        };
        self.inner.watched().insert(entry.handle.id(), entry);
    }

    /// Stop watching connection `id` (and drop the janitor's handle to it).
    pub(super) fn unwatch(&self, id: ConnId) {
        // Dropped outside the lock: dropping a handle may message its thread.
        let removed = self.inner.watched().remove(&id);
        drop(removed);
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        *self
            .inner
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.inner.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let watched = std::mem::take(&mut *self.inner.watched());
        drop(watched);
    }
}

impl JanitorInner {
    fn watched(&self) -> MutexGuard<'_, HashMap<ConnId, Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, tick: Duration) {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            stop = self
                .wake
                .wait_timeout(stop, tick)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if *stop {
                return;
            }
            drop(stop);
            self.sweep();
            stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Close every session idle for longer than the timeout.
    fn sweep(&self) {
        let idle_ms = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX);
        let now = self.clock.now();
        let expired = |pc: &Pop3Conn| now.saturating_sub(pc.last_active()) > idle_ms;
        // Candidates first, then close them without holding the map's lock.
        let mut candidates = Vec::new();
        let mut gone = Vec::new();
        for (id, w) in self.watched().iter() {
            match w.conn.upgrade() {
                Some(pc) if expired(&pc) => candidates.push((*id, pc, w.handle.clone())),
                Some(_) => {}
                None => gone.push(*id),
            }
        }
        for (id, pc, handle) in candidates {
            let mut guard = match pc.session.try_lock() {
                Ok(guard) => guard,
                // A command is running: the session is not idle.
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => {
                    gone.push(id);
                    continue;
                }
            };
            // Commands note their activity while holding the lock, so this
            // second look is final.
            if !expired(&pc) {
                continue;
            }
            if let Some(driver) = guard.take() {
                tracing::info!(target: LOG_TARGET, conn = %id, peer = %handle.peer_addr(),
                    user = ?driver.session.user(),
                    "POP3 autologout");
                if driver.mid_response() {
                    // The client stopped reading a response: a line now
                    // would land inside it. Reset instead.
                    let _ = handle.abort();
                } else {
                    let _ = handle.write(AUTOLOGOUT);
                    let _ = handle.close();
                }
                // Dropping the session releases the mailbox lock and
                // deletes nothing.
                drop(driver);
            }
            gone.push(id);
        }
        let mut watched = self.watched();
        let removed: Vec<_> = gone.iter().filter_map(|id| watched.remove(id)).collect();
        drop(watched);
        drop(removed);
    }
}
