//! The metrics server's handler: a minimal HTTP/1.1 server on berth's
//! framed layer, one request per connection.
//!
//! The line codec cuts the request head into lines and the sans-IO
//! [`HeadParser`] reads them; when the head is complete the handler
//! answers `GET` or `HEAD /metrics` with the encoded metrics, anything else
//! with an error status, and then shuts its side down (`Connection:
//! close`): input after the head is ignored. Each connection has
//! [`REQUEST_TIMEOUT`] from its start to send a whole head (the head is
//! the frame, and it spans several lines, so its deadline is the
//! connection's own timer rather than the per-line frame timeout), and
//! [`LINGER`] after the answer to close.

use std::time::{Duration, SystemTime};

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::{
    Conn, FrameErrorAction, FrameHandler, FramedConn, IoBuf, Lifecycle, Shutdown, Timeout,
};

use super::registry::{CONTENT_TYPE, Metrics};
use super::request::{HeadParser, MAX_HEAD, Method, Request, Step};
use super::response::{Response, Status};

/// The path the metrics are served on.
pub const METRICS_PATH: &str = "/metrics";

/// How long a client has, from connecting, to send its whole request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the connection stays after the answer, for the client to read
/// it and close first (a close with unread input would reset it).
pub const LINGER: Duration = Duration::from_secs(5);

/// Serves [`METRICS_PATH`].
#[derive(Debug)]
pub struct MetricsHttp {
    metrics: Metrics,
}

/// One connection's exchange.
#[derive(Debug, Default)]
pub struct Exchange {
    head: HeadParser,
    answered: bool,
}

impl MetricsHttp {
    pub fn new(metrics: Metrics) -> Self {
        MetricsHttp { metrics }
    }

    /// The answer to a whole, valid request head.
    fn route(&self, request: &Request) -> Response {
        if request.path != METRICS_PATH {
            return Response::error(Status::NotFound);
        }
        match request.method {
            Method::Get => Response::ok(CONTENT_TYPE, self.metrics.encode()),
            Method::Head => Response {
                head_only: true,
                ..Response::ok(CONTENT_TYPE, self.metrics.encode())
            },
            Method::Other => Response::error(Status::MethodNotAllowed),
        }
    }
}

/// Write `response`, then shut down the sending side; the connection
/// closes when the client closes, or after [`LINGER`].
fn answer(conn: &mut Conn<'_>, st: &mut Exchange, response: Response) {
    if st.answered {
        return;
    }
    st.answered = true;
    tracing::debug!(peer = %conn.peer_addr(), status = response.status.code(), "metrics request");
    match conn.write(&response.to_bytes(SystemTime::now())) {
        Ok(()) => {
            let _ = conn.shutdown(Shutdown::Write);
            conn.set_timer(LINGER);
        }
        Err(_) => conn.close(),
    }
}

impl Lifecycle for MetricsHttp {
    type State = Exchange;

    /// No whole head in time: 408. After the answer: close.
    fn timed_out(&self, conn: &mut Conn<'_>, st: &mut Exchange, _which: Timeout) {
        if st.answered {
            conn.close();
        } else {
            answer(conn, st, Response::error(Status::RequestTimeout));
        }
    }
}

impl FrameHandler for MetricsHttp {
    type Codec = LineCodec;

    /// Lines end with CR LF or a bare LF; no line can be longer than the
    /// whole head may be.
    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Lf)
            .max_line_length(MAX_HEAD)
            .build()
    }

    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut Exchange,
        _peer: std::net::SocketAddr,
    ) {
        conn.conn().set_timer(REQUEST_TIMEOUT);
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, st: &mut Exchange, line: IoBuf) {
        if st.answered {
            return;
        }
        let response = match st.head.line(&line) {
            Ok(Step::More) => return,
            Ok(Step::Done(request)) => self.route(&request),
            Err(status) => Response::error(status),
        };
        answer(conn.conn(), st, response);
    }

    /// A line longer than the head may be (414 or 431), or the stream
    /// ended inside one (400); then the default: shut down, discard input.
    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &mut Exchange,
        error: &FrameError,
    ) -> FrameErrorAction {
        let status = match error {
            FrameError::TooLong { .. } => st.head.too_long(),
            _ => Status::BadRequest,
        };
        answer(conn.conn(), st, Response::error(status));
        FrameErrorAction::Shutdown
    }

    /// The client stopped sending before its head was complete.
    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, st: &mut Exchange) {
        answer(conn.conn(), st, Response::error(Status::BadRequest));
    }
}
