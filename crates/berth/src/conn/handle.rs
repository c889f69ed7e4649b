//! [`ConnHandle`]: a connection seen from any thread, and what it shares
//! with its connection's IO thread.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::{BufPool, IoBuf};
use crate::conn::types::{ConnError, ConnId, Shutdown};
use crate::driver::key::Key;
use crate::driver::mailbox::{Command, ConnOp, Mailbox};
use crate::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Which sides of a connection are still connected, as one byte that the IO
/// thread publishes to the handles (the seed's "determine if send/receive
/// are connected").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sides(u8);

impl Sides {
    const OPEN: u8 = 1 << 0;
    const READ: u8 = 1 << 1;
    const WRITE: u8 = 1 << 2;
    const WRITABLE: u8 = 1 << 3;
    /// Closed: nothing is connected.
    pub const CLOSED: Sides = Sides(0);

    /// An open connection whose sides are as given; `writable`: at or
    /// below the write watermark.
    pub fn open(read: bool, write: bool, writable: bool) -> Sides {
        let mut bits = Self::OPEN;
        if read {
            bits |= Self::READ;
        }
        if write {
            bits |= Self::WRITE;
        }
        if writable {
            bits |= Self::WRITABLE;
        }
        Sides(bits)
    }

    pub fn writable(self) -> bool {
        self.0 & (Self::WRITE | Self::WRITABLE) == Self::WRITE | Self::WRITABLE
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn is_open(self) -> bool {
        self.0 & Self::OPEN != 0
    }

    pub fn read(self) -> bool {
        self.0 & Self::READ != 0
    }

    pub fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }
}

/// What a [`ConnHandle`] shares with its connection.
pub(crate) struct ConnShared {
    pub(super) key: Key,
    pub(super) id: ConnId,
    pub(super) peer: SocketAddr,
    /// [`Sides`], written only by the IO thread.
    pub(super) sides: AtomicU8,
    pub(super) handles: AtomicUsize,
    /// The connection's queued bytes, published by the IO thread.
    pub(super) queued: AtomicUsize,
    /// Bytes handles have sent for writing that the IO thread has not
    /// applied yet.
    pub(super) pending: AtomicUsize,
    /// Under the Refuse policy, the cap handle writes are refused past.
    pub(super) refuse_over: Option<usize>,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) pool: BufPool,
}

impl ConnShared {
    /// Publish which sides are connected (called by the IO thread when they change).
    pub fn publish(&self, sides: Sides) {
        self.sides.store(sides.bits(), Ordering::Release);
    }

    /// Publish the connection's queued bytes (called by the IO thread).
    #[inline]
    pub fn publish_queued(&self, bytes: usize) {
        self.queued.store(bytes, Ordering::Relaxed);
    }

    /// A handle's write of `n` bytes reached the IO thread.
    pub fn applied(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::AcqRel);
    }

    fn sides(&self) -> Sides {
        Sides(self.sides.load(Ordering::Acquire))
    }
}

/// A `Send + Sync + Clone` handle to a connection, usable from any thread.
///
/// Operations are carried to the connection's IO thread and applied in the
/// order each thread made them. Once the connection is gone they return
/// [`ConnError::Closed`] and touch nothing else. While any handle is held
/// the connection is not closed on its own (see [`Lifecycle::closing`]).
///
/// [`Lifecycle::closing`]: crate::Lifecycle::closing
pub struct ConnHandle {
    shared: Arc<ConnShared>,
}

impl ConnHandle {
    /// A handle whose count [`Conn::handle`](crate::Conn::handle) already raised.
    pub(super) fn from_shared(shared: Arc<ConnShared>) -> Self {
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
        self.shared.sides().is_open()
    }

    /// Whether the receive side is still connected, as last published by
    /// the IO thread (see [`Conn::is_read_open`](crate::Conn::is_read_open)).
    pub fn is_read_open(&self) -> bool {
        self.shared.sides().read()
    }

    /// Whether the send side is still connected, as last published by the
    /// IO thread (see [`Conn::is_write_open`](crate::Conn::is_write_open)).
    /// Operations this handle queued and that are not yet applied are not
    /// reflected.
    pub fn is_write_open(&self) -> bool {
        self.shared.sides().write()
    }

    /// Whether writing is open and the connection's queue is at or below
    /// its low watermark (since it last went above the high one), as last
    /// published by the IO thread (see
    /// [`Conn::is_writable`](crate::Conn::is_writable)). A producer on
    /// another thread can hold back while this is false, and go on when
    /// [`Lifecycle::writability_changed`](crate::Lifecycle::writability_changed) says so.
    pub fn is_writable(&self) -> bool {
        self.shared.sides().writable()
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
    ///
    /// Under [`OverflowPolicy::Refuse`](crate::OverflowPolicy::Refuse) a
    /// write that would take the connection's queue (with the writes of
    /// every handle not yet applied) past its cap is refused here with
    /// [`ConnError::WriteQueueFull`]. A write that still overflows when
    /// applied (other writers raced it, or the server-wide cap) resets the
    /// connection: the stream never has a gap.
    pub fn write_buf(&self, buf: IoBuf) -> Result<(), ConnError> {
        let n = buf.len();
        let shared = &self.shared;
        let before = shared.pending.fetch_add(n, Ordering::AcqRel);
        if let Some(cap) = shared.refuse_over
            && shared.queued.load(Ordering::Relaxed) + before + n > cap
        {
            shared.pending.fetch_sub(n, Ordering::AcqRel);
            return Err(ConnError::WriteQueueFull);
        }
        self.send(ConnOp::Write(buf)).inspect_err(|_| {
            shared.pending.fetch_sub(n, Ordering::AcqRel);
        })
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

    /// Start (or restart) the connection's own timer from another thread:
    /// `after` from when the IO thread applies it (see
    /// [`Conn::set_timer`](crate::Conn::set_timer)). A worker that must
    /// answer later without sleeping (a failed login's delay, say) sets
    /// it and lets [`Lifecycle::timed_out`](crate::Lifecycle::timed_out)
    /// finish the job on the IO thread.
    pub fn set_timer(&self, after: Duration) -> Result<(), ConnError> {
        self.send(ConnOp::Timer(Some(after)))
    }

    /// Cancel the connection's own timer from another thread.
    pub fn cancel_timer(&self) -> Result<(), ConnError> {
        self.send(ConnOp::Timer(None))
    }
}

impl Clone for ConnHandle {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        ConnHandle {
            shared: Arc::clone(&self.shared),
        }
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
