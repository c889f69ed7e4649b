//! The connection state machine: the engine-independent state of one
//! connection (flags, write queue, stash of paused reads) and the
//! operations that change it. `reconcile.rs` turns this state into engine
//! requests and callbacks; [`Conn`](crate::Conn) and the mailbox change it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::buffer::IoBuf;
use crate::conn::{ConnError, ConnId, ConnShared, Shutdown, Sides};
use crate::driver::key::Key;
use crate::driver::limits::{OverflowPolicy, WriteBudget};
use crate::driver::mailbox::ConnOp;
use crate::driver::stats::CloseReason;
use crate::driver::wheel::Wheel;

/// The connection's flags: what the handler asked for, what the peer did,
/// and what the engine is doing.
pub(crate) mod flags {
    /// The handler paused reading.
    pub const USER_PAUSED: u32 = 1 << 0;
    /// The engine is reading (asked with `start_read`).
    pub const READING: u32 = 1 << 1;
    /// A write is in flight in the engine.
    pub const WRITING: u32 = 1 << 2;
    /// The peer ended its stream.
    pub const PEER_EOF: u32 = 1 << 3;
    /// `client_closed` was called.
    pub const EOF_NOTIFIED: u32 = 1 << 4;
    /// `shutdown(Read)` waits for the write queue to empty.
    pub const SHUT_RD_PENDING: u32 = 1 << 5;
    /// `shutdown(Write)` waits for the write queue to empty.
    pub const SHUT_WR_PENDING: u32 = 1 << 6;
    pub const READ_SHUT: u32 = 1 << 7;
    pub const WRITE_SHUT: u32 = 1 << 8;
    /// A graceful close waits for the write queue to empty.
    pub const CLOSE_PENDING: u32 = 1 << 9;
    /// Close abortively at the next reconciliation.
    pub const ABORT: u32 = 1 << 10;
    /// `closing` had its one chance.
    pub const CLOSING_CALLED: u32 = 1 << 11;
    /// `closing` returned `Handled`: a handle closes the connection.
    pub const HANDED_OFF: u32 = 1 << 12;
    /// The server is shutting down.
    pub const STOPPING: u32 = 1 << 13;
    /// The engine is closing the connection; nothing else happens to it.
    pub const RELEASING: u32 = 1 << 14;
    /// More than the high watermark is queued: not writable.
    pub const UNWRITABLE: u32 = 1 << 15;
    /// Writability changed: `writability_changed` is due.
    pub const WRIT_CHANGED: u32 = 1 << 16;
    /// A frame or user timer was set: the wheel needs an entry.
    pub const TIMERS_DIRTY: u32 = 1 << 17;
    /// Accepted: holds a place in the admission limits until released.
    pub const ADMITTED: u32 = 1 << 18;
    /// The frame timer has its entry in the wheel.
    pub const FRAME_QUEUED: u32 = 1 << 19;
    /// Accepted behind a proxy: its PROXY header has not arrived yet.
    pub const AWAIT_PROXY: u32 = 1 << 20;
}
use flags::*;

/// Engine-independent state of one connection, owned by its IO thread.
pub(crate) struct ConnState {
    pub id: ConnId,
    pub key: Key,
    pub peer: SocketAddr,
    /// Buffers waiting to be written. While a write is in flight
    /// (`WRITING`) the engine may point the kernel at the front buffers:
    /// they are neither popped nor changed until the write completes.
    pub wq: VecDeque<IoBuf>,
    pub wq_bytes: usize,
    /// Bytes of the queue's head already written by partial writes: the
    /// next write starts there, and the head stays whole so that
    /// `write_completed` gets the whole buffer.
    pub head_sent: usize,
    /// Data received while reading was paused, delivered on resume.
    pub stash: VecDeque<IoBuf>,
    pub flags: u32,
    /// Why the connection closes, once known (the first reason wins).
    pub close_reason: Option<CloseReason>,
    /// The wheel's tick when bytes last moved either way.
    pub last_active: u32,
    /// The connection's timers (`timers.rs`).
    pub timers: ConnTimers,
    /// Generations of handles not yet known to be gone. A generation
    /// starts when [`Conn::handle`](crate::Conn::handle) finds no handle
    /// alive, and ends when the `Released` its last drop queued is applied,
    /// so every operation its handles queued has been applied first.
    /// Counting (not a flag) keeps a late `Released` of one generation from
    /// ending the next.
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
            head_sent: 0,
            stash: VecDeque::new(),
            flags: 0,
            close_reason: None,
            last_active: 0,
            timers: ConnTimers::default(),
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
        self.head_sent = 0;
        self.flags = 0;
        self.close_reason = None;
        self.timers = ConnTimers::default();
        self.handle_gens = 0;
        self.shared = None;
    }

    #[inline]
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub fn set(&mut self, f: u32) {
        self.flags |= f;
    }

    #[inline]
    pub fn clear(&mut self, f: u32) {
        self.flags &= !f;
    }

    /// Record why the connection closes, unless a reason is already known.
    pub fn close_for(&mut self, reason: CloseReason) {
        self.close_reason.get_or_insert(reason);
    }

    /// Whether new operations are refused because the connection is going away.
    pub fn is_closing(&self) -> bool {
        self.has(CLOSE_PENDING | ABORT | RELEASING)
    }

    pub fn handles_held(&self) -> bool {
        self.handle_gens > 0
    }

    /// Which sides are still connected.
    pub fn sides(&self) -> Sides {
        if self.has(RELEASING) {
            return Sides::CLOSED;
        }
        let closing = self.is_closing();
        let read = !closing && !self.has(PEER_EOF | SHUT_RD_PENDING | READ_SHUT);
        let write = !closing && !self.has(SHUT_WR_PENDING | WRITE_SHUT);
        Sides::open(read, write, !self.has(UNWRITABLE))
    }

    /// Tell the handles (if any) which sides are connected. Called where
    /// a side closes; a connection without handles pays one branch.
    pub fn publish(&self) {
        if let Some(shared) = &self.shared {
            shared.publish(self.sides());
        }
    }

    /// Mark a flag that closes a side, and tell the handles.
    pub fn set_and_publish(&mut self, f: u32) {
        self.set(f);
        self.publish();
    }

    pub fn check_writable(&self) -> Result<(), ConnError> {
        if self.is_closing() {
            Err(ConnError::Closed)
        } else if self.has(SHUT_WR_PENDING | WRITE_SHUT) {
            Err(ConnError::WriteShutdown)
        } else {
            Ok(())
        }
    }

    /// Whether `n` more bytes may be queued: the connection is open for
    /// writing and the queue (and the thread's share of the server-wide
    /// cap) has room. Past the room the policy applies: the write is
    /// refused, and with [`OverflowPolicy::Close`] the connection is reset.
    #[inline]
    pub fn reserve(&mut self, n: usize, budget: &mut WriteBudget) -> Result<(), ConnError> {
        self.check_writable()?;
        if !budget.fits(self.wq_bytes, n) {
            return Err(self.overflow(n, budget));
        }
        self.wq_bytes += n;
        budget.queued += n;
        if let Some(shared) = &self.shared {
            shared.publish_queued(self.wq_bytes);
        }
        if self.wq_bytes > budget.limits.high_water && !self.has(UNWRITABLE) {
            self.set(UNWRITABLE | WRIT_CHANGED);
            self.publish();
        }
        Ok(())
    }

    #[cold]
    fn overflow(&mut self, n: usize, budget: &WriteBudget) -> ConnError {
        // At debug, like every connection event: with the Refuse policy
        // this runs once per refused write.
        tracing::debug!(
            conn = %self.id,
            peer = %self.peer,
            queued = self.wq_bytes,
            write = n,
            thread_queued = budget.queued,
            policy = ?budget.limits.policy,
            "write queue limit reached"
        );
        if budget.limits.policy == OverflowPolicy::Close {
            self.close_for(CloseReason::Limit);
            self.set_and_publish(ABORT);
        }
        ConnError::WriteQueueFull
    }

    /// `n` queued bytes were written (or dropped): update the accounting
    /// and the writability.
    #[inline]
    pub fn unreserve(&mut self, n: usize, budget: &mut WriteBudget) {
        self.wq_bytes = self.wq_bytes.saturating_sub(n);
        budget.queued = budget.queued.saturating_sub(n);
        if let Some(shared) = &self.shared {
            shared.publish_queued(self.wq_bytes);
        }
        if self.has(UNWRITABLE) && self.wq_bytes <= budget.limits.low_water {
            self.clear(UNWRITABLE);
            self.set(WRIT_CHANGED);
            self.publish();
        }
    }

    pub fn push_write(&mut self, buf: IoBuf, budget: &mut WriteBudget) -> Result<(), ConnError> {
        self.reserve(buf.len(), budget)?;
        if !buf.is_empty() {
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
        self.set_and_publish(match how {
            Shutdown::Read => SHUT_RD_PENDING,
            Shutdown::Write => SHUT_WR_PENDING,
            Shutdown::Both => SHUT_RD_PENDING | SHUT_WR_PENDING,
        });
        Ok(())
    }

    /// Set (`Some(after)`, from the tick `now`) or cancel the connection's
    /// own timer; the wheel entry is made after the callback or command
    /// (`TIMERS_DIRTY`).
    pub fn set_user_timer(&mut self, after: Option<std::time::Duration>, now: u32) {
        match after {
            Some(after) => {
                self.timers.user_at = now.saturating_add(Wheel::ticks(after));
                self.set(TIMERS_DIRTY);
            }
            None => self.timers.user_at = 0,
        }
    }

    /// Keep `buf` for later delivery while reads are held back by the write
    /// queue. A short buffer is copied into the end of the last one kept
    /// when that one has room, so the connection holds blocks in proportion
    /// to the bytes it keeps, not to the receives that brought them (a
    /// completion engine may deliver many short receives, each in a block
    /// of its own, before its cancel lands). The bytes are delivered in
    /// order as usual, in fewer, larger buffers. (Data kept while the
    /// handler paused reading keeps its buffers as they came.)
    pub fn stash_push(&mut self, buf: IoBuf) {
        if let Some(last) = self.stash.pop_back() {
            match last.try_into_mut() {
                Ok(mut tail) if tail.remaining() >= buf.len() => {
                    tail.extend_from_slice(&buf);
                    self.stash.push_back(tail.freeze());
                    return; // `buf`'s block goes back to the pool
                }
                Ok(tail) => self.stash.push_back(tail.freeze()),
                Err(last) => self.stash.push_back(last),
            }
        }
        self.stash.push_back(buf);
    }

    /// A graceful close, once every queued write has completed.
    pub fn request_close(&mut self) {
        self.set_and_publish(CLOSE_PENDING);
    }

    /// A handle's write, now on the IO thread.
    fn apply_write(&mut self, buf: IoBuf, budget: &mut WriteBudget) -> Result<(), ConnError> {
        if let Some(shared) = &self.shared {
            shared.applied(buf.len());
        }
        self.push_write(buf, budget)
    }

    /// Apply an operation carried from another thread.
    pub fn apply(&mut self, op: ConnOp, budget: &mut WriteBudget, now: u32) {
        // A refused operation from another thread has no caller left to
        // tell; its buffer is simply dropped back to the pool.
        let _ = match op {
            ConnOp::Write(buf) => match self.apply_write(buf, budget) {
                // No caller is left to see a refusal, and a refused write
                // from another thread would leave a gap in the stream: the
                // connection is reset, whatever the overflow policy.
                Err(ConnError::WriteQueueFull) => {
                    self.close_for(CloseReason::Limit);
                    self.set_and_publish(ABORT);
                    Ok(())
                }
                other => other,
            },
            ConnOp::Shutdown(how) => self.request_shutdown(how),
            ConnOp::Close => {
                self.request_close();
                Ok(())
            }
            ConnOp::Abort => {
                self.set_and_publish(ABORT);
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
            ConnOp::Timer(after) => {
                self.set_user_timer(after, now);
                Ok(())
            }
            ConnOp::Released => {
                self.handle_gens = self.handle_gens.saturating_sub(1);
                Ok(())
            }
        };
    }
}

/// A connection's frame and user timers, in wheel ticks (0: none): when
/// each is due and, for the user timer, when its entry in the wheel is. A
/// timer moved later keeps its entry, which reschedules itself when it
/// comes (`Core::fire_timers`), so resetting a timer costs no wheel
/// operation. The idle and frame timers only ever move later (their
/// timeout is fixed): the idle timer has exactly one entry from the
/// connection's start (its deadline is `last_active` plus the idle
/// timeout), and a flag (`FRAME_QUEUED`) says whether the frame timer's one
/// entry is in the wheel.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnTimers {
    pub frame_at: u32,
    pub user_at: u32,
    pub user_sched: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufPool;
    use crate::conn::{Conn, ConnEnv};
    use crate::driver::limits::Limits;
    use crate::driver::mailbox::{Command, Mailbox};

    fn apply_all(st: &mut ConnState, mailbox: &Mailbox, budget: &mut WriteBudget) {
        while let Some(cmd) = mailbox.pop() {
            if let Command::Conn { op, .. } = cmd {
                st.apply(op, budget, 0);
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
        let mut budget = WriteBudget::new(Limits::unlimited());
        let mut handle = || {
            let mut conn = Conn {
                st: &mut st,
                env: ConnEnv {
                    pool: &pool,
                    mailbox: &mailbox,
                    budget: &mut budget,
                    now: 0,
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
            st.apply(op, &mut budget, 0);
        }
        assert!(
            st.handles_held(),
            "the second handle's operations are still queued"
        );
        apply_all(&mut st, &mailbox, &mut budget);
        assert!(!st.handles_held());
        assert_eq!(st.wq_bytes, 5);
    }
}
