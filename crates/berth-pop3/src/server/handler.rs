//! The POP3 server's [`FrameHandler`]: CRLF lines in; the lines of each
//! read queued together and run on the worker pool (see `pump.rs`); the
//! timeouts on the IO thread (see `timers.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::{
    Conn, FrameErrorAction, FrameHandler, FramedConn, IoBuf, Lifecycle, Timeout, WorkerPool,
};

use super::LOG_TARGET;
use super::conn::{ConnState, Pop3Conn};
use super::flow::Input;
use crate::{Session, Shared};

/// The longest command line, CRLF included (RFC 2449 section 4).
pub const MAX_LINE: usize = crate::command::MAX_LINE_LEN;

/// The POP3 server as a berth [`FrameHandler`]; start it wrapped in a
/// [`berth::Framed`] on a [`berth::ServerBuilder`] passed through
/// [`Pop3Handler::configure`] (which sets the autologout's idle timeout).
/// Built by [`Pop3ServerBuilder::build`](super::Pop3ServerBuilder::build),
/// which also starts its worker pool.
///
/// The IO threads only frame CRLF lines (at most [`MAX_LINE`] octets),
/// write the greeting and run the timeouts; every command runs on the
/// worker pool, in order per connection, the lines of one read together
/// as one job whose responses go out in as few writes as fit in 64 KiB
/// chunks.
pub struct Pop3Handler {
    shared: Arc<Shared>,
    pool: WorkerPool,
    idle_timeout: Duration,
    login_timeout: Option<Duration>,
    /// What a session that did not log in in time is sent before the close.
    login_timeout_reply: Arc<[u8]>,
}

impl Pop3Handler {
    /// A handler serving `shared` on `pool`, logging out sessions idle for
    /// `idle_timeout` and closing those that have not logged in within
    /// `login_timeout` (zero: never).
    pub(super) fn new(
        shared: Arc<Shared>,
        pool: WorkerPool,
        idle_timeout: Duration,
        login_timeout: Duration,
    ) -> Self {
        Pop3Handler {
            shared,
            pool,
            idle_timeout,
            login_timeout: (!login_timeout.is_zero()).then_some(login_timeout),
            login_timeout_reply: format!(
                "-ERR disconnected: no login within {}\r\n",
                seconds(login_timeout)
            )
            .into_bytes()
            .into(),
        }
    }

    /// Apply the handler's settings to the berth server that will run it:
    /// the idle timeout, which is the autologout timer
    /// ([`Pop3ServerBuilder::idle_timeout`](super::Pop3ServerBuilder::idle_timeout)).
    /// [`Pop3ServerBuilder::start`](super::Pop3ServerBuilder::start) does
    /// this; a program that starts the handler itself must too, or idle
    /// sessions are never logged out.
    ///
    /// ```no_run
    /// use berth::{Framed, Server};
    /// use berth_pop3::Users;
    /// use berth_pop3::server::Pop3Server;
    ///
    /// let users = Users::load("/etc/berth/pop3-users".as_ref())?;
    /// let handler = Pop3Server::builder(users, "/var/mail/maildir").build()?;
    /// let workers = handler.worker_pool().clone();
    /// let server = handler
    ///     .configure(Server::builder().listen("127.0.0.1:1110".parse()?))
    ///     .start(Framed::new(handler))?;
    /// // ... and when it is time to stop:
    /// server.shutdown(std::time::Duration::from_secs(30));
    /// workers.shutdown(berth_pop3::server::WORKER_SHUTDOWN_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn configure(&self, server: berth::ServerBuilder) -> berth::ServerBuilder {
        server.idle_timeout(self.idle_timeout)
    }

    /// The autologout's idle timeout (see [`Pop3Handler::configure`]).
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The pre-login timeout, if any.
    #[must_use]
    pub fn login_timeout(&self) -> Option<Duration> {
        self.login_timeout
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
        let weak = Arc::downgrade(pc);
        let submitted = self.pool.submit(conn, move |handle| {
            // The connection is gone, and with it the session: nothing to do.
            if let Some(pc) = weak.upgrade() {
                pc.pump(handle);
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

    fn timed_out(&self, conn: &mut Conn<'_>, st: &mut ConnState, which: Timeout) {
        let Some(pc) = st.conn.clone() else {
            conn.close();
            return;
        };
        match which {
            Timeout::Idle => pc.idle(conn),
            Timeout::User => {
                if pc.wake(conn, Instant::now()) {
                    self.schedule(conn, &pc);
                }
            }
            // A line begun and not finished within the frame timeout.
            Timeout::Frame => pc.frame_timed_out(conn),
            _ => conn.close(),
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
        let deadline = self.login_timeout.and_then(|after| {
            conn.conn().set_timer(after);
            Instant::now().checked_add(after)
        });
        let reply = Arc::clone(&self.login_timeout_reply);
        st.conn = Some(Arc::new(Pop3Conn::new(session, deadline, reply)));
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
}

/// `d` in words: "180 seconds", "1 second", "0.3 seconds".
fn seconds(d: Duration) -> String {
    match (d.as_secs(), d.subsec_millis()) {
        (1, 0) => "1 second".to_owned(),
        (s, 0) => format!("{s} seconds"),
        (s, ms) => format!("{}.{} seconds", s, format!("{ms:03}").trim_end_matches('0')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_in_words() {
        assert_eq!(seconds(Duration::from_secs(180)), "180 seconds");
        assert_eq!(seconds(Duration::from_secs(1)), "1 second");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3 seconds");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25 seconds");
    }
}
