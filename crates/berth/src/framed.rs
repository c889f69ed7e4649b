//! The framed layer: a handler that receives whole frames and writes frames.
//!
//! Implement [`FrameHandler`] (only [`FrameHandler::frame`] is required) and
//! start the server with [`Framed::new`]. Bytes read are accumulated in an
//! [`InBuf`] and cut into frames by the handler's [`Decoder`]; frames written
//! through [`FramedConn::send`] are encoded by the same codec into pooled
//! buffers. A frame that fits in one read buffer reaches the handler without
//! a copy.
//!
//! A malformed or oversized frame reaches [`FrameHandler::frame_error`] as
//! the codec's typed error. By default the connection is then shut down for
//! writing once its queued writes are done, everything the peer sends
//! afterwards is discarded, and the connection closes when the peer closes —
//! the seed's "shut down the socket, throw away the garbage, and wait for
//! the client to go away". No other connection is affected. A partial frame
//! left when the peer ends its stream is reported the same way, but then
//! only discarded: the peer has stopped sending, and replies still being
//! produced for its earlier frames are written as usual.

use std::io;
use std::net::SocketAddr;

use crate::buffer::IoBuf;
use crate::codec::{Decoder, EncodeBuf, Encoder, InBuf};
use crate::conn::{Conn, ConnError, ConnHandle, ConnId, Shutdown};
use crate::handler::Handler;
use crate::lifecycle::{Closing, Lifecycle, Refusal, ServerEvent, Timeout};

/// What to do after a frame error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameErrorAction {
    /// Shut down writing after the queued writes, discard all further input,
    /// and close when the peer closes.
    #[default]
    Shutdown,
    /// Keep decoding (for codecs that recover, such as the line codec,
    /// which skips to the next terminator). If the codec makes no progress,
    /// the connection is shut down as with [`FrameErrorAction::Shutdown`].
    Continue,
    /// Reset the connection at once.
    Abort,
}

/// Why a frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError<E: std::error::Error + 'static> {
    /// The encoder refused the item (nothing was written).
    #[error("cannot encode frame: {0}")]
    Encode(#[source] E),
    /// The connection refused the write.
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// A connection seen from a [`FrameHandler`] callback: the plain [`Conn`]
/// operations plus [`FramedConn::send`].
pub struct FramedConn<'a, 'c, C> {
    conn: &'a mut Conn<'c>,
    codec: &'a mut C,
    out: &'a mut EncodeBuf,
}

impl<'c, C> FramedConn<'_, 'c, C> {
    /// Encode `item` and queue it for writing.
    pub fn send<I>(&mut self, item: I) -> Result<(), SendError<<C as Encoder<I>>::Error>>
    where
        C: Encoder<I>,
    {
        self.codec
            .encode(item, self.out)
            .map_err(SendError::Encode)?;
        let mut result = Ok(());
        let conn = &mut *self.conn;
        self.out.drain(|buf| {
            if result.is_ok() {
                result = conn.write_buf(buf);
            }
        });
        Ok(result?)
    }

    /// The connection's codec.
    pub fn codec(&self) -> &C {
        self.codec
    }

    /// The underlying connection (write raw bytes, pause reading, close...).
    pub fn conn(&mut self) -> &mut Conn<'c> {
        self.conn
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.conn.id()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.conn.peer_addr()
    }

    /// A handle for other threads (see [`ConnHandle`]).
    pub fn handle(&mut self) -> ConnHandle {
        self.conn.handle()
    }
}

/// Whole frames that arrived back to back, delivered as one buffer to a
/// handler that opts in with [`FrameHandler::FRAME_RUNS`].
#[derive(Debug)]
pub struct FrameRun {
    bytes: IoBuf,
    count: usize,
}

impl FrameRun {
    /// The frames' bytes, in order, exactly as received.
    pub fn bytes(&self) -> &IoBuf {
        &self.bytes
    }

    /// The frames' bytes as one buffer (to write back without a copy, say).
    pub fn into_bytes(self) -> IoBuf {
        self.bytes
    }

    /// How many frames the run holds (at least two).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Each frame's bytes, borrowed: no reference counting per frame.
    /// `codec` is the connection's ([`FramedConn::codec`]) or one
    /// configured like it; the walk stops where `codec` sees no whole frame.
    pub fn frames<'a, D: Decoder>(&'a self, codec: &'a D) -> impl Iterator<Item = &'a [u8]> {
        whole_frames(codec, &self.bytes)
    }
}

/// The whole frames at the start of `bytes`, as `codec` sees them; stops at
/// the first byte that does not start one (or at a codec answer out of range).
fn whole_frames<'a, D: Decoder>(codec: &'a D, bytes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let n = codec
            .whole_frame_len(rest)
            .filter(|&n| n > 0 && n <= rest.len())?;
        let (frame, tail) = rest.split_at(n);
        rest = tail;
        Some(frame)
    })
}

/// Callbacks of a framed server. Like [`Handler`], with frames instead of
/// raw buffers; only [`FrameHandler::frame`] and [`FrameHandler::codec`]
/// are required. The state type and the callbacks that do not depend on
/// framing (`write_completed`, `closing`, `connection_reset`,
/// `connection_error`, `connect_failed`, `server_event`) come from
/// [`Lifecycle`], exactly as for a [`Handler`].
pub trait FrameHandler: Lifecycle {
    /// The codec, one per connection.
    type Codec: Decoder + Send + 'static;

    /// A codec for a new connection.
    fn codec(&self) -> Self::Codec;

    /// A connection was accepted.
    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, Self::Codec>,
        state: &mut Self::State,
        peer: SocketAddr,
    ) {
        let _ = (conn, state, peer);
    }

    /// A whole frame arrived.
    fn frame(
        &self,
        conn: &mut FramedConn<'_, '_, Self::Codec>,
        state: &mut Self::State,
        frame: <Self::Codec as Decoder>::Item,
    );

    /// Deliver frames that arrived back to back to
    /// [`FrameHandler::frame_run`], as one buffer, instead of one at a time
    /// to [`FrameHandler::frame`]. Only codecs whose items are exactly their
    /// input bytes form runs (see [`Decoder::whole_frame_len`]); other frames
    /// still reach `frame`. For handlers that treat many small frames
    /// alike, such as an echo or a relay: one call and one buffer per run
    /// instead of per frame. Override [`FrameHandler::frame_run`] too:
    /// its default only cuts the run up again, which costs more than
    /// leaving runs off.
    const FRAME_RUNS: bool = false;

    /// A run of at least two whole frames arrived (only with
    /// [`FrameHandler::FRAME_RUNS`]). The default cuts the run into frames
    /// with the codec and calls [`FrameHandler::frame`] for each.
    fn frame_run(
        &self,
        conn: &mut FramedConn<'_, '_, Self::Codec>,
        state: &mut Self::State,
        run: FrameRun,
    ) {
        let mut input = InBuf::new();
        input.push(run.into_bytes());
        while !input.is_empty() {
            match conn.codec.decode(&mut input) {
                Ok(Some(frame)) => self.frame(conn, state, frame),
                // A codec bug: `whole_frame_len` promised frames that
                // `decode` does not cut. Stop this connection, loudly.
                other => {
                    let error = other.err().map(|e| e.to_string());
                    tracing::error!(conn = %conn.id(), ?error, left = input.len(), "codec's whole_frame_len and decode disagree; resetting the connection");
                    conn.conn().abort();
                    return;
                }
            }
        }
    }

    /// The input could not be framed. The default logs the error (at debug,
    /// as a connection event) and shuts the connection down
    /// ([`FrameErrorAction::Shutdown`]).
    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, Self::Codec>,
        state: &mut Self::State,
        error: &<Self::Codec as Decoder>::Error,
    ) -> FrameErrorAction {
        let _ = state;
        tracing::debug!(conn = %conn.id(), peer = %conn.peer_addr(), %error, "bad frame; shutting the connection down");
        FrameErrorAction::Shutdown
    }

    /// Every frame that one received buffer completed has been delivered
    /// (to [`FrameHandler::frame`], [`FrameHandler::frame_run`] or
    /// [`FrameHandler::frame_error`]). Called once after each read, even if
    /// it completed no frame, and after the frames delivered at the end of
    /// the stream, before [`FrameHandler::client_closed`]. A handler that
    /// answers the frames of one read together (pipelined requests: one
    /// job and one write for all of them) collects them in its state in
    /// `frame` and acts on them here. The default does nothing.
    fn frames_done(&self, conn: &mut FramedConn<'_, '_, Self::Codec>, state: &mut Self::State) {
        let _ = (conn, state);
    }

    /// The peer shut down its sending side, after every complete frame was
    /// delivered (a trailing partial frame was reported to `frame_error`).
    fn client_closed(&self, conn: &mut FramedConn<'_, '_, Self::Codec>, state: &mut Self::State) {
        let _ = (conn, state);
    }
}

/// Adapts a [`FrameHandler`] into a [`Handler`].
#[derive(Debug)]
pub struct Framed<F>(pub F);

impl<F> Framed<F> {
    /// Wrap `handler`.
    pub fn new(handler: F) -> Self {
        Framed(handler)
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &F {
        &self.0
    }
}

/// Per-connection state of a [`Framed`] server.
pub struct FramedState<F: FrameHandler> {
    user: F::State,
    input: InBuf,
    /// Created with the connection (it needs the server's pool).
    io: Option<(F::Codec, EncodeBuf)>,
    /// After a frame error: discard all input.
    discarding: bool,
}

impl<F: FrameHandler> Default for FramedState<F> {
    fn default() -> Self {
        FramedState {
            user: F::State::default(),
            input: InBuf::new(),
            io: None,
            discarding: false,
        }
    }
}

impl<F: FrameHandler> Framed<F> {
    /// Run `f` with a `FramedConn`, creating the codec on first use.
    fn with<R>(
        &self,
        conn: &mut Conn<'_>,
        st: &mut FramedState<F>,
        f: impl FnOnce(&F, &mut FramedConn<'_, '_, F::Codec>, &mut F::State, &mut InBuf) -> R,
    ) -> R {
        let (codec, out) = st
            .io
            .get_or_insert_with(|| (self.0.codec(), EncodeBuf::new(conn.pool().clone())));
        let mut fc = FramedConn { conn, codec, out };
        f(&self.0, &mut fc, &mut st.user, &mut st.input)
    }

    /// Decode and deliver every complete frame in the input.
    fn deliver(&self, conn: &mut Conn<'_>, st: &mut FramedState<F>, at_eof: bool) {
        while !st.discarding {
            if F::FRAME_RUNS
                && let Some(run) = Self::cut_run(st)
            {
                self.with(conn, st, |h, fc, user, _| h.frame_run(fc, user, run));
                continue;
            }
            let before = st.input.len();
            let decoded = self.with(conn, st, |_, fc, _, input| {
                if at_eof {
                    fc.codec.decode_eof(input)
                } else {
                    fc.codec.decode(input)
                }
            });
            match decoded {
                Ok(Some(frame)) => self.with(conn, st, |h, fc, user, _| h.frame(fc, user, frame)),
                Ok(None) => return,
                Err(err) => {
                    let action =
                        self.with(conn, st, |h, fc, user, _| h.frame_error(fc, user, &err));
                    let stuck = st.input.len() == before;
                    match action {
                        FrameErrorAction::Continue if !stuck && !at_eof => {}
                        FrameErrorAction::Abort => {
                            conn.abort();
                            self.discard(st);
                        }
                        // At end of stream the peer has stopped sending: only
                        // the partial frame goes. Replies still on their way
                        // (from a worker pool, say) must not be cut off.
                        _ if at_eof => self.discard(st),
                        _ => {
                            let _ = conn.shutdown(Shutdown::Write);
                            self.discard(st);
                        }
                    }
                    if at_eof {
                        return;
                    }
                }
            }
        }
    }

    /// Take the whole frames at the front of the first input chunk, if
    /// there are two or more, as one run (one buffer, no copy).
    fn cut_run(st: &mut FramedState<F>) -> Option<FrameRun> {
        let (codec, _) = st.io.as_ref()?;
        let first = st.input.chunks().next()?;
        let (mut len, mut count) = (0, 0);
        for frame in whole_frames(codec, first) {
            len += frame.len();
            count += 1;
        }
        (count >= 2).then(|| FrameRun {
            bytes: st.input.take(len),
            count,
        })
    }

    fn discard(&self, st: &mut FramedState<F>) {
        st.discarding = true;
        st.input.clear();
    }
}

impl<F: FrameHandler> Handler for Framed<F> {
    fn connection_established(&self, conn: &mut Conn<'_>, st: &mut Self::State, peer: SocketAddr) {
        self.with(conn, st, |h, fc, user, _| {
            h.connection_established(fc, user, peer)
        });
    }

    fn read_completed(&self, conn: &mut Conn<'_>, st: &mut Self::State, buf: IoBuf) {
        if st.discarding {
            return;
        }
        st.input.push(buf);
        self.deliver(conn, st, false);
        self.with(conn, st, |h, fc, user, _| h.frames_done(fc, user));
        // A frame begun and not finished: its deadline runs from its first
        // byte (a frame that completes stops the timer; the next partial
        // frame starts it again).
        if let Some(timeout) = conn.frame_timeout() {
            if st.input.is_empty() || st.discarding {
                conn.stop_frame_timer();
            } else {
                conn.start_frame_timer(timeout);
            }
        }
    }

    fn client_closed(&self, conn: &mut Conn<'_>, st: &mut Self::State) {
        if !st.discarding && !st.input.is_empty() {
            self.deliver(conn, st, true);
            self.with(conn, st, |h, fc, user, _| h.frames_done(fc, user));
        }
        self.with(conn, st, |h, fc, user, _| h.client_closed(fc, user));
    }
}

/// Every lifecycle callback goes to the wrapped handler with its own state.
/// The lint makes a callback added to [`Lifecycle`] a compile error here
/// until it is forwarded too.
#[deny(clippy::missing_trait_methods)]
impl<F: FrameHandler> Lifecycle for Framed<F> {
    type State = FramedState<F>;

    fn write_completed(&self, conn: &mut Conn<'_>, st: &mut Self::State, buf: IoBuf) {
        self.0.write_completed(conn, &mut st.user, buf);
    }

    fn closing(&self, conn: &mut Conn<'_>, st: &mut Self::State) -> Closing {
        self.0.closing(conn, &mut st.user)
    }

    fn connection_reset(&self, conn: &mut Conn<'_>, st: &mut Self::State, err: &io::Error) {
        self.0.connection_reset(conn, &mut st.user, err);
    }

    fn connection_error(&self, conn: &mut Conn<'_>, st: &mut Self::State, err: &io::Error) {
        self.0.connection_error(conn, &mut st.user, err);
    }

    fn connect_failed(&self, addr: SocketAddr, err: &io::Error) {
        self.0.connect_failed(addr, err);
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        self.0.server_event(event);
    }

    fn writability_changed(&self, conn: &mut Conn<'_>, st: &mut Self::State, writable: bool) {
        self.0.writability_changed(conn, &mut st.user, writable);
    }

    fn timed_out(&self, conn: &mut Conn<'_>, st: &mut Self::State, which: Timeout) {
        self.0.timed_out(conn, &mut st.user, which);
    }

    fn refusal(&self, peer: SocketAddr, reason: Refusal) -> Option<Vec<u8>> {
        self.0.refusal(peer, reason)
    }

    const PAUSE_READ_WHEN_UNWRITABLE: bool = F::PAUSE_READ_WHEN_UNWRITABLE;
}
