//! [`Lifecycle`]: the callbacks every kind of handler shares — a
//! connection's end, its writes, outbound connects that failed, and server
//! events — with the per-connection state type. [`Handler`] (raw buffers)
//! and [`FrameHandler`] (whole frames) both build on it, so a framed
//! handler gets every one of them without a copied list.
//!
//! [`Handler`]: crate::Handler
//! [`FrameHandler`]: crate::FrameHandler

use std::io;
use std::net::SocketAddr;

use crate::buffer::IoBuf;
use crate::conn::{Conn, ConnId};
use crate::engine::EngineKind;

/// What the handler decided in [`Lifecycle::closing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Closing {
    /// The server closes the connection (a normal close: queued data is
    /// already written, the peer sees end-of-file).
    #[default]
    Default,
    /// The handler takes over: it keeps a [`ConnHandle`](crate::ConnHandle)
    /// and closes the connection later (for example a lingering close). If
    /// it keeps no handle, or drops every handle without closing, the
    /// connection is closed abortively, without further notification.
    Handled,
}

/// Which timer ran out, in [`Lifecycle::timed_out`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// No byte moved either way for the idle timeout
    /// ([`ServerBuilder::idle_timeout`](crate::ServerBuilder::idle_timeout)).
    Idle,
    /// A frame (or line) was begun and not finished within the frame
    /// timeout ([`ServerBuilder::frame_timeout`](crate::ServerBuilder::frame_timeout)):
    /// a peer dribbling bytes cannot hold the connection past it.
    Frame,
    /// The handler's own timer ([`Conn::set_timer`](crate::Conn::set_timer)).
    User,
}

/// Why a new connection was refused before it reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The server holds its maximum of connections
    /// ([`ServerBuilder::max_connections`](crate::ServerBuilder::max_connections)).
    MaxConnections,
    /// The peer's address holds its maximum
    /// ([`ServerBuilder::max_connections_per_ip`](crate::ServerBuilder::max_connections_per_ip)).
    MaxConnectionsPerIp,
}

/// Server-level notifications, meant for counters and logs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ServerEvent<'a> {
    /// The server is listening on `addr` using `engine`.
    Started {
        /// The listening address.
        addr: SocketAddr,
        /// The IO engine in use.
        engine: EngineKind,
    },
    /// Every IO thread has stopped.
    Stopped,
    /// Accepting is paused: new connections wait in the kernel backlog.
    AcceptingPaused,
    /// Accepting resumed.
    AcceptingResumed,
    /// Accepting backs off because descriptors ran out (EMFILE/ENFILE).
    AcceptBackoff {
        /// The error the kernel returned.
        error: &'a io::Error,
    },
    /// A connection was refused because of a limit, and closed at once.
    ConnectionRefused {
        /// The peer's address.
        peer: SocketAddr,
        /// Which limit.
        reason: Refusal,
    },
    /// A connection was accepted.
    ConnectionOpened {
        /// The connection.
        id: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// A connection's resources were released. Its socket is closed: at
    /// once on epoll; on io_uring by a close that goes out with the thread's
    /// next submission, so the descriptor may still be open for a moment
    /// after this event.
    ConnectionClosed {
        /// The connection.
        id: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
}

/// The callbacks and state every handler has, whatever it receives.
///
/// Every method has a default; a handler that needs none of them still
/// names its state here:
///
/// ```
/// struct Echo;
/// impl berth::Lifecycle for Echo {
///     type State = ();
/// }
/// ```
///
/// Every callback runs under the server's panic guard: a panic in a
/// connection's callback aborts that connection only, a panic in
/// [`Lifecycle::connect_failed`] or [`Lifecycle::server_event`] is logged,
/// and the server keeps serving.
pub trait Lifecycle: Send + Sync + 'static {
    /// Per-connection user state, owned by the connection: created with
    /// `Default` when the connection is established, dropped when it closes.
    type State: Default + Send + 'static;

    /// A write finished: every byte of `buf` was handed to the kernel.
    /// Writes of adjacent slices of one buffer (frames cut from one read)
    /// are sent, and reported here, as one buffer.
    fn write_completed(&self, conn: &mut Conn<'_>, state: &mut Self::State, buf: IoBuf) {
        let _ = (conn, state, buf);
    }

    /// The connection has nothing left to do: the read side is finished,
    /// every write has completed and no [`ConnHandle`](crate::ConnHandle)
    /// is held (or the server is shutting down). Not called when the server
    /// closed the connection explicitly. Return [`Closing::Handled`] to take
    /// over closing.
    fn closing(&self, conn: &mut Conn<'_>, state: &mut Self::State) -> Closing {
        let _ = (conn, state);
        Closing::Default
    }

    /// The peer reset the connection. It is then closed abortively.
    fn connection_reset(&self, conn: &mut Conn<'_>, state: &mut Self::State, err: &io::Error) {
        let _ = (conn, state, err);
    }

    /// A read or write failed with `err`. The connection is then closed abortively.
    fn connection_error(&self, conn: &mut Conn<'_>, state: &mut Self::State, err: &io::Error) {
        let _ = (conn, state, err);
    }

    /// An outbound connection ([`ServerHandle::connect`]) could not be made:
    /// refused, unreachable, or not established within its timeout.
    ///
    /// [`ServerHandle::connect`]: crate::ServerHandle::connect
    fn connect_failed(&self, addr: SocketAddr, err: &io::Error) {
        let _ = (addr, err);
    }

    /// A server-level notification. Called from whichever thread saw the event.
    fn server_event(&self, event: ServerEvent<'_>) {
        let _ = event;
    }

    /// The connection's queue went above the high watermark (`writable`
    /// false) or fell back to the low one (`writable` true): Netty's
    /// `channelWritabilityChanged`. With
    /// [`Lifecycle::PAUSE_READ_WHEN_UNWRITABLE`] (the default) the server
    /// has also stopped, or resumed, delivering reads.
    fn writability_changed(&self, conn: &mut Conn<'_>, state: &mut Self::State, writable: bool) {
        let _ = (conn, state, writable);
    }

    /// A timer of the connection ran out. The default closes the
    /// connection (gracefully; if it is still open when the idle timeout
    /// runs out again, it is reset).
    fn timed_out(&self, conn: &mut Conn<'_>, state: &mut Self::State, which: Timeout) {
        let _ = (state, which);
        conn.close();
    }

    /// A connection from `peer` is refused because of a limit; the bytes
    /// returned are sent to it before it is closed (a one-line refusal,
    /// such as POP3's `-ERR`). Keep them short: they are sent once,
    /// without waiting. The default sends nothing.
    fn refusal(&self, peer: SocketAddr, reason: Refusal) -> Option<Vec<u8>> {
        let _ = (peer, reason);
        None
    }

    /// Stop delivering reads while the connection is not writable, and
    /// resume when it is again, so a peer that sends without reading what
    /// it is sent cannot make the server queue without bound. On by
    /// default; a handler whose replies do not follow its input (a relay
    /// that writes elsewhere, a broadcaster) may turn it off.
    const PAUSE_READ_WHEN_UNWRITABLE: bool = true;
}
