//! A never-reading client: one connection that writes as fast as its
//! socket takes bytes and never reads, so the server's replies pile up in
//! the kernel and then wherever the server keeps what it cannot send.
//! Writes block (with a short timeout, to notice the end of the run), so a
//! server that stops reading costs this thread nothing.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::Shared;
use crate::bench::mode::Mode;

/// Bytes handed to the socket per write: 256 whole 255-byte packets.
const CHUNK: usize = 255 * 256;
/// How long one connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a write may block before the stop flag is checked again.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// Pause before reopening a connection the server closed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What a never-reading client sends, over and over: in packet mode whole
/// packets of 255 bytes (header included), each one echoed by the server.
fn chunk(mode: Mode) -> Vec<u8> {
    let mut bytes = vec![b'n'; CHUNK];
    if mode == Mode::Packet {
        for header in bytes.iter_mut().step_by(255) {
            *header = 255;
        }
    }
    bytes
}

pub(super) fn run(s: &Shared) {
    let c = &s.counters.never_read;
    let bytes = chunk(s.plan.mode);
    let mut sock = open(s);
    s.mark_ready();
    // Where in `bytes` the next write starts (packets stay whole across
    // short writes).
    let mut at = 0;
    while !s.over() {
        let Some(conn) = &mut sock else {
            if !s.plan.reconnect {
                return;
            }
            std::thread::sleep(RECONNECT_PAUSE);
            if s.over() {
                return;
            }
            sock = open(s);
            at = 0;
            if sock.is_some() {
                c.reconnects.fetch_add(1, Relaxed);
            }
            continue;
        };
        match conn.write(&bytes[at..]) {
            Ok(n) => {
                c.bytes.fetch_add(n as u64, Relaxed);
                at = (at + n) % CHUNK;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                if !s.over() {
                    c.open.fetch_sub(1, Relaxed);
                    c.closed.fetch_add(1, Relaxed);
                }
                sock = None;
            }
        }
    }
}

/// A new connection with a bounded write time, counted as open (or its
/// failure counted).
fn open(s: &Shared) -> Option<TcpStream> {
    let sock = TcpStream::connect_timeout(&s.plan.addr, CONNECT_TIMEOUT)
        .and_then(|sock| sock.set_write_timeout(Some(WRITE_TIMEOUT)).map(|()| sock));
    match sock {
        Ok(sock) => {
            s.counters.never_read.open.fetch_add(1, Relaxed);
            Some(sock)
        }
        Err(_) => {
            s.counters.never_read.connect_errors.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, Mode, chunk};

    #[test]
    fn a_packet_mode_chunk_is_whole_255_byte_packets() {
        let bytes = chunk(Mode::Packet);
        assert_eq!(bytes.len(), CHUNK);
        for packet in bytes.chunks(255) {
            assert_eq!(packet.len(), 255);
            assert_eq!(packet[0], 255);
            assert!(packet[1..].iter().all(|&b| b != 255));
        }
    }
}
