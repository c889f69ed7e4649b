//! The [`Handler`] trait: the seed's virtual functions as callbacks, on raw
//! buffers. The callbacks it shares with [`FrameHandler`](crate::FrameHandler)
//! are in [`Lifecycle`].

use std::net::SocketAddr;

use crate::buffer::IoBuf;
use crate::conn::Conn;
use crate::lifecycle::Lifecycle;

/// Callbacks for the connections of a server, on raw buffers.
///
/// Only [`Handler::read_completed`] is required (with the state type, in
/// [`Lifecycle`]). Every callback runs on the connection's IO thread, one at
/// a time per connection, in the order the events happened; keep them short
/// (hand long work to a worker pool). `state` is the connection's own
/// [`Lifecycle::State`].
pub trait Handler: Lifecycle {
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

    /// The peer shut down its sending side (the seed's
    /// `OnConnectionClientClose`). Called exactly once, after every byte the
    /// peer sent was delivered; the server may keep writing.
    fn client_closed(&self, conn: &mut Conn<'_>, state: &mut Self::State) {
        let _ = (conn, state);
    }
}
