//! The engine-independent half of an IO thread: the connection table and the
//! rules every engine shares (the seed's semantics).
//!
//! An engine reports what happened (`on_data`, `on_eof`, `on_write`, ...);
//! the core runs the handler's callbacks and then *reconciles* the
//! connection ([`Core::kick`]): it compares what the connection wants
//! (reading or paused, queued writes, a pending shutdown or close) with what
//! the engine is doing and asks the engine, through [`Backend`], to start or
//! stop exactly what differs. Because every engine is driven by the same
//! reconciliation, the callback rules are identical on all of them.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::buffer::{BufPool, IoBuf};
use crate::conn::{Conn, ConnEnv, ConnId, ConnState, Shutdown, flags::*};
use crate::handler::{Closing, Handler, ServerEvent};
use crate::mailbox::{ConnOp, Key, Mailbox};

/// How a connection's socket is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseMode {
    /// A normal close: the peer sees end-of-file.
    Graceful,
    /// Linger 0: the peer sees a reset.
    Abortive,
}

/// What the core asks of an engine for one connection. The engine's own
/// per-connection state (`Io`, which owns the socket) lives beside the
/// core's in the connection table.
///
/// The contract every engine keeps:
/// - after `start_read`, data goes to [`Core::on_data`] (never empty), end
///   of stream to [`Core::on_eof`] and failures to [`Core::on_read_error`],
///   until `stop_read`; data already in flight when `stop_read` is called
///   may still arrive (the core keeps it in order);
/// - `start_write` writes from the front of `queue` (it must not be changed
///   by the engine) and reports the bytes written, either at once (`Some`)
///   or later through [`Core::on_write`]; at most one write is in flight;
/// - `close` ends every operation of the connection. A buffer the kernel
///   may still write into, or read from, stays owned by the engine until
///   its completion arrives. The engine returns `true` when the connection
///   is released at once, otherwise it calls [`Core::released`] later.
pub(crate) trait Backend {
    /// Per-connection engine state, including the socket.
    type Io;
    /// Whether the engine's sockets are in non-blocking mode. Its accept
    /// creates them that way (no extra system call per connection); only
    /// outbound sockets are switched before [`Backend::adopt_io`].
    const NONBLOCKING: bool;
    /// Wrap a freshly accepted or connected socket, already in the
    /// [`Backend::NONBLOCKING`] mode.
    fn adopt_io(&mut self, stream: std::net::TcpStream) -> io::Result<Self::Io>;
    /// The connection now has a key (register it with the engine if needed).
    fn attach(&mut self, key: Key, io: &mut Self::Io);
    fn start_read(&mut self, key: Key, io: &mut Self::Io);
    fn stop_read(&mut self, key: Key, io: &mut Self::Io);
    fn start_write(
        &mut self,
        key: Key,
        io: &mut Self::Io,
        queue: &VecDeque<IoBuf>,
    ) -> Option<io::Result<usize>>;
    fn shutdown(&mut self, io: &mut Self::Io, how: std::net::Shutdown) -> io::Result<()>;
    fn close(&mut self, key: Key, io: &mut Self::Io, mode: CloseMode) -> bool;
    /// Dispose of a released connection's engine state, closing its socket.
    /// Dropping it closes the socket at once; an engine may instead batch
    /// the close with its other submissions.
    fn release(&mut self, io: Self::Io) {
        drop(io);
    }
    /// Report (to the thread's connector) when the connecting socket `fd`
    /// becomes writable.
    fn watch_connect(&mut self, key: Key, fd: std::os::fd::RawFd);
    /// Stop watching; `true` if finished at once, otherwise the engine
    /// reports the end of the watch to the connector later.
    fn unwatch_connect(&mut self, key: Key, fd: std::os::fd::RawFd) -> bool;
}

/// Counters of one IO thread, written only by it.
#[derive(Debug, Default)]
pub(crate) struct ThreadStats {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    /// A gauge: receive buffers in the thread's io_uring buffer ring.
    pub ring_buffers: AtomicU64,
}

impl ThreadStats {
    fn add(counter: &AtomicU64, n: u64) {
        // Single writer: a plain load/store avoids a locked instruction.
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

struct Entry<S, I> {
    st: ConnState,
    state: S,
    io: Option<I>,
}

struct Slot<S, I> {
    generation: u32,
    entry: Option<Box<Entry<S, I>>>,
}

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
    stopping: bool,
}

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED)
    )
}

impl<H: Handler, I> Core<H, I> {
    pub fn new(
        handler: Arc<H>,
        pool: BufPool,
        mailbox: Arc<Mailbox>,
        thread: usize,
        max_spare: usize,
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
        }
    }

    /// Live connections on this thread.
    pub fn live(&self) -> usize {
        self.live
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    fn entry(&mut self, key: Key) -> Option<&mut Entry<H::State, I>> {
        let slot = self.slots.get_mut(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.entry.as_deref_mut()
    }

    /// The engine state of a live connection (`None` for a stale key).
    pub fn io_mut(&mut self, key: Key) -> Option<&mut I> {
        self.entry(key)?.io.as_mut()
    }

    /// Whether the connection wants data delivered now (for readiness engines).
    pub fn wants_read(&mut self, key: Key) -> bool {
        self.entry(key).is_some_and(|e| {
            e.st.has(READING) && !e.st.has(USER_PAUSED | RELEASING) && e.st.stash.is_empty()
        })
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

    /// Run a callback with the connection's `Conn` and state. A panicking
    /// callback aborts that connection only.
    fn call<R>(
        &mut self,
        key: Key,
        f: impl FnOnce(&H, &mut Conn<'_>, &mut H::State) -> R,
    ) -> Option<R> {
        let Core {
            handler,
            pool,
            mailbox,
            slots,
            ..
        } = self;
        let slot = slots.get_mut(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let e = slot.entry.as_deref_mut()?;
        let mut conn = Conn {
            st: &mut e.st,
            env: ConnEnv { pool, mailbox },
        };
        let state = &mut e.state;
        match catch_unwind(AssertUnwindSafe(|| f(handler, &mut conn, state))) {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::error!(conn = %e.st.id, "handler callback panicked; aborting the connection");
                e.st.set(ABORT);
                None
            }
        }
    }

    /// A new connection for this thread: run `connection_established`, start reading.
    pub fn adopt<B: Backend<Io = I>>(&mut self, be: &mut B, io: I, peer: SocketAddr) -> Key {
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
        let entry = match self.spare.pop() {
            Some(mut e) => {
                e.st.reset(id, key, peer);
                e.io = Some(io);
                e
            }
            None => Box::new(Entry {
                st: ConnState::new(id, key, peer),
                state: H::State::default(),
                io: Some(io),
            }),
        };
        slot.entry = Some(entry);
        if let Some(io) = self.io_mut(key) {
            be.attach(key, io);
        }
        self.live += 1;
        ThreadStats::add(&self.stats.accepted, 1);
        if self.stopping
            && let Some(e) = self.entry(key)
        {
            e.st.set(STOPPING);
        }
        self.handler
            .server_event(ServerEvent::ConnectionOpened { id, peer });
        self.call(key, |h, c, s| h.connection_established(c, s, peer));
        self.kick(be, key);
        key
    }

    pub fn on_data<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, buf: IoBuf) {
        ThreadStats::add(&self.stats.bytes_read, buf.len() as u64);
        ThreadStats::add(&self.stats.reads, 1);
        let Some(e) = self.entry(key) else { return };
        if e.st
            .has(READ_SHUT | CLOSE_PENDING | ABORT | RELEASING | PEER_EOF)
        {
            return; // nobody wants it any more; the buffer goes back to the pool
        }
        if e.st.has(USER_PAUSED) || !e.st.stash.is_empty() {
            e.st.stash.push_back(buf);
        } else {
            self.call(key, |h, c, s| h.read_completed(c, s, buf));
        }
        self.kick(be, key);
    }

    pub fn on_eof<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        let Some(e) = self.entry(key) else { return };
        e.st.set(PEER_EOF);
        self.kick(be, key);
    }

    pub fn on_read_error<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, err: io::Error) {
        self.fail(be, key, err);
    }

    fn fail<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, err: io::Error) {
        let Some(e) = self.entry(key) else { return };
        if e.st.has(RELEASING | ABORT) {
            return;
        }
        e.st.stash.clear();
        if is_reset(&err) {
            self.call(key, |h, c, s| h.connection_reset(c, s, &err));
        } else {
            self.call(key, |h, c, s| h.connection_error(c, s, &err));
        }
        if let Some(e) = self.entry(key) {
            e.st.set(ABORT);
        }
        self.kick(be, key);
    }

    /// A write finished (for engines that complete writes asynchronously).
    pub fn on_write<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, res: io::Result<usize>) {
        self.write_done(be, key, res);
        self.kick(be, key);
    }

    fn write_done<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, res: io::Result<usize>) {
        let Some(e) = self.entry(key) else { return };
        e.st.clear(WRITING);
        let mut n = match res {
            Ok(n) => n,
            Err(err) => return self.fail(be, key, err),
        };
        if e.st.has(RELEASING | ABORT) {
            return;
        }
        e.st.wq_bytes = e.st.wq_bytes.saturating_sub(n);
        ThreadStats::add(&self.stats.bytes_written, n as u64);
        ThreadStats::add(&self.stats.writes, 1);
        loop {
            let Some(e) = self.entry(key) else { return };
            let Some(head) = e.st.wq.front_mut() else {
                return;
            };
            if n < head.len() {
                head.advance(n);
                return;
            }
            n -= head.len();
            let done = e.st.wq.pop_front().expect("front exists");
            self.call(key, |h, c, s| h.write_completed(c, s, done));
            if n == 0 {
                return;
            }
        }
    }

    /// A readiness engine can write again: retry the pending write.
    pub fn retry_write<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        let Some(e) = self.entry(key) else { return };
        if e.st.has(WRITING) {
            e.st.clear(WRITING);
            self.kick(be, key);
        }
    }

    /// An operation from another thread.
    pub fn on_op<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, op: ConnOp) {
        let Some(e) = self.entry(key) else { return };
        if e.st.has(RELEASING) {
            return;
        }
        e.st.apply(op);
        self.kick(be, key);
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
                e.st.set(ABORT);
            }
            self.kick(be, key);
        }
    }

    /// Bring the engine in line with what the connection wants, running
    /// the callbacks that became due. See the module docs.
    pub fn kick<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        loop {
            let Some(e) = self.entry(key) else { return };
            let Some(io) = e.io.as_mut() else { return };
            let st = &mut e.st;
            if st.has(RELEASING) {
                return;
            }
            if st.has(ABORT) {
                return self.begin_close(be, key, CloseMode::Abortive);
            }

            // Reads: stashed data first, then end-of-stream, then the engine.
            let deliver = !st.has(USER_PAUSED | CLOSE_PENDING);
            if deliver && let Some(buf) = st.stash.pop_front() {
                self.call(key, |h, c, s| h.read_completed(c, s, buf));
                continue;
            }
            if deliver && st.has(PEER_EOF) && !st.has(EOF_NOTIFIED) {
                st.set(EOF_NOTIFIED);
                self.call(key, |h, c, s| h.client_closed(c, s));
                continue;
            }
            let want_read = deliver && !st.has(PEER_EOF | READ_SHUT | STOPPING | SHUT_RD_PENDING);
            if want_read != st.has(READING) {
                if want_read {
                    st.set(READING);
                    be.start_read(key, io);
                } else {
                    st.clear(READING);
                    be.stop_read(key, io);
                }
            }

            // Writes: one in flight at a time, from the front of the queue.
            if !st.wq.is_empty() && !st.has(WRITING) {
                match be.start_write(key, io, &st.wq) {
                    Some(res) => {
                        self.write_done(be, key, res);
                        continue;
                    }
                    None => st.set(WRITING),
                }
            }
            if !st.wq.is_empty() || st.has(WRITING) {
                return;
            }

            // Every write has completed: deferred shutdowns and closes. When
            // `closing` is due in this same pass it is asked before a pending
            // shutdown(write) is applied: if a graceful close follows, the
            // close sends the FIN itself (unless unread input makes it a
            // reset either way) and the shutdown call is skipped. Otherwise
            // the shutdown is applied at once, below.
            if st.has(SHUT_RD_PENDING) {
                st.clear(SHUT_RD_PENDING);
                st.set(READ_SHUT);
                st.stash.clear();
                if let Err(err) = be.shutdown(io, std::net::Shutdown::Read) {
                    tracing::debug!(conn = %st.id, %err, "shutdown(read) failed");
                }
                continue;
            }
            if st.has(CLOSE_PENDING) {
                return self.begin_close(be, key, CloseMode::Graceful);
            }
            let stopping = st.has(STOPPING);
            let read_done =
                stopping || st.has(READ_SHUT) || (st.has(EOF_NOTIFIED) && st.stash.is_empty());
            if st.has(HANDED_OFF) {
                if !st.handles_held() {
                    st.set(ABORT);
                    continue;
                }
            } else if read_done && !st.has(CLOSING_CALLED) && (stopping || !st.handles_held()) {
                st.set(CLOSING_CALLED);
                match self.call(key, |h, c, s| h.closing(c, s)) {
                    Some(Closing::Handled) => {
                        if let Some(e) = self.entry(key) {
                            e.st.set(HANDED_OFF);
                        }
                    }
                    _ => {
                        if let Some(e) = self.entry(key) {
                            e.st.set(CLOSE_PENDING);
                        }
                    }
                }
                continue;
            }
            if st.has(SHUT_WR_PENDING) {
                st.clear(SHUT_WR_PENDING);
                st.set(WRITE_SHUT);
                if let Err(err) = be.shutdown(io, std::net::Shutdown::Write) {
                    tracing::debug!(conn = %st.id, %err, "shutdown(write) failed");
                }
            }
            return;
        }
    }

    fn begin_close<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, mode: CloseMode) {
        let Some(e) = self.entry(key) else { return };
        e.st.set(RELEASING);
        if let Some(shared) = &e.st.shared {
            shared.mark_closed();
        }
        let Some(io) = e.io.as_mut() else { return };
        if be.close(key, io, mode) {
            self.released(be, key);
        }
    }

    /// The engine finished closing the connection: free its slot.
    pub fn released<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        let Some(slot) = self.slots.get_mut(key.idx as usize) else {
            return;
        };
        if slot.generation != key.generation {
            return;
        }
        let Some(mut e) = slot.entry.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.idx);
        self.live -= 1;
        ThreadStats::add(&self.stats.closed, 1);
        // Buffers go back to the pool, the socket to `Backend::release`
        // (which closes it, at once or with the engine's next submission),
        // the state is dropped.
        e.st.wq.clear();
        e.st.stash.clear();
        e.st.shared = None;
        if let Some(io) = e.io.take() {
            be.release(io);
        }
        e.state = H::State::default();
        let (id, peer) = (e.st.id, e.st.peer);
        if self.spare.len() < self.max_spare {
            self.spare.push(e);
        }
        self.handler
            .server_event(ServerEvent::ConnectionClosed { id, peer });
    }
}

impl From<Shutdown> for std::net::Shutdown {
    fn from(how: Shutdown) -> Self {
        match how {
            Shutdown::Read => std::net::Shutdown::Read,
            Shutdown::Write => std::net::Shutdown::Write,
            Shutdown::Both => std::net::Shutdown::Both,
        }
    }
}
