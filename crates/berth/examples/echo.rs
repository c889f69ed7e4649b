//! The smallest berth server: an echo server on 127.0.0.1:5001.
//!
//! Run it with `cargo run -p berth --example echo`, then
//! `nc 127.0.0.1 5001` and type. Ctrl-C drains and stops it.

use berth::signal::TerminationSignals;
use berth::{Conn, Handler, IoBuf, Lifecycle, Server, Shutdown};

struct Echo;

impl Lifecycle for Echo {
    type State = ();
}

impl Handler for Echo {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf); // the received buffer goes back out, no copy
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut ()) {
        let _ = conn.shutdown(Shutdown::Write); // after every queued write
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let signals = TerminationSignals::block()?; // before any thread starts
    let server = Server::builder().start(Echo)?;
    println!(
        "echo server on {} ({})",
        server.local_addr(),
        server.engine()
    );
    signals.wait()?;
    server.shutdown(std::time::Duration::from_secs(5));
    Ok(())
}
