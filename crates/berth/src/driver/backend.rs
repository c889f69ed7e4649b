//! The engine contract, per connection: what the core asks of an engine
//! ([`Backend`]), and the guarantees the core gives in return, on which
//! the engines' `unsafe` code relies. The loop-level half of the contract
//! (wait for events, dispatch them) is [`Engine`](crate::driver::event_loop::Engine).

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::os::fd::RawFd;

use crate::buffer::IoBuf;
use crate::driver::key::Key;

/// How a connection's socket is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseMode {
    /// A normal close: the peer sees end-of-file.
    Graceful,
    /// Linger 0: the peer sees a reset.
    Abortive,
}

/// What the core asks of an engine for one connection. The engine's own
/// per-connection state ([`Backend::Io`], which owns the socket) lives
/// beside the core's in the connection table.
///
/// # What the engine promises
///
/// - After `start_read`, data goes to `Core::on_data` (never empty), end of
///   stream to `Core::on_eof` and failures to `Core::on_read_error`, until
///   `stop_read`; data already in flight when `stop_read` is called may
///   still arrive (the core keeps it in order).
/// - `start_write` writes from the front of `queue`, skipping the first
///   `sent` bytes of its head (written by earlier partial writes), and
///   reports the bytes written, either at once (`Some`) or later through
///   `Core::on_write`; at most one write is in flight per connection.
/// - `close` ends every operation of the connection. It returns `true`
///   when the connection is released at once, otherwise the engine calls
///   `Core::released` later, exactly once, after the final completion of
///   the connection's last operation.
/// - Every event it reports carries the [`Key`] the operation was started
///   with; the core drops events whose generation is stale.
///
/// # What the core promises (the engines' `unsafe` code relies on it)
///
/// 1. **Stable addresses.** A connection's `Io` lives in a boxed table
///    entry that is neither moved nor dropped from `adopt_io` until
///    `Core::released`; so memory inside it (io_uring's iovecs and msghdr)
///    may be handed to the kernel by an operation still in flight.
/// 2. **The write queue's head is not touched mid-send.** From
///    `start_write` until that write is reported, the core neither pops,
///    shortens, advances nor drops any buffer of `queue`, and calls
///    `start_write` for that connection again only after the report. It
///    may append to the queue; appending may grow the last buffer's view
///    over the bytes that follow it in the same block
///    ([`IoBuf::try_append`]), which leaves the bytes already handed to the
///    kernel in place and alive.
/// 3. **Buffers outlive their operations.** Queued buffers are released
///    only in `Core::released`, so a send cancelled by an abortive close
///    still points at live memory until its completion arrives.
/// 4. **No calls after release.** After `close` the core calls no method
///    for that key except `release` (once, with the `Io` it gives back);
///    `close` is called at most once per connection.
/// 5. **Keys are unique while live.** A slot's generation changes when it
///    is freed, so the `(index, generation)` an engine encodes in an
///    operation never names the slot's next connection.
pub(crate) trait Backend {
    /// Per-connection engine state, including the socket.
    type Io;
    /// Whether the engine's sockets are in non-blocking mode. Its accept
    /// creates them that way (no extra system call per connection); only
    /// outbound sockets are switched before [`Backend::adopt_io`].
    const NONBLOCKING: bool;
    /// Buffers a connection may keep receiving into its stash while its
    /// reads are held back because its write queue is above the high
    /// watermark, before the engine is asked to stop reading. A completion
    /// engine, whose stop and restart cost a cancel and a re-armed
    /// receive, keeps reading through a short hold; a readiness engine,
    /// for which stopping is free, stops at once (0).
    const PAUSE_SLACK: usize;
    /// Wrap a freshly accepted or connected socket, already in the
    /// [`Backend::NONBLOCKING`] mode.
    fn adopt_io(&mut self, stream: TcpStream) -> io::Result<Self::Io>;
    /// The connection now has a key (register it with the engine if needed).
    fn attach(&mut self, key: Key, io: &mut Self::Io);
    /// Deliver data until `stop_read`.
    fn start_read(&mut self, key: Key, io: &mut Self::Io);
    /// Stop delivering data (what is in flight may still arrive).
    fn stop_read(&mut self, key: Key, io: &mut Self::Io);
    /// Write from the front of `queue`, after the head's first `sent`
    /// bytes (always fewer than the head holds); `Some` if done at once.
    fn start_write(
        &mut self,
        key: Key,
        io: &mut Self::Io,
        queue: &VecDeque<IoBuf>,
        sent: usize,
    ) -> Option<io::Result<usize>>;
    /// Shut down one or both directions of the socket now.
    fn shutdown(&mut self, io: &mut Self::Io, how: std::net::Shutdown) -> io::Result<()>;
    /// End every operation of the connection; `true` if released at once.
    fn close(&mut self, key: Key, io: &mut Self::Io, mode: CloseMode) -> bool;
    /// Dispose of a released connection's engine state, closing its socket.
    /// Dropping it closes the socket at once; an engine may instead batch
    /// the close with its other submissions.
    fn release(&mut self, io: Self::Io) {
        drop(io);
    }
    /// Report (to the thread's connector) when the connecting socket `fd`
    /// becomes writable.
    fn watch_connect(&mut self, key: Key, fd: RawFd);
    /// Stop watching; `true` if finished at once, otherwise the engine
    /// reports the end of the watch to the connector later.
    fn unwatch_connect(&mut self, key: Key, fd: RawFd) -> bool;
}
