//! The engine-independent half of an IO thread: the connection table and
//! the door through which its callbacks run. What happens to a connection
//! when the engine reports an event, and how the engine is then brought in
//! line with what the connection wants, is in `reconcile.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::buffer::BufPool;
use crate::conn::{Conn, ConnEnv, ConnId};
use crate::driver::backend::Backend;
use crate::driver::door;
use crate::driver::key::Key;
use crate::driver::limits::{Limits, WriteBudget};
use crate::driver::mailbox::Mailbox;
use crate::driver::state::{ConnState, flags::*};
use crate::driver::stats::{CloseReason, ThreadStats};
use crate::driver::timers;
use crate::driver::wheel::{Due, TimerKind, Wheel};
use crate::handler::Handler;
use crate::lifecycle::ServerEvent;

/// One connection: the core's state, the handler's, the engine's.
pub(super) struct Entry<S, I> {
    pub st: ConnState,
    pub state: S,
    pub io: Option<I>,
}

/// A connection's entry with the thread's write budget and timer wheel,
/// borrowed together.
pub(super) struct Parts<'a, S, I> {
    pub e: &'a mut Entry<S, I>,
    pub budget: &'a mut WriteBudget,
    pub wheel: &'a mut Wheel,
}

struct Slot<S, I> {
    generation: u32,
    /// Boxed: the entry keeps its address while the engine has operations
    /// in flight that point into `io` (see the `Backend` contract).
    entry: Option<Box<Entry<S, I>>>,
}

/// The slot `key` names, if its generation is still `key`'s (a stale key
/// names none).
#[inline]
fn live<S, I>(slots: &mut [Slot<S, I>], key: Key) -> Option<&mut Slot<S, I>> {
    slots
        .get_mut(key.idx as usize)
        .filter(|slot| slot.generation == key.generation)
}

/// The connections of one IO thread and the handler they run.
pub(crate) struct Core<H: Handler, I> {
    pub handler: Arc<H>,
    pub pool: BufPool,
    pub mailbox: Arc<Mailbox>,
    pub stats: Arc<ThreadStats>,
    slots: Vec<Slot<H::State, I>>,
    free: Vec<u32>,
    /// Connection objects kept for reuse (the seed's socket pool).
    spare: Vec<Box<Entry<H::State, I>>>,
    max_spare: usize,
    thread: u64,
    next_seq: u64,
    live: usize,
    pub(super) stopping: bool,
    /// Write accounting and the limits applied to every connection.
    pub(super) budget: WriteBudget,
    /// The thread's timers (`timers.rs` fires them).
    pub(super) wheel: Wheel,
    /// The wheel's tick at the start of this loop pass.
    pub(super) now: u32,
    /// Timers due in this pass (kept to reuse its allocation).
    pub(super) due: Vec<Due>,
    /// Connections admitted, across the server (released here).
    pub(super) admission: Option<Arc<crate::driver::admission::Admission>>,
    /// Accepted connections must start with a PROXY protocol header.
    pub(super) proxy_protocol: bool,
}

/// The states still held (the objects kept for reuse, and any connection
/// left when the thread ends) are dropped through the door, one by one.
impl<H: Handler, I> Drop for Core<H, I> {
    fn drop(&mut self) {
        for e in self.spare.drain(..) {
            door::drop_state(e);
        }
        for slot in &mut self.slots {
            if let Some(e) = slot.entry.take() {
                door::drop_state(e);
            }
        }
    }
}

impl<H: Handler, I> Core<H, I> {
    pub fn new(
        handler: Arc<H>,
        pool: BufPool,
        mailbox: Arc<Mailbox>,
        thread: usize,
        max_spare: usize,
        limits: Limits,
    ) -> Self {
        Core {
            handler,
            pool,
            mailbox,
            stats: Arc::default(),
            slots: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
            max_spare,
            thread: thread as u64,
            next_seq: 0,
            live: 0,
            stopping: false,
            budget: WriteBudget::new(limits),
            wheel: Wheel::new(Instant::now()),
            now: 0,
            due: Vec::new(),
            admission: None,
            proxy_protocol: false,
        }
    }

    /// The time at the start of a loop pass: what `last_active` and new
    /// timers count from.
    #[inline]
    pub fn set_now(&mut self, now: Instant) {
        self.now = self.wheel.tick_of(now);
    }

    /// The mask of flags that hold back reads: the handler's pause, and
    /// the queue above its high watermark when the handler asks for that.
    pub(super) const PAUSED: u32 = if H::PAUSE_READ_WHEN_UNWRITABLE {
        USER_PAUSED | UNWRITABLE
    } else {
        USER_PAUSED
    };

    /// A live connection's entry, the write budget and the wheel, at once.
    #[inline]
    pub(super) fn entry_parts(&mut self, key: Key) -> Option<Parts<'_, H::State, I>> {
        Some(Parts {
            e: live(&mut self.slots, key)?.entry.as_deref_mut()?,
            budget: &mut self.budget,
            wheel: &mut self.wheel,
        })
    }

    /// Live connections on this thread.
    pub fn live(&self) -> usize {
        self.live
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    #[inline]
    pub(super) fn entry(&mut self, key: Key) -> Option<&mut Entry<H::State, I>> {
        live(&mut self.slots, key)?.entry.as_deref_mut()
    }

    /// The engine state of a live connection (`None` for a stale key).
    #[inline]
    pub fn io_mut(&mut self, key: Key) -> Option<&mut I> {
        self.entry(key)?.io.as_mut()
    }

    /// The engine state of a connection that wants data delivered now
    /// (for readiness engines: one look-up per read).
    pub fn reader(&mut self, key: Key) -> Option<&mut I> {
        let e = self.entry(key)?;
        let wants = e.st.has(READING)
            && !e.st.has(Self::PAUSED | RELEASING)
            && (e.st.stash.is_empty() || e.st.has(AWAIT_PROXY));
        if wants { e.io.as_mut() } else { None }
    }

    /// Whether the connection wants data delivered now.
    #[cfg(test)]
    pub fn wants_read(&mut self, key: Key) -> bool {
        self.reader(key).is_some()
    }

    /// Keys of every live connection.
    pub fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(i, s)| Key {
                idx: i as u32,
                generation: s.generation,
            })
            .collect()
    }

    /// Run a callback with the connection's `Conn` and state, through the
    /// door: a panicking callback aborts that connection only.
    #[inline]
    pub(super) fn call<R>(
        &mut self,
        key: Key,
        f: impl FnOnce(&H, &mut Conn<'_>, &mut H::State) -> R,
    ) -> Option<R> {
        let Core {
            handler,
            pool,
            mailbox,
            slots,
            budget,
            wheel,
            now,
            ..
        } = self;
        let e = live(slots, key)?.entry.as_deref_mut()?;
        let mut conn = Conn {
            st: &mut e.st,
            env: ConnEnv {
                pool,
                mailbox,
                budget,
                now: *now,
            },
        };
        let r = door::conn_call(&**handler, &mut conn, &mut e.state, f);
        if e.st.has(TIMERS_DIRTY) {
            timers::schedule(&mut e.st, key, wheel);
        }
        r
    }

    /// An accepted connection that never reached the table gives its
    /// place back.
    pub(super) fn release_admission(&self, peer: SocketAddr) {
        if let Some(admission) = &self.admission {
            admission.release(peer.ip());
        }
    }

    /// A new connection for this thread: run `connection_established`,
    /// start reading. `admitted`: it was accepted (and holds a place in
    /// the admission limits), not connected outbound.
    pub fn adopt<B: Backend<Io = I>>(
        &mut self,
        be: &mut B,
        io: I,
        peer: SocketAddr,
        admitted: bool,
    ) {
        let entry = match self.spare.pop() {
            Some(e) => e,
            None => match door::new_state::<H::State>() {
                Some(state) => Box::new(Entry {
                    st: ConnState::new(ConnId(0), Key::default(), peer),
                    state,
                    io: None,
                }),
                None => {
                    if admitted {
                        self.release_admission(peer);
                    }
                    return be.release(io);
                }
            },
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        let key = Key {
            idx,
            generation: slot.generation,
        };
        let id = ConnId((self.next_seq << 8) | self.thread);
        self.next_seq += 1;
        let mut entry = entry;
        let st = &mut entry.st;
        st.reset(id, key, peer);
        if admitted {
            st.set(ADMITTED);
        }
        if self.stopping {
            st.set(STOPPING);
        }
        st.last_active = self.now;
        if let Some(idle) = self.budget.limits.idle_timeout {
            let at = self.now.saturating_add(Wheel::ticks(idle));
            self.wheel.insert(key, TimerKind::Idle, at);
        }
        // The handler meets a proxied connection once its PROXY header has
        // told the client's address (`proxy.rs`).
        let await_proxy = admitted && self.proxy_protocol;
        if await_proxy {
            st.set(AWAIT_PROXY);
            if let Some(limit) = self.budget.limits.frame_timeout {
                st.timers.frame_at = self.now.saturating_add(Wheel::ticks(limit));
                timers::schedule(st, key, &mut self.wheel);
            }
        }
        let e = slot.entry.insert(entry);
        be.attach(key, e.io.insert(io));
        self.live += 1;
        ThreadStats::add(&self.stats.accepted, 1);
        if await_proxy {
            return self.kick(be, key);
        }
        self.establish(be, key);
    }

    /// Introduce the connection to the handler: `ConnectionOpened`,
    /// `connection_established`, then the reconciliation that starts reading.
    pub(super) fn establish<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        let Some(e) = self.entry(key) else { return };
        let (id, peer) = (e.st.id, e.st.peer);
        tracing::debug!(conn = %id, %peer, "connection opened");
        door::server_event(&*self.handler, ServerEvent::ConnectionOpened { id, peer });
        self.call(key, |h, c, s| h.connection_established(c, s, peer));
        self.kick(be, key);
    }

    /// The engine finished closing the connection: free its slot.
    pub fn released<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        let Some(slot) = live(&mut self.slots, key) else {
            return;
        };
        let Some(mut e) = slot.entry.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.idx);
        self.live -= 1;
        ThreadStats::add(&self.stats.closed, 1);
        let reason = e.st.close_reason.unwrap_or(if e.st.has(PEER_EOF) {
            CloseReason::ClientClose
        } else if e.st.has(STOPPING) {
            CloseReason::Shutdown
        } else {
            CloseReason::ServerClose
        });
        ThreadStats::add(&self.stats.closed_by[reason as usize], 1);
        self.budget.queued = self.budget.queued.saturating_sub(e.st.wq_bytes);
        if e.st.has(ADMITTED) {
            self.release_admission(e.st.peer);
        }
        // Buffers go back to the pool, the socket to `Backend::release`
        // (which closes it, at once or with the engine's next submission),
        // the state is dropped.
        e.st.wq.clear();
        e.st.head_sent = 0;
        e.st.stash.clear();
        e.st.shared = None;
        if let Some(io) = e.io.take() {
            be.release(io);
        }
        let (id, peer) = (e.st.id, e.st.peer);
        if self.spare.len() < self.max_spare && door::renew_state(&mut e.state) {
            self.spare.push(e);
        } else {
            door::drop_state(e);
        }
        tracing::debug!(conn = %id, %peer, reason = %reason.name(), "connection closed");
        door::server_event(&*self.handler, ServerEvent::ConnectionClosed { id, peer });
    }

    /// Begin a graceful shutdown of every connection on this thread.
    pub fn stop<B: Backend<Io = I>>(&mut self, be: &mut B) {
        self.stopping = true;
        for key in self.keys() {
            if let Some(e) = self.entry(key) {
                e.st.set(STOPPING);
            }
            self.kick(be, key);
        }
    }

    /// The shutdown deadline passed: reset whatever is left.
    pub fn abort_all<B: Backend<Io = I>>(&mut self, be: &mut B) {
        for key in self.keys() {
            if let Some(e) = self.entry(key) {
                e.st.close_for(CloseReason::Shutdown);
                e.st.set(ABORT);
            }
            self.kick(be, key);
        }
    }
}
