//! The [`Handler`] trait: the seed's virtual functions as callbacks.

use std::io;
use std::net::SocketAddr;

use crate::buffer::IoBuf;
use crate::conn::{Conn, ConnId};
use crate::engine::EngineKind;

/// What the handler decided in [`Handler::closing`].
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

/// Lifecycle callbacks for the connections of a server.
///
/// Only [`Handler::read_completed`] is required. Every callback runs on the
/// connection's IO thread, one at a time per connection, in the order the
/// events happened; keep them short (hand long work to a worker pool).
/// `state` is the connection's own [`Handler::State`], created with
/// `Default` when the connection is established and dropped when it closes.
pub trait Handler: Send + Sync + 'static {
    /// Per-connection user state, owned by the connection.
    type State: Default + Send + 'static;

    /// A connection was accepted (the seed's `OnConnectionEstablished`).
    /// Reading starts when this returns, unless the handler paused it; a
    /// welcome message can be written here.
    fn connection_established(
        &self,
        conn: &mut Conn<'_>,
        state: &mut Self::State,
        peer: SocketAddr,
    ) {
        let _ = (conn, state, peer);
    }

    /// Data arrived (the seed's `ReadCompleted`). Never called with an empty buffer.
    fn read_completed(&self, conn: &mut Conn<'_>, state: &mut Self::State, buf: IoBuf);

    /// A write finished: every byte of `buf` was handed to the kernel.
    /// Writes of adjacent slices of one buffer (frames cut from one read)
    /// are sent, and reported here, as one buffer.
    fn write_completed(&self, conn: &mut Conn<'_>, state: &mut Self::State, buf: IoBuf) {
        let _ = (conn, state, buf);
    }

    /// The peer shut down its sending side (the seed's
    /// `OnConnectionClientClose`). Called exactly once, after every byte the
    /// peer sent was delivered; the server may keep writing.
    fn client_closed(&self, conn: &mut Conn<'_>, state: &mut Self::State) {
        let _ = (conn, state);
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
}
