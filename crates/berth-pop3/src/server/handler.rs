//! The POP3 server's [`FrameHandler`]: CRLF lines in; the lines of each
//! read queued together and run on the worker pool (see `pump.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::{
    Conn, FrameErrorAction, FrameHandler, FramedConn, IoBuf, Lifecycle, ServerEvent, WorkerPool,
};

use super::LOG_TARGET;
use super::autologout::Janitor;
use super::conn::{ConnState, Input, Pop3Conn};
use crate::{Session, Shared};

/// The longest command line, CRLF included (RFC 2449 section 4).
pub const MAX_LINE: usize = crate::command::MAX_LINE_LEN;

/// The POP3 server as a berth [`FrameHandler`]; start it wrapped in a
/// [`berth::Framed`]. Built by
/// [`Pop3ServerBuilder::build`](super::Pop3ServerBuilder::build), which
/// also starts its worker pool and autologout timer.
///
/// The IO threads only frame CRLF lines (at most [`MAX_LINE`] octets) and
/// write the greeting; every command runs on the worker pool, in order per
/// connection, the lines of one read together as one job whose responses
/// go out in as few writes as fit in 64 KiB chunks. Dropping the handler
/// (with the server that runs it) stops the autologout timer.
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

    /// Submit a job that runs the connection's pump (see `pump.rs`).
    fn schedule(&self, conn: &mut Conn<'_>, pc: &Arc<Pop3Conn>) {
        let clock = self.janitor.clock();
        let weak = Arc::downgrade(pc);
        let submitted = self.pool.submit(conn, move |handle| {
            // The connection is gone, and with it the session: nothing to do.
            if let Some(pc) = weak.upgrade() {
                pc.pump(handle, clock);
            }
        });
        if submitted.is_err() {
            // The pool is shutting down, so is the server.
            conn.close();
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

    fn write_completed(&self, conn: &mut Conn<'_>, st: &mut ConnState, _: IoBuf) {
        if let Some(pc) = &st.conn
            && pc.written()
        {
            self.schedule(conn, pc);
        }
    }

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
        // One buffer: one `write_completed`, which the flow counts.
        let _ = conn.conn().write_buf(IoBuf::from(session.greeting()));
        let pc = Arc::new(Pop3Conn::new(session, self.janitor.clock().now()));
        self.janitor.watch(conn.handle(), &pc);
        st.conn = Some(pc);
    }

    fn frame(&self, _: &mut FramedConn<'_, '_, LineCodec>, st: &mut ConnState, line: IoBuf) {
        st.batch.push(Input::Line(line));
    }

    fn frames_done(&self, conn: &mut FramedConn<'_, '_, LineCodec>, st: &mut ConnState) {
        if st.batch.is_empty() {
            return;
        }
        let Some(pc) = &st.conn else {
            st.batch.clear();
            return;
        };
        pc.touch(self.janitor.clock().now());
        let queued = pc.queue(st.batch.drain(..));
        if queued.pause {
            conn.conn().pause_reading();
        }
        if queued.schedule {
            self.schedule(conn.conn(), pc);
        }
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
            st.batch.push(Input::TooLong);
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
