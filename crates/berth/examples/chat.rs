//! A line-based chat room: every line a client sends goes to every other
//! client. Shows the framed layer (line codec), per-connection state, and
//! `ConnHandle`s written from another connection's callback.
//!
//! `cargo run -p berth --example chat`, then connect two `nc 127.0.0.1 5001`.

use std::collections::HashMap;
use std::sync::Mutex;

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::signal::TerminationSignals;
use berth::{
    ConnHandle, ConnId, FrameErrorAction, FrameHandler, Framed, FramedConn, IoBuf, Lifecycle,
    Server, ServerEvent,
};

#[derive(Default)]
struct Room {
    members: Mutex<HashMap<ConnId, ConnHandle>>,
}

impl Lifecycle for Room {
    type State = ();

    fn server_event(&self, event: ServerEvent<'_>) {
        // A reset or error closes the connection even while we hold a handle.
        if let ServerEvent::ConnectionClosed { id, .. } = event {
            self.members.lock().unwrap().remove(&id);
        }
    }
}

impl FrameHandler for Room {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Lf)
            .max_line_length(1024)
            .build()
    }

    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut (),
        peer: std::net::SocketAddr,
    ) {
        let _ = conn.send(format!("welcome, {peer}").as_str());
        let handle = conn.handle();
        self.members.lock().unwrap().insert(conn.id(), handle);
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut (), line: IoBuf) {
        let mut msg = format!("{}: ", conn.peer_addr()).into_bytes();
        msg.extend_from_slice(&line);
        msg.push(b'\n');
        for (id, member) in self.members.lock().unwrap().iter() {
            if *id != conn.id() {
                let _ = member.write(&msg);
            }
        }
    }

    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut (),
        _: &FrameError,
    ) -> FrameErrorAction {
        let _ = conn.send("line too long, dropped");
        FrameErrorAction::Continue
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut ()) {
        // Dropping our handle lets the connection close.
        self.members.lock().unwrap().remove(&conn.id());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let signals = TerminationSignals::block()?;
    let server = Server::builder().start(Framed::new(Room::default()))?;
    println!("chat room on {}", server.local_addr());
    signals.wait()?;
    // Release the room's handles so connections can close during the drain.
    server.handler().inner().members.lock().unwrap().clear();
    server.shutdown(std::time::Duration::from_secs(5));
    Ok(())
}
