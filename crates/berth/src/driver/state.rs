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
use crate::driver::mailbox::ConnOp;

/// The connection's flags: what the handler asked for, what the peer did,
/// and what the engine is doing.
pub(crate) mod flags {
    /// The handler paused reading.
    pub const USER_PAUSED: u16 = 1 << 0;
    /// The engine is reading (asked with `start_read`).
    pub const READING: u16 = 1 << 1;
    /// A write is in flight in the engine.
    pub const WRITING: u16 = 1 << 2;
    /// The peer ended its stream.
    pub const PEER_EOF: u16 = 1 << 3;
    /// `client_closed` was called.
    pub const EOF_NOTIFIED: u16 = 1 << 4;
    /// `shutdown(Read)` waits for the write queue to empty.
    pub const SHUT_RD_PENDING: u16 = 1 << 5;
    /// `shutdown(Write)` waits for the write queue to empty.
    pub const SHUT_WR_PENDING: u16 = 1 << 6;
    pub const READ_SHUT: u16 = 1 << 7;
    pub const WRITE_SHUT: u16 = 1 << 8;
    /// A graceful close waits for the write queue to empty.
    pub const CLOSE_PENDING: u16 = 1 << 9;
    /// Close abortively at the next reconciliation.
    pub const ABORT: u16 = 1 << 10;
    /// `closing` had its one chance.
    pub const CLOSING_CALLED: u16 = 1 << 11;
    /// `closing` returned `Handled`: a handle closes the connection.
    pub const HANDED_OFF: u16 = 1 << 12;
    /// The server is shutting down.
    pub const STOPPING: u16 = 1 << 13;
    /// The engine is closing the connection; nothing else happens to it.
    pub const RELEASING: u16 = 1 << 14;
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
    /// The part of the queue's head already written by partial writes,
    /// rejoined with the rest when the head completes, so that
    /// `write_completed` gets the whole buffer.
    pub wq_sent: Option<IoBuf>,
    /// Data received while reading was paused, delivered on resume.
    pub stash: VecDeque<IoBuf>,
    pub flags: u16,
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
            wq_sent: None,
            stash: VecDeque::new(),
            flags: 0,
            handle_gens: 0,
            shared: None,
        }
    }

    /// Reuse a pooled connection object for a new connection, keeping the
    /// queues' capacity.
    pub fn reset(&mut self, id: ConnId, key: Key, peer: SocketAddr) {
        debug_assert!(self.wq.is_empty() && self.wq_sent.is_none() && self.stash.is_empty());
        self.id = id;
        self.key = key;
        self.peer = peer;
        self.wq_bytes = 0;
        self.flags = 0;
        self.handle_gens = 0;
        self.shared = None;
    }

    #[inline]
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub fn set(&mut self, f: u16) {
        self.flags |= f;
    }

    #[inline]
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

    /// Which sides are still connected.
    pub fn sides(&self) -> Sides {
        if self.has(RELEASING) {
            return Sides::CLOSED;
        }
        let closing = self.is_closing();
        let read = !closing && !self.has(PEER_EOF | SHUT_RD_PENDING | READ_SHUT);
        let write = !closing && !self.has(SHUT_WR_PENDING | WRITE_SHUT);
        Sides::open(read, write)
    }

    /// Tell the handles (if any) which sides are connected. Called where
    /// a side closes; a connection without handles pays one branch.
    pub fn publish(&self) {
        if let Some(shared) = &self.shared {
            shared.publish(self.sides());
        }
    }

    /// Mark a flag that closes a side, and tell the handles.
    pub fn set_and_publish(&mut self, f: u16) {
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
        self.set_and_publish(match how {
            Shutdown::Read => SHUT_RD_PENDING,
            Shutdown::Write => SHUT_WR_PENDING,
            Shutdown::Both => SHUT_RD_PENDING | SHUT_WR_PENDING,
        });
        Ok(())
    }

    /// A graceful close, once every queued write has completed.
    pub fn request_close(&mut self) {
        self.set_and_publish(CLOSE_PENDING);
    }

    /// Apply an operation carried from another thread.
    pub fn apply(&mut self, op: ConnOp) {
        // A refused operation from another thread has no caller left to
        // tell; its buffer is simply dropped back to the pool.
        let _ = match op {
            ConnOp::Write(buf) => self.push_write(buf),
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
            ConnOp::Released => {
                self.handle_gens = self.handle_gens.saturating_sub(1);
                Ok(())
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufPool;
    use crate::conn::{Conn, ConnEnv};
    use crate::driver::mailbox::{Command, Mailbox};

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
