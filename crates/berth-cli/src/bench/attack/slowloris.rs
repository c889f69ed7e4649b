//! Slowloris: many connections, each sending one byte at a time, slowly,
//! and never finishing anything. One thread serves them all in turn: the
//! connections are kept in the order of their next byte, so each step
//! touches one connection (a read that throws away what came back, and a
//! one-byte write).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::Shared;
use crate::bench::mode::Mode;

/// A packet header announcing the largest packet: in packet mode a
/// slowloris connection completes a packet only every 255 bytes.
const SLOW_HEADER: u8 = 255;
/// The bytes that follow it (and every byte in echo mode).
const SLOW_BYTE: u8 = b's';
/// How long one connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Most time spent reopening connections per pass over due connections,
/// so that a server that stops accepting does not stall the others' bytes.
const RECONNECT_BUDGET: Duration = Duration::from_millis(100);
/// Longest sleep between checks of the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// One slowloris connection.
struct Slow {
    sock: Option<TcpStream>,
    /// Bytes sent on the current connection.
    sent: u64,
    /// When its next byte is due.
    next: Instant,
}

pub(super) fn run(s: &Shared) {
    let plan = &s.plan;
    let n = plan.slowloris as usize;
    let interval = plan.slowloris_interval;
    let c = &s.counters.slowloris;
    // Spread the connections' bytes evenly over one interval.
    let t0 = Instant::now();
    let mut conns: Vec<Slow> = Vec::with_capacity(n);
    for i in 0..n {
        if s.over() {
            break;
        }
        let sock = open(s);
        conns.push(Slow {
            sock,
            sent: 0,
            next: t0 + interval.mul_f64(i as f64 / n as f64),
        });
    }
    s.mark_ready();
    if conns.is_empty() {
        return;
    }
    let mut scratch = [0u8; 512];
    let mut turn = 0;
    while !s.over() {
        let now = Instant::now();
        let due = conns[turn].next;
        if due > now {
            std::thread::sleep((due - now).min(TICK));
            continue;
        }
        let pass_start = now;
        // Every connection that is due, in turn.
        while conns[turn].next <= Instant::now() && !s.over() {
            let slow = &mut conns[turn];
            // Next byte one interval later; a late one does not make up.
            slow.next = (slow.next + interval).max(Instant::now());
            if slow.sock.is_none() && plan.reconnect && pass_start.elapsed() < RECONNECT_BUDGET {
                slow.sock = open(s);
                slow.sent = 0;
                if slow.sock.is_some() {
                    c.reconnects.fetch_add(1, Relaxed);
                }
            }
            if let Some(sock) = &mut slow.sock {
                let byte = slow_byte(plan.mode, slow.sent);
                let sent = if drain(sock, &mut scratch) {
                    send_one(sock, byte)
                } else {
                    None
                };
                if let Some(n) = sent {
                    slow.sent += n;
                    c.bytes.fetch_add(n, Relaxed);
                } else if !s.over() {
                    // The server closed it (a failure once the run has
                    // stopped is not the server's doing).
                    slow.sock = None;
                    c.open.fetch_sub(1, Relaxed);
                    c.closed.fetch_add(1, Relaxed);
                }
            }
            turn = (turn + 1) % conns.len();
        }
    }
}

/// The byte a slowloris connection sends after `sent` bytes: in packet
/// mode every 255th is the header of the next 255-byte packet.
fn slow_byte(mode: Mode, sent: u64) -> u8 {
    if mode == Mode::Packet && sent.is_multiple_of(255) {
        SLOW_HEADER
    } else {
        SLOW_BYTE
    }
}

/// A new non-blocking connection to the server, counted as open (or its
/// failure counted).
fn open(s: &Shared) -> Option<TcpStream> {
    let sock = TcpStream::connect_timeout(&s.plan.addr, CONNECT_TIMEOUT)
        .and_then(|sock| sock.set_nonblocking(true).map(|()| sock));
    match sock {
        Ok(sock) => {
            let _ = sock.set_nodelay(true);
            s.counters.slowloris.open.fetch_add(1, Relaxed);
            Some(sock)
        }
        Err(_) => {
            s.counters.slowloris.connect_errors.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Throw away whatever the server sent; false if it closed the connection.
fn drain(sock: &mut TcpStream, scratch: &mut [u8]) -> bool {
    loop {
        match sock.read(scratch) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Send one byte: how many went (0 or 1), or None if the connection is
/// gone. A full socket (the server does not read) is not an error: the
/// byte waits for next time.
fn send_one(sock: &mut TcpStream, byte: u8) -> Option<u64> {
    match sock.write(&[byte]) {
        Ok(n) => Some(n as u64),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Some(0),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Mode, SLOW_BYTE, SLOW_HEADER, slow_byte};

    #[test]
    fn a_packet_mode_slowloris_stream_is_whole_255_byte_packets() {
        let stream: Vec<u8> = (0..255 * 3).map(|i| slow_byte(Mode::Packet, i)).collect();
        for packet in stream.chunks(255) {
            assert_eq!(packet[0], SLOW_HEADER);
            assert!(packet[1..].iter().all(|&b| b == SLOW_BYTE));
        }
        assert!((0..600).all(|i| slow_byte(Mode::Echo, i) == SLOW_BYTE));
    }
}
