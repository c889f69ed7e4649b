//! Connections: the in-callback [`Conn`] and the cross-thread [`ConnHandle`].

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::buffer::{BufPool, IoBuf};
use crate::mailbox::{Command, ConnOp, Key, Mailbox};

/// A connection's identity, unique within a server's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The raw number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which direction(s) [`Conn::shutdown`] closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Stop receiving; data the peer sends afterwards is discarded.
    Read,
    /// Stop sending: the peer sees end-of-file after every queued byte.
    Write,
    /// Both.
    Both,
}

/// Why a connection operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The connection is closed or closing.
    #[error("connection is closed")]
    Closed,
    /// The write side was shut down (or is about to be).
    #[error("connection's write side is shut down")]
    WriteShutdown,
}

pub(crate) mod flags {
    pub const USER_PAUSED: u16 = 1 << 0;
    pub const READING: u16 = 1 << 1;
    pub const WRITING: u16 = 1 << 2;
    pub const PEER_EOF: u16 = 1 << 3;
    pub const EOF_NOTIFIED: u16 = 1 << 4;
    pub const SHUT_RD_PENDING: u16 = 1 << 5;
    pub const SHUT_WR_PENDING: u16 = 1 << 6;
    pub const READ_SHUT: u16 = 1 << 7;
    pub const WRITE_SHUT: u16 = 1 << 8;
    pub const CLOSE_PENDING: u16 = 1 << 9;
    pub const ABORT: u16 = 1 << 10;
    pub const CLOSING_CALLED: u16 = 1 << 11;
    pub const HANDED_OFF: u16 = 1 << 12;
    pub const STOPPING: u16 = 1 << 13;
    pub const RELEASING: u16 = 1 << 14;
}
use flags::*;

/// Engine-independent state of one connection, owned by its IO thread.
pub(crate) struct ConnState {
    pub id: ConnId,
    pub key: Key,
    pub peer: SocketAddr,
    /// Buffers waiting to be written (the head may be in flight).
    pub wq: VecDeque<IoBuf>,
    pub wq_bytes: usize,
    /// Data received while reading was paused, delivered on resume.
    pub stash: VecDeque<IoBuf>,
    pub flags: u16,
    /// Generations of handles not yet known to be gone. A generation
    /// starts when [`Conn::handle`] finds no handle alive, and ends when the
    /// `Released` its last drop queued is applied, so every operation its
    /// handles queued has been applied first. Counting (not a flag) keeps a
    /// late `Released` of one generation from ending the next.
    pub handle_gens: u32,
    /// Created when the first handle is taken.
    pub shared: Option<Arc<ConnShared>>,
}

impl ConnState {
    pub fn new(id: ConnId, key: Key, peer: SocketAddr) -> Self {
        ConnState {
            id,
            key,
            peer,
            wq: VecDeque::new(),
            wq_bytes: 0,
            stash: VecDeque::new(),
            flags: 0,
            handle_gens: 0,
            shared: None,
        }
    }

    /// Reuse a pooled connection object for a new connection, keeping the
    /// queues' capacity.
    pub fn reset(&mut self, id: ConnId, key: Key, peer: SocketAddr) {
        debug_assert!(self.wq.is_empty() && self.stash.is_empty());
        self.id = id;
        self.key = key;
        self.peer = peer;
        self.wq_bytes = 0;
        self.flags = 0;
        self.handle_gens = 0;
        self.shared = None;
    }

    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    pub fn set(&mut self, f: u16) {
        self.flags |= f;
    }

    pub fn clear(&mut self, f: u16) {
        self.flags &= !f;
    }

    /// Whether new operations are refused because the connection is going away.
    pub fn is_closing(&self) -> bool {
        self.has(CLOSE_PENDING | ABORT | RELEASING)
    }

    pub fn handles_held(&self) -> bool {
        self.handle_gens > 0
    }

    fn check_writable(&self) -> Result<(), ConnError> {
        if self.is_closing() {
            Err(ConnError::Closed)
        } else if self.has(SHUT_WR_PENDING | WRITE_SHUT) {
            Err(ConnError::WriteShutdown)
        } else {
            Ok(())
        }
    }

    pub fn push_write(&mut self, buf: IoBuf) -> Result<(), ConnError> {
        self.check_writable()?;
        if !buf.is_empty() {
            self.wq_bytes += buf.len();
            // Consecutive slices of one block (frames cut from one read)
            // go out as one buffer: fewer, larger sends, still no copy. A
            // send in flight keeps the pointer and length it was given.
            let merged = self.wq.back_mut().is_some_and(|last| last.try_append(&buf));
            if !merged {
                self.wq.push_back(buf);
            }
        }
        Ok(())
    }

    pub fn request_shutdown(&mut self, how: Shutdown) -> Result<(), ConnError> {
        if self.is_closing() {
            return Err(ConnError::Closed);
        }
        match how {
            Shutdown::Read => self.set(SHUT_RD_PENDING),
            Shutdown::Write => self.set(SHUT_WR_PENDING),
            Shutdown::Both => self.set(SHUT_RD_PENDING | SHUT_WR_PENDING),
        }
        Ok(())
    }

    /// Apply an operation carried from another thread.
    pub fn apply(&mut self, op: ConnOp) {
        // A refused operation from another thread has no caller left to
        // tell; its buffer is simply dropped back to the pool.
        let _ = match op {
            ConnOp::Write(buf) => self.push_write(buf),
            ConnOp::Shutdown(how) => self.request_shutdown(how),
            ConnOp::Close => {
                self.set(CLOSE_PENDING);
                Ok(())
            }
            ConnOp::Abort => {
                self.set(ABORT);
                Ok(())
            }
            ConnOp::PauseRead => {
                self.set(USER_PAUSED);
                Ok(())
            }
            ConnOp::ResumeRead => {
                self.clear(USER_PAUSED);
                Ok(())
            }
            ConnOp::Released => {
                self.handle_gens = self.handle_gens.saturating_sub(1);
                Ok(())
            }
        };
    }
}

/// What a [`ConnHandle`] shares with its connection.
pub(crate) struct ConnShared {
    key: Key,
    id: ConnId,
    peer: SocketAddr,
    open: AtomicBool,
    handles: AtomicUsize,
    mailbox: Arc<Mailbox>,
    pool: BufPool,
}

impl ConnShared {
    pub fn mark_closed(&self) {
        self.open.store(false, Ordering::Release);
    }
}

/// The thread-level context a [`Conn`] needs.
pub(crate) struct ConnEnv<'a> {
    pub pool: &'a BufPool,
    pub mailbox: &'a Arc<Mailbox>,
}

/// A connection, as seen from inside a [`Handler`](crate::Handler) callback.
///
/// Operations take effect when the callback returns, in the order they were
/// made: writes are queued, a shutdown waits for every queued write, a close
/// waits for them too, an abort discards them.
pub struct Conn<'a> {
    pub(crate) st: &'a mut ConnState,
    pub(crate) env: ConnEnv<'a>,
}

impl Conn<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.st.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.st.peer
    }

    /// The server's buffer pool, to fill buffers for [`Conn::write_buf`].
    pub fn pool(&self) -> &BufPool {
        self.env.pool
    }

    /// Queue a copy of `data` for writing (copied into pooled buffers).
    pub fn write(&mut self, data: &[u8]) -> Result<(), ConnError> {
        self.st.check_writable()?;
        let st = &mut *self.st;
        self.env.pool.copy_in(data, |buf| {
            st.wq_bytes += buf.len();
            st.wq.push_back(buf);
        });
        Ok(())
    }

    /// Queue `buf` for writing, without a copy.
    pub fn write_buf(&mut self, buf: IoBuf) -> Result<(), ConnError> {
        self.st.push_write(buf)
    }

    /// Bytes queued for writing and not yet handed to the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.st.wq_bytes
    }

    /// Stop delivering reads until [`Conn::resume_reading`]. Data that
    /// arrives meanwhile waits (in the kernel, or in order in the connection).
    pub fn pause_reading(&mut self) {
        self.st.set(USER_PAUSED);
    }

    /// Deliver reads again after [`Conn::pause_reading`].
    pub fn resume_reading(&mut self) {
        self.st.clear(USER_PAUSED);
    }

    /// Whether reading is paused by the handler.
    pub fn is_reading_paused(&self) -> bool {
        self.st.has(USER_PAUSED)
    }

    /// Shut down one or both directions once every queued write has completed.
    pub fn shutdown(&mut self, how: Shutdown) -> Result<(), ConnError> {
        self.st.request_shutdown(how)
    }

    /// Close gracefully once every queued write has completed. [`Handler::closing`]
    /// is not called for a connection the server closed explicitly.
    ///
    /// [`Handler::closing`]: crate::Handler::closing
    pub fn close(&mut self) {
        self.st.set(CLOSE_PENDING);
    }

    /// Close at once with a reset (linger 0): queued writes are discarded and
    /// the peer sees `ECONNRESET`.
    pub fn abort(&mut self) {
        self.st.set(ABORT);
    }

    /// A handle to operate on this connection from any thread.
    pub fn handle(&mut self) -> ConnHandle {
        let st = &mut *self.st;
        let shared = st.shared.get_or_insert_with(|| {
            Arc::new(ConnShared {
                key: st.key,
                id: st.id,
                peer: st.peer,
                open: AtomicBool::new(true),
                handles: AtomicUsize::new(0),
                mailbox: Arc::clone(self.env.mailbox),
                pool: self.env.pool.clone(),
            })
        });
        if shared.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            // None was alive: a new generation, ended by its own `Released`.
            st.handle_gens += 1;
        }
        ConnHandle {
            shared: Arc::clone(shared),
        }
    }
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.st.id)
            .field("peer", &self.st.peer)
            .finish()
    }
}

/// A `Send + Sync + Clone` handle to a connection, usable from any thread.
///
/// Operations are carried to the connection's IO thread and applied in the
/// order each thread made them. Once the connection is gone they return
/// [`ConnError::Closed`] and touch nothing else. While any handle is held
/// the connection is not closed on its own (see [`Handler::closing`]).
///
/// [`Handler::closing`]: crate::Handler::closing
pub struct ConnHandle {
    shared: Arc<ConnShared>,
}

impl ConnHandle {
    fn new(shared: Arc<ConnShared>) -> Self {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        ConnHandle { shared }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer
    }

    /// Whether the connection is still open (it may close at any moment).
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    fn send(&self, op: ConnOp) -> Result<(), ConnError> {
        if !self.is_open() {
            return Err(ConnError::Closed);
        }
        self.shared.mailbox.push(Command::Conn {
            key: self.shared.key,
            op,
        });
        Ok(())
    }

    /// Queue a copy of `data` for writing. The bytes of one call are never
    /// interleaved with another writer's.
    pub fn write(&self, data: &[u8]) -> Result<(), ConnError> {
        if data.len() <= self.shared.pool.buf_size() {
            let mut buf = self.shared.pool.alloc();
            buf.extend_from_slice(data);
            self.write_buf(buf.freeze())
        } else {
            self.write_buf(IoBuf::from(data.to_vec()))
        }
    }

    /// Queue `buf` for writing, without a copy.
    pub fn write_buf(&self, buf: IoBuf) -> Result<(), ConnError> {
        self.send(ConnOp::Write(buf))
    }

    /// Shut down one or both directions once every queued write has completed.
    pub fn shutdown(&self, how: Shutdown) -> Result<(), ConnError> {
        self.send(ConnOp::Shutdown(how))
    }

    /// Close gracefully once every queued write has completed.
    pub fn close(&self) -> Result<(), ConnError> {
        self.send(ConnOp::Close)
    }

    /// Close at once with a reset.
    pub fn abort(&self) -> Result<(), ConnError> {
        self.send(ConnOp::Abort)
    }

    /// Stop delivering reads until [`ConnHandle::resume_reading`].
    pub fn pause_reading(&self) -> Result<(), ConnError> {
        self.send(ConnOp::PauseRead)
    }

    /// Deliver reads again.
    pub fn resume_reading(&self) -> Result<(), ConnError> {
        self.send(ConnOp::ResumeRead)
    }
}

impl Clone for ConnHandle {
    fn clone(&self) -> Self {
        ConnHandle::new(Arc::clone(&self.shared))
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The connection may now be due to close; let its thread look.
            let _ = self.send(ConnOp::Released);
        }
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .field("open", &self.is_open())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Command;

    fn apply_all(st: &mut ConnState, mailbox: &Mailbox) {
        while let Some(cmd) = mailbox.pop() {
            if let Command::Conn { op, .. } = cmd {
                st.apply(op);
            }
        }
    }

    /// A `Released` from an earlier generation of handles, still queued when
    /// a new handle is taken and dropped, must not let the connection close
    /// before the operations the new handle queued are applied.
    #[test]
    fn stale_release_does_not_end_a_later_generation_of_handles() {
        let pool = BufPool::new(64, 4);
        let mailbox = Arc::new(Mailbox::new(true).unwrap());
        let key = Key {
            idx: 0,
            generation: 0,
        };
        let mut st = ConnState::new(ConnId(1), key, "127.0.0.1:9".parse().unwrap());
        let mut handle = || {
            let mut conn = Conn {
                st: &mut st,
                env: ConnEnv {
                    pool: &pool,
                    mailbox: &mailbox,
                },
            };
            conn.handle()
        };
        drop(handle()); // queues the first `Released`
        let second = handle();
        second.write(b"reply").unwrap();
        drop(second); // queues the write, then the second `Released`
        let first = mailbox.pop().expect("first release");
        assert!(matches!(
            first,
            Command::Conn {
                op: ConnOp::Released,
                ..
            }
        ));
        if let Command::Conn { op, .. } = first {
            st.apply(op);
        }
        assert!(
            st.handles_held(),
            "the second handle's operations are still queued"
        );
        apply_all(&mut st, &mailbox);
        assert!(!st.handles_held());
        assert_eq!(st.wq_bytes, 5);
    }
}
