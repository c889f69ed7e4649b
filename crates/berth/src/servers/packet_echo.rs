use std::net::SocketAddr;

use crate::codec::{FrameError, LengthFieldCodec, LengthWidth};
use crate::{FrameErrorAction, FrameHandler, FrameRun, FramedConn, IoBuf, Lifecycle, Shutdown};

/// The seed's packet format: a 1-byte header holding the total packet
/// length, header included (so at most 255 bytes; a header of 0 is malformed).
pub fn packet_codec() -> LengthFieldCodec {
    LengthFieldCodec::builder()
        .width(LengthWidth::U8)
        .length_includes_header()
        .max_frame_length(255)
        .build()
}

/// The seed's PacketEchoServer: echoes whole packets back (header included,
/// without a copy). A malformed packet is logged and that connection shut
/// down; nothing else is affected.
#[derive(Debug, Default, Clone)]
pub struct PacketEcho {
    welcome: Option<Vec<u8>>,
}

impl PacketEcho {
    /// A packet echo server that greets each client with `welcome` (raw bytes).
    pub fn new(welcome: Option<Vec<u8>>) -> Self {
        PacketEcho { welcome }
    }
}

impl Lifecycle for PacketEcho {
    type State = ();
}

impl FrameHandler for PacketEcho {
    type Codec = LengthFieldCodec;

    fn codec(&self) -> LengthFieldCodec {
        packet_codec()
    }

    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, LengthFieldCodec>,
        _: &mut (),
        _: SocketAddr,
    ) {
        if let Some(welcome) = &self.welcome {
            let _ = conn.conn().write(welcome);
        }
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut (), packet: IoBuf) {
        let _ = conn.conn().write_buf(packet);
    }

    /// Packets that arrived back to back go back as one buffer.
    const FRAME_RUNS: bool = true;

    fn frame_run(
        &self,
        conn: &mut FramedConn<'_, '_, LengthFieldCodec>,
        _: &mut (),
        run: FrameRun,
    ) {
        let _ = conn.conn().write_buf(run.into_bytes());
    }

    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LengthFieldCodec>,
        _: &mut (),
        error: &FrameError,
    ) -> FrameErrorAction {
        tracing::debug!(conn = %conn.id(), peer = %conn.peer_addr(), %error, "malformed packet; closing the connection");
        FrameErrorAction::Shutdown
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut ()) {
        let _ = conn.conn().shutdown(Shutdown::Write);
    }
}
