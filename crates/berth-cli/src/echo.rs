//! `berth echo`: the seed's EchoServer.

use std::io;
use std::net::SocketAddr;

use berth::{Conn, Handler, IoBuf, Shutdown};
use clap::Args;

use crate::opts::ServerOpts;

/// Flags of `berth echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    server: ServerOpts,
    /// Text sent to each client when it connects (the seed's welcome message).
    #[arg(long, value_name = "TEXT")]
    welcome: Option<String>,
}

/// Echoes the byte stream; when the client shuts down its sending side, the
/// server finishes echoing, then shuts down its own.
pub struct Echo {
    welcome: Option<Vec<u8>>,
}

impl Handler for Echo {
    type State = ();

    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), peer: SocketAddr) {
        tracing::debug!(conn = %conn.id(), %peer, "connection established");
        if let Some(welcome) = &self.welcome {
            let _ = conn.write(welcome);
        }
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut ()) {
        tracing::debug!(conn = %conn.id(), "client closed its sending side");
        let _ = conn.shutdown(Shutdown::Write);
    }

    fn connection_reset(&self, conn: &mut Conn<'_>, _: &mut (), err: &io::Error) {
        tracing::debug!(conn = %conn.id(), %err, "connection reset");
    }

    fn connection_error(&self, conn: &mut Conn<'_>, _: &mut (), err: &io::Error) {
        tracing::debug!(conn = %conn.id(), %err, "connection error");
    }

    fn server_event(&self, event: berth::ServerEvent<'_>) {
        if let berth::ServerEvent::ConnectionClosed { id, peer } = event {
            tracing::debug!(conn = %id, %peer, "connection closed");
        }
    }
}

pub fn run(args: EchoArgs) -> Result<(), String> {
    let welcome = args.welcome.map(String::into_bytes);
    args.server.serve(Echo { welcome })
}
