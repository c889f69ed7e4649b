//! The POP3 server's [`FrameHandler`]: CRLF lines in, each command a job
//! on the worker pool.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::{
    FrameErrorAction, FrameHandler, FramedConn, IoBuf, Lifecycle, ServerEvent, WorkerPool,
};

use super::LOG_TARGET;
use super::autologout::Janitor;
use super::conn::{ConnState, Pop3Conn, respond};
use crate::{Reply, Session, Shared};

/// The longest command line, CRLF included (RFC 2449 section 4).
pub const MAX_LINE: usize = crate::command::MAX_LINE_LEN;

/// The POP3 server as a berth [`FrameHandler`]; start it wrapped in a
/// [`berth::Framed`]. Built by
/// [`Pop3ServerBuilder::build`](super::Pop3ServerBuilder::build), which
/// also starts its worker pool and autologout timer.
///
/// The IO threads only frame CRLF lines (at most [`MAX_LINE`] octets) and
/// write the greeting; every command runs on the worker pool, one at a
/// time and in order per connection. Dropping the handler (with the server
/// that runs it) stops the autologout timer.
pub struct Pop3Handler {
    shared: Arc<Shared>,
    pool: WorkerPool,
    janitor: Janitor,
}

impl Pop3Handler {
    /// A handler serving `shared` on `pool`, logging out sessions idle for
    /// longer than `idle`. Fails if the autologout thread cannot start.
    pub(super) fn new(shared: Arc<Shared>, pool: WorkerPool, idle: Duration) -> io::Result<Self> {
        Ok(Pop3Handler {
            shared,
            pool,
            janitor: Janitor::start(idle)?,
        })
    }

    /// The state every session shares: the configuration and the mailbox
    /// locks.
    #[must_use]
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The worker pool the commands run on.
    #[must_use]
    pub fn worker_pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// Queue `command` for the connection; it runs on a worker, after every
    /// command queued before it.
    fn submit(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &ConnState,
        command: impl FnOnce(&mut Session) -> Reply + Send + 'static,
    ) {
        let Some(pc) = &st.conn else { return };
        let clock = self.janitor.clock();
        pc.touch(clock.now());
        let weak = Arc::downgrade(pc);
        let submitted = self.pool.submit(conn.conn(), move |handle| {
            respond(&weak, handle, clock, command);
        });
        if submitted.is_err() {
            // The pool is shutting down, so is the server.
            conn.conn().close();
        }
    }
}

impl std::fmt::Debug for Pop3Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Handler")
            .field("config", self.shared.config())
            .finish_non_exhaustive()
    }
}

impl Lifecycle for Pop3Handler {
    type State = ConnState;

    fn server_event(&self, event: ServerEvent<'_>) {
        // A reset, an abort or the server's shutdown closes the connection
        // while the janitor still holds a handle.
        if let ServerEvent::ConnectionClosed { id, .. } = event {
            self.janitor.unwatch(id);
        }
    }
}

impl FrameHandler for Pop3Handler {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Crlf)
            .max_line_length(MAX_LINE)
            .build()
    }

    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &mut ConnState,
        _peer: SocketAddr,
    ) {
        // Creating the session and its greeting does no IO.
        let mut session = Session::new(Arc::clone(&self.shared));
        let _ = conn.conn().write(&session.greeting());
        let pc = Arc::new(Pop3Conn::new(session, self.janitor.clock().now()));
        self.janitor.watch(conn.handle(), &pc);
        st.conn = Some(pc);
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, st: &mut ConnState, line: IoBuf) {
        self.submit(conn, st, move |session| session.handle_line(&line));
    }

    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &mut ConnState,
        error: &FrameError,
    ) -> FrameErrorAction {
        if let FrameError::TooLong { .. } = error {
            // Answered through the pool too, so that the reply keeps its
            // place among pipelined commands. The codec skips the rest of
            // the line.
            self.submit(conn, st, Session::line_too_long);
            FrameErrorAction::Continue
        } else {
            // A last line without CRLF before the client closed: nothing to
            // answer.
            tracing::debug!(target: LOG_TARGET, conn = %conn.id(), %error,
                "incomplete POP3 command at end of stream");
            FrameErrorAction::Shutdown
        }
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut ConnState) {
        // Stop watching (drops the janitor's handle), so the connection
        // closes once the queued commands are answered.
        self.janitor.unwatch(conn.id());
    }
}
