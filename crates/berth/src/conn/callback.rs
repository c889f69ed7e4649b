//! [`Conn`]: a connection as seen from inside one of its callbacks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::BufPool;
use crate::conn::handle::{ConnHandle, ConnShared};
use crate::conn::types::{ConnError, ConnId, Shutdown};
use crate::driver::limits::WriteBudget;
use crate::driver::mailbox::Mailbox;
use crate::driver::state::{ConnState, flags::*};
use crate::driver::wheel::Wheel;
use crate::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The thread-level context a [`Conn`] needs.
pub(crate) struct ConnEnv<'a> {
    pub pool: &'a BufPool,
    pub mailbox: &'a Arc<Mailbox>,
    /// The thread's write accounting and limits.
    pub budget: &'a mut WriteBudget,
    /// The thread's current wheel tick.
    pub now: u32,
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
    pub fn peer_addr(&self) -> std::net::SocketAddr {
        self.st.peer
    }

    /// The server's buffer pool, to fill buffers for [`Conn::write_buf`].
    pub fn pool(&self) -> &BufPool {
        self.env.pool
    }

    /// Queue a copy of `data` for writing (copied into pooled buffers).
    ///
    /// Refused with [`ConnError::WriteQueueFull`] if it would take the
    /// queue past its hard cap
    /// ([`ServerBuilder::max_write_queue`](crate::ServerBuilder::max_write_queue)).
    pub fn write(&mut self, data: &[u8]) -> Result<(), ConnError> {
        self.st.reserve(data.len(), self.env.budget)?;
        let st = &mut *self.st;
        self.env.pool.copy_in(data, |buf| st.wq.push_back(buf));
        Ok(())
    }

    /// Queue `buf` for writing, without a copy (refused as [`Conn::write`]).
    pub fn write_buf(&mut self, buf: crate::buffer::IoBuf) -> Result<(), ConnError> {
        self.st.push_write(buf, self.env.budget)
    }

    /// Bytes queued for writing and not yet handed to the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.st.wq_bytes
    }

    /// Whether the connection is writable: writing is open and its queue
    /// has not gone above the high watermark, or has since fallen to the
    /// low one (Netty's `isWritable`). A handler producing a long reply
    /// holds back while this is false and goes on when
    /// [`Lifecycle::writability_changed`](crate::Lifecycle::writability_changed)
    /// reports it writable again. Writes are still accepted up to the
    /// hard cap.
    pub fn is_writable(&self) -> bool {
        self.st.sides().writable()
    }

    /// Start (or restart) the connection's own timer: after `after`,
    /// [`Lifecycle::timed_out`](crate::Lifecycle::timed_out) is called
    /// with [`Timeout::User`](crate::Timeout::User), unless the timer is
    /// set again or cancelled first. Setting it costs no system call; a
    /// timer moved later costs nothing until it comes due.
    pub fn set_timer(&mut self, after: Duration) {
        self.st.set_user_timer(Some(after), self.env.now);
    }

    /// Cancel the connection's own timer (nothing happens if none is set).
    pub fn cancel_timer(&mut self) {
        self.st.set_user_timer(None, self.env.now);
    }

    /// Start the frame timer if it is not running (the framed layer calls
    /// this when a frame's first byte arrives). `timeout` is the server's
    /// frame timeout.
    pub(crate) fn start_frame_timer(&mut self, timeout: Duration) {
        if self.st.timers.frame_at == 0 {
            self.st.timers.frame_at = self.env.now.saturating_add(Wheel::ticks(timeout));
            self.st.set(TIMERS_DIRTY);
        }
    }

    /// Stop the frame timer (the frame is complete).
    pub(crate) fn stop_frame_timer(&mut self) {
        self.st.timers.frame_at = 0;
    }

    /// The server's frame timeout, if one is set.
    pub(crate) fn frame_timeout(&self) -> Option<Duration> {
        self.env.budget.limits.frame_timeout
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

    /// Whether the receive side is still connected: the peer has not ended
    /// its stream, reading was not shut down, and the connection is not
    /// closing. (Data that arrived before the peer's end of stream may
    /// still be on its way to [`Handler::read_completed`].)
    ///
    /// [`Handler::read_completed`]: crate::Handler::read_completed
    pub fn is_read_open(&self) -> bool {
        self.st.sides().read()
    }

    /// Whether the send side is still connected: writing was not shut down
    /// (nor requested to be) and the connection is not closing, so
    /// [`Conn::write`] would be accepted.
    pub fn is_write_open(&self) -> bool {
        self.st.sides().write()
    }

    /// Shut down one or both directions once every queued write has completed.
    pub fn shutdown(&mut self, how: Shutdown) -> Result<(), ConnError> {
        self.st.request_shutdown(how)
    }

    /// Close gracefully once every queued write has completed. [`Lifecycle::closing`]
    /// is not called for a connection the server closed explicitly.
    ///
    /// [`Lifecycle::closing`]: crate::Lifecycle::closing
    pub fn close(&mut self) {
        self.st.request_close();
    }

    /// Close at once with a reset (linger 0): queued writes are discarded and
    /// the peer sees `ECONNRESET`.
    pub fn abort(&mut self) {
        self.st.set(ABORT);
    }

    /// A handle to operate on this connection from any thread.
    pub fn handle(&mut self) -> ConnHandle {
        let st = &mut *self.st;
        let sides = st.sides();
        let shared = st.shared.get_or_insert_with(|| {
            Arc::new(ConnShared {
                key: st.key,
                id: st.id,
                peer: st.peer,
                sides: AtomicU8::new(sides.bits()),
                handles: AtomicUsize::new(0),
                queued: AtomicUsize::new(st.wq_bytes),
                pending: AtomicUsize::new(0),
                refuse_over: refuse_over(self.env.budget),
                mailbox: Arc::clone(self.env.mailbox),
                pool: self.env.pool.clone(),
            })
        });
        if shared.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            // None was alive: a new generation, ended by its own `Released`.
            st.handle_gens += 1;
        }
        ConnHandle::from_shared(Arc::clone(shared))
    }
}

/// The cap a handle's writes are refused at, under
/// [`OverflowPolicy::Refuse`](crate::OverflowPolicy::Refuse) (`None`: the
/// policy resets instead, applied on the IO thread).
fn refuse_over(budget: &WriteBudget) -> Option<usize> {
    (budget.limits.policy == crate::OverflowPolicy::Refuse).then_some(budget.limits.max_write_queue)
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.st.id)
            .field("peer", &self.st.peer)
            .finish()
    }
}
