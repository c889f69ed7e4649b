//! monoio peer: the io_uring driver, one task per connection, owned-buffer
//! `read` / `write_all` loop with a 64 KiB buffer per connection (allocated
//! when the connection is accepted, as monoio's own examples do).

use std::io;

use berth_bench_peers::{Mode, packet_scan, parse_args};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

const BUF_SIZE: usize = 64 * 1024;

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(BUF_SIZE);
    loop {
        let (res, b) = stream.read(buf).await;
        if res? == 0 {
            return stream.shutdown().await;
        }
        let (res, mut b) = stream.write_all(b).await;
        res?;
        b.clear();
        buf = b;
    }
}

async fn packet_echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(BUF_SIZE);
    // Bytes of a packet that has not fully arrived yet (at most 254).
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let (res, mut b) = stream.read(buf).await;
        if res? == 0 {
            return stream.shutdown().await;
        }
        let malformed;
        if pending.is_empty() {
            // Fast path: send whole packets straight from the read buffer.
            let (whole, bad) = packet_scan(&b);
            malformed = bad;
            if !bad {
                pending.extend_from_slice(&b[whole..]);
            }
            b.truncate(whole);
        } else {
            pending.extend_from_slice(&b);
            let (whole, bad) = packet_scan(&pending);
            malformed = bad;
            b.clear();
            b.extend_from_slice(&pending[..whole]);
            pending.drain(..whole);
        }
        if !b.is_empty() {
            let (res, out) = stream.write_all(b).await;
            res?;
            b = out;
        }
        if malformed {
            return stream.shutdown().await;
        }
        b.clear();
        buf = b;
    }
}

fn main() -> io::Result<()> {
    let opts = parse_args();
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(4096)
        .build()?;
    rt.block_on(async move {
        // monoio defaults to SO_REUSEPORT, which would let a stale server
        // share the port; turn it off and use the peers' common backlog.
        let config = ListenerOpts::new().reuse_port(false).backlog(4096);
        let listener = TcpListener::bind_with_config(opts.listen, &config)?;
        eprintln!(
            "monoio-echo: listening on {} ({:?} mode)",
            opts.listen, opts.mode
        );
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("monoio-echo: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            monoio::spawn(async move {
                let _ = match opts.mode {
                    Mode::Echo => echo(stream).await,
                    Mode::Packet => packet_echo(stream).await,
                };
            });
        }
    })
}
