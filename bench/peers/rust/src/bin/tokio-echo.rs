//! tokio peer: current-thread runtime, one task per connection, a plain
//! `read` / `write_all` loop with a 64 KiB buffer per connection (allocated
//! when the connection is accepted, as idiomatic tokio servers do).

use std::io;

use berth_bench_peers::{Mode, packet_scan, parse_args};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BUF_SIZE: usize = 64 * 1024;
/// Same listen backlog as every other peer.
const BACKLOG: u32 = 4096;

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            // Client EOF: everything read has been written back.
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn packet_echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    // Bytes of a packet that has not fully arrived yet (at most 254).
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        let malformed = if pending.is_empty() {
            let (whole, malformed) = packet_scan(&buf[..n]);
            if !malformed {
                pending.extend_from_slice(&buf[whole..n]);
            }
            stream.write_all(&buf[..whole]).await?;
            malformed
        } else {
            pending.extend_from_slice(&buf[..n]);
            let (whole, malformed) = packet_scan(&pending);
            stream.write_all(&pending[..whole]).await?;
            pending.drain(..whole);
            malformed
        };
        if malformed {
            return stream.shutdown().await;
        }
    }
}

fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

fn main() -> io::Result<()> {
    let opts = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = listen(opts.listen)?;
        eprintln!(
            "tokio-echo: listening on {} ({:?} mode)",
            opts.listen, opts.mode
        );
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("tokio-echo: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = match opts.mode {
                    Mode::Echo => echo(stream).await,
                    Mode::Packet => packet_echo(stream).await,
                };
            });
        }
    })
}
