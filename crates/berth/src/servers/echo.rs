use std::io;
use std::net::SocketAddr;

use crate::{Conn, Handler, IoBuf, Lifecycle, Shutdown};

/// The seed's EchoServer: echoes the byte stream without copying it. When
/// the client shuts down its sending side, the server finishes echoing,
/// then shuts down its own (the client reads every byte, then end-of-file).
#[derive(Debug, Default, Clone)]
pub struct Echo {
    welcome: Option<Vec<u8>>,
}

impl Echo {
    /// An echo server that greets each client with `welcome` (if any).
    pub fn new(welcome: Option<Vec<u8>>) -> Self {
        Echo { welcome }
    }
}

// Connection events (opened, closed with the reason) are logged by the
// server at debug; the echo logs only what that line does not say, and
// nothing per message.
impl Lifecycle for Echo {
    type State = ();

    fn connection_error(&self, conn: &mut Conn<'_>, _: &mut (), err: &io::Error) {
        tracing::debug!(conn = %conn.id(), %err, "connection error");
    }
}

impl Handler for Echo {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        if let Some(welcome) = &self.welcome {
            let _ = conn.write(welcome);
        }
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut ()) {
        let _ = conn.shutdown(Shutdown::Write);
    }
}
