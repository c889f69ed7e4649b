//! The rules every engine shares (the seed's semantics): what happens to a
//! connection when its engine reports an event, and the *reconciliation*
//! ([`Core::kick`]) that follows every event. It compares what the
//! connection wants (reading or paused, queued writes, a pending shutdown
//! or close) with what the engine is doing and asks the engine, through
//! [`Backend`], to start or stop exactly what differs, running the
//! callbacks that became due. Because every engine is driven by the same
//! reconciliation, the callback rules are identical on all of them.

use std::io;

use crate::buffer::IoBuf;
use crate::driver::backend::{Backend, CloseMode};
use crate::driver::core::{Core, Parts};
use crate::driver::key::Key;
use crate::driver::mailbox::ConnOp;
use crate::driver::state::flags::*;
use crate::driver::stats::{CloseReason, ThreadStats};
use crate::handler::Handler;
use crate::lifecycle::Closing;

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED)
    )
}

impl<H: Handler, I> Core<H, I> {
    /// Data arrived for `key`.
    pub fn on_data<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key, buf: IoBuf) {
        ThreadStats::add(&self.stats.reads, 1);
        let now = self.now;
        let Some(e) = self.entry(key) else { return };
        if e.st
            .has(READ_SHUT | CLOSE_PENDING | ABORT | RELEASING | PEER_EOF | STOPPING)
        {
            // Nobody wants it any more (or the server is draining and reads
            // only to discard): the buffer goes back to the pool.
            return;
        }
        e.st.last_active = now;
        if e.st.has(Self::PAUSED | AWAIT_PROXY) || !e.st.stash.is_empty() {
            if e.st.has(AWAIT_PROXY) {
                return self.proxy_data(be, key, buf);
            }
            if e.st.has(UNWRITABLE) && !e.st.has(USER_PAUSED) {
                // Held back by the write queue: kept compactly.
                e.st.stash_push(buf);
            } else {
                e.st.stash.push_back(buf);
            }
        } else {
            self.deliver(key, buf);
        }
        self.kick(be, key);
    }

    /// Hand `buf` to the handler (counted as delivered).
    #[inline]
    fn deliver(&mut self, key: Key, buf: IoBuf) {
        ThreadStats::add(&self.stats.bytes_read, buf.len() as u64);
        self.call(key, |h, c, s| h.read_completed(c, s, buf));
    }

    pub fn on_eof<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        let Some(e) = self.entry(key) else { return };
        if e.st.has(AWAIT_PROXY) {
            tracing::warn!(conn = %e.st.id, peer = %e.st.peer,
                "connection ended before its PROXY protocol header");
            return self.proxy_failed(be, key);
        }
        e.st.set_and_publish(PEER_EOF);
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
            e.st.close_for(CloseReason::Reset);
            self.call(key, |h, c, s| h.connection_reset(c, s, &err));
        } else {
            e.st.close_for(CloseReason::Error);
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
        let now = self.now;
        let Some(Parts { e, budget, .. }) = self.entry_parts(key) else {
            return;
        };
        e.st.clear(WRITING);
        let mut n = match res {
            Ok(n) => n,
            Err(err) => return self.fail(be, key, err),
        };
        if e.st.has(RELEASING | ABORT) {
            return;
        }
        e.st.unreserve(n, budget);
        e.st.last_active = now;
        ThreadStats::add(&self.stats.bytes_written, n as u64);
        ThreadStats::add(&self.stats.writes, 1);
        loop {
            let Some(e) = self.entry(key) else { return };
            if e.st.has(ABORT) {
                return; // a callback aborted it: the rest is discarded
            }
            let Some(head) = e.st.wq.front() else {
                return;
            };
            let left = head.len() - e.st.head_sent;
            if n < left {
                // Written in part: the next write starts after what was
                // written; the head stays whole for `write_completed`.
                e.st.head_sent += n;
                return;
            }
            n -= left;
            e.st.head_sent = 0;
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
        let now = self.now;
        let Some(Parts { e, budget, wheel }) = self.entry_parts(key) else {
            return;
        };
        if e.st.has(RELEASING) {
            return;
        }
        e.st.apply(op, budget, now);
        if e.st.has(TIMERS_DIRTY) {
            crate::driver::timers::schedule(&mut e.st, key, wheel);
        }
        self.kick(be, key);
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

            // Writability first: the handler may want to hold back.
            if st.has(WRIT_CHANGED) {
                st.clear(WRIT_CHANGED);
                let writable = !st.has(UNWRITABLE);
                self.call(key, |h, c, s| h.writability_changed(c, s, writable));
                continue;
            }

            // Reads: stashed data first, then end-of-stream, then the engine.
            let deliver = !st.has(Self::PAUSED | CLOSE_PENDING | AWAIT_PROXY);
            if deliver && let Some(buf) = st.stash.pop_front() {
                self.deliver(key, buf);
                continue;
            }
            if deliver && st.has(PEER_EOF) && !st.has(EOF_NOTIFIED) {
                st.set(EOF_NOTIFIED);
                self.call(key, |h, c, s| h.client_closed(c, s));
                continue;
            }
            // Held back by the write queue (not the handler), the engine
            // may keep reading into the stash up to its slack: a short
            // pause then costs no cancel and re-arm of the receive.
            let held =
                !deliver && !st.has(USER_PAUSED | CLOSE_PENDING) && st.stash.len() < B::PAUSE_SLACK;
            // Draining, the server keeps reading only to discard, so that
            // its close is a FIN, not a reset for unread bytes (a lingering
            // close, below).
            let draining = st.has(STOPPING) && !st.has(USER_PAUSED);
            let awaiting = st.has(AWAIT_PROXY);
            if awaiting && st.has(STOPPING) {
                st.set(ABORT); // never introduced to the handler: just go
                continue;
            }
            let want_read = (deliver || held || draining || awaiting)
                && !st.has(PEER_EOF | READ_SHUT | SHUT_RD_PENDING);
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
                match be.start_write(key, io, &st.wq, st.head_sent) {
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
                if draining && !st.has(PEER_EOF | READ_SHUT) {
                    // Lingering close while the server drains: the FIN now,
                    // then read and discard until the peer closes (the
                    // close follows its end of stream) or the drain
                    // deadline resets what is left.
                    if !st.has(WRITE_SHUT) {
                        st.clear(SHUT_WR_PENDING);
                        st.set(WRITE_SHUT);
                        if let Err(err) = be.shutdown(io, std::net::Shutdown::Write) {
                            tracing::debug!(conn = %st.id, %err, "shutdown(write) failed");
                        }
                    }
                    return;
                }
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
        e.st.set_and_publish(RELEASING);
        let Some(io) = e.io.as_mut() else { return };
        if be.close(key, io, mode) {
            self.released(be, key);
        }
    }
}
