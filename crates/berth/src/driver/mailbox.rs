//! The cross-thread command queue of one IO thread (the seed's
//! `PostQueuedCompletionStatus` marshalling).
//!
//! Any thread pushes a [`Command`]; the IO thread drains the queue in FIFO
//! order. A push wakes the IO thread through an eventfd only when it is not
//! already due to drain, so a burst of commands costs one wake-up.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::buffer::IoBuf;
use crate::conn::Shutdown;
use crate::driver::key::Key;
#[cfg(not(loom))]
use crate::engine::sys::EventFd as Wake;
use crate::sync::SegQueue;
#[cfg(loom)]
use crate::sync::Wake;
use crate::sync::atomic::{AtomicBool, Ordering};

/// An operation on one connection, carried to its IO thread.
#[derive(Debug)]
pub(crate) enum ConnOp {
    Write(IoBuf),
    Shutdown(Shutdown),
    Close,
    Abort,
    PauseRead,
    ResumeRead,
    /// Set (`Some`) or cancel the connection's own timer.
    Timer(Option<std::time::Duration>),
    /// The last [`ConnHandle`](crate::ConnHandle) was dropped.
    Released,
}

/// Work for an IO thread.
#[derive(Debug)]
pub(crate) enum Command {
    Conn {
        key: Key,
        op: ConnOp,
    },
    /// A connection accepted by another IO thread, handed to this one.
    Adopt {
        stream: TcpStream,
        peer: SocketAddr,
    },
    /// Open an outbound connection.
    Connect {
        addr: SocketAddr,
        /// The local address to bind first, if the caller chose one.
        local: Option<SocketAddr>,
        timeout: Duration,
    },
    PauseAccept,
    ResumeAccept,
    /// Graceful shutdown; connections still open at `deadline` are aborted.
    Stop {
        deadline: Instant,
    },
    /// A later shutdown call: bring the `Stop` deadline forward to
    /// `deadline` if that is earlier (now, or when the `Stop` arrives).
    Hurry {
        deadline: Instant,
    },
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("queued", &self.queue.len())
            .finish()
    }
}

pub(crate) struct Mailbox {
    queue: SegQueue<Command>,
    /// True while a wake-up is pending (the IO thread will drain the queue).
    notified: AtomicBool,
    /// The eventfd (under loom, its model).
    wake: Wake,
}

impl Mailbox {
    pub fn new(nonblocking_wake: bool) -> std::io::Result<Self> {
        Ok(Mailbox {
            queue: SegQueue::new(),
            notified: AtomicBool::new(false),
            wake: Wake::new(nonblocking_wake)?,
        })
    }

    pub fn push(&self, cmd: Command) {
        self.queue.push(cmd);
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.wake.notify();
        }
    }

    /// Called by the IO thread before draining: later pushes wake it again.
    ///
    /// A read-modify-write, not a store: a push that finds `notified`
    /// already set (and so writes no eventfd) counts on this drain to see
    /// its command. Reading the `true` that push's swap left (or a later
    /// one), the swap here synchronizes with it, so everything pushed
    /// before it is visible to the pops that follow. A plain store, even
    /// `SeqCst`, does not synchronize with the push's (`AcqRel`) swap, and
    /// the memory model then lets the queue's emptiness check read a stale
    /// tail: store buffering, and a lost wake-up. (x86 and ARMv8 do not
    /// reorder that way; on x86 the store and the swap are the same `xchg`.)
    fn rearm(&self) {
        self.notified.swap(false, Ordering::AcqRel);
    }

    /// The IO thread's drain when woken: rearm, then apply every command
    /// queued, in order (the loom model checks run this same code).
    #[inline]
    pub fn drain(&self, mut apply: impl FnMut(Command)) {
        self.rearm();
        while let Some(cmd) = self.pop() {
            apply(cmd);
        }
    }

    pub fn pop(&self) -> Option<Command> {
        self.queue.pop()
    }

    pub fn eventfd(&self) -> &Wake {
        &self.wake
    }
}
