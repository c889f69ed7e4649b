//! The stress scenarios whose cleanliness only the server's own process
//! can see: after each, every buffer is back in the pool
//! (`TestServer::finish`). On both engines, one scenario at a time; the
//! binary's suite is `berth-cli`'s `tests/stress.rs`.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use berth::servers::{Echo, PacketEcho};
use berth::{
    CloseReason, Conn, EngineChoice, Framed, Handler, IoBuf, Lifecycle, Server, ServerEvent,
};
use common::*;

both_engines!(
    never_reading_clients_hold_a_bounded_number_of_buffers,
    never_reading_packet_clients_hold_a_bounded_number_of_buffers,
    a_reset_in_the_middle_of_a_large_write_returns_every_buffer,
    half_close_while_the_server_keeps_writing_returns_every_buffer,
    pause_and_resume_accepting_under_load_loses_no_connection,
    slowloris_connections_are_closed_by_the_frame_timeout_and_give_back_their_buffers,
);

/// One scenario at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// An echo server as `berth echo` runs it: 64 KiB buffers, the default
/// watermarks (64 KiB / 32 KiB).
fn echo_server(engine: EngineChoice, threads: usize) -> TestServer<Echo> {
    let b = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .engine(engine)
        .io_threads(threads)
        .buffer_size(64 << 10);
    start_with(b, Echo::default())
}

const FLOODERS: usize = 4;
/// The most buffers a connection whose reads are held back may hold: its
/// write queue (the high watermark plus the read that crossed it, in
/// buffers that may be partly filled) and the few reads an engine may take
/// ahead while held back.
const HELD_PER_CONN: usize = 16;

/// Send `chunk` over and over to `addr` and never read, until a write
/// makes no progress for a second; returns the socket (still open) and the
/// bytes sent.
fn flood(addr: SocketAddr, chunk: &[u8]) -> (TcpStream, usize) {
    let mut s = connect(addr);
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut sent = 0;
    while sent < 256 << 20 {
        match s.write(&chunk[sent % chunk.len()..]) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (s, sent);
            }
            Err(e) => panic!("flooder: {e}"),
        }
    }
    panic!("a flooder sent 256 MiB without being held back");
}

/// `FLOODERS` clients flood `t` with `chunk` and never read: the buffers
/// the server holds for them (beyond the io_uring buffer rings) stay within
/// `HELD_PER_CONN` each; other clients are served meanwhile (`served`);
/// when the flooders go, every buffer comes back.
fn flood_and_check<H: Handler>(t: TestServer<H>, chunk: Vec<u8>, served: impl Fn(&TestServer<H>)) {
    let in_use_outside_rings = || {
        let ring = t.server().stats().ring_buffers as usize;
        t.server().buffer_pool().stats().in_use - ring
    };
    let before = in_use_outside_rings();
    let addr = t.addr;
    let chunk = Arc::new(chunk);
    let flooders: Vec<JoinHandle<(TcpStream, usize)>> = (0..FLOODERS)
        .map(|_| {
            let chunk = Arc::clone(&chunk);
            std::thread::spawn(move || flood(addr, &chunk))
        })
        .collect();
    let flooders: Vec<(TcpStream, usize)> =
        flooders.into_iter().map(|f| f.join().unwrap()).collect();
    let held = in_use_outside_rings() - before;
    let pushed: usize = flooders.iter().map(|f| f.1).sum();
    assert!(
        held <= FLOODERS * HELD_PER_CONN,
        "{FLOODERS} never-reading connections hold {held} buffers of 64 KiB \
         (their clients pushed {} MiB)",
        pushed >> 20
    );
    served(&t);
    drop(flooders);
    t.finish();
}

/// Clients that send to an echo server and never read are held back: each
/// connection holds at most a few buffers (beyond those in the io_uring
/// buffer ring), however much its client pushes; others are served
/// meanwhile; when the flooders go, every buffer comes back.
fn never_reading_clients_hold_a_bounded_number_of_buffers(engine: EngineChoice) {
    let _one = one_at_a_time();
    flood_and_check(echo_server(engine, 1), vec![0xab; 256 << 10], |t| {
        let replies = exchange_from_clients(t, 4, &pattern(1 << 20, 1));
        assert!(replies.iter().all(|r| *r == pattern(1 << 20, 1)));
    });
}

/// The same for the framed layer: never-reading clients of the packet echo
/// server, sending whole packets, are held back alike.
fn never_reading_packet_clients_hold_a_bounded_number_of_buffers(engine: EngineChoice) {
    let _one = one_at_a_time();
    let b = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .engine(engine)
        .io_threads(1)
        .buffer_size(64 << 10);
    let packet: Vec<u8> = std::iter::once(255).chain(pattern(254, 9)).collect();
    let chunk = packet.repeat(1024);
    flood_and_check(
        start_with(b, Framed::new(PacketEcho::default())),
        chunk,
        |t| {
            let packets: Vec<u8> = packet.repeat(400);
            let replies = exchange_from_clients(t, 4, &packets);
            assert!(replies.iter().all(|r| *r == packets));
        },
    );
}

/// Write `data` until done or `stop`, one write at a time (a timed-out
/// write wrote nothing; the write timeout is short).
fn write_until_stopped(mut s: TcpStream, data: &[u8], stop: &AtomicBool) {
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut off = 0;
    while off < data.len() && !stop.load(SeqCst) {
        match s.write(&data[off..]) {
            Ok(n) => off += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("writer: {e}"),
        }
    }
}

/// Send up to 4 MiB while reading 1 MiB of the echo, then stop and close
/// with unread echo waiting: a reset while the server is writing.
fn reset_mid_write(addr: SocketAddr, seed: u8) {
    let s = connect(addr);
    let data = Arc::new(pattern(4 << 20, seed));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (w, stop, data) = (s.try_clone().unwrap(), Arc::clone(&stop), Arc::clone(&data));
        std::thread::spawn(move || write_until_stopped(w, &data, &stop))
    };
    let mut r = s;
    let mut got = vec![0u8; 1 << 20];
    r.read_exact(&mut got).unwrap();
    assert!(got[..] == data[..got.len()], "echo differs");
    stop.store(true, SeqCst);
    writer.join().unwrap();
    r.read_exact(&mut [0u8; 1]).unwrap(); // the server is still writing
    drop(r); // unread bytes: a reset
}

/// 10 clients reset their connections in the middle of large echo writes:
/// each is counted as closed for `Reset`, others are served, and every
/// buffer (queued writes, held-back reads) comes back.
fn a_reset_in_the_middle_of_a_large_write_returns_every_buffer(engine: EngineChoice) {
    let _one = one_at_a_time();
    let t = echo_server(engine, 2);
    let addr = t.addr;
    let clients: Vec<_> = (0..10u8)
        .map(|i| std::thread::spawn(move || reset_mid_write(addr, i)))
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        eventually(IO_TIMEOUT, || t.server().stats().closed == 10),
        "{:?}",
        t.server().stats()
    );
    assert_eq!(t.server().stats().closed_for(CloseReason::Reset), 10);
    let replies = exchange_from_clients(&t, 4, &pattern(256 << 10, 2));
    assert!(replies.iter().all(|r| *r == pattern(256 << 10, 2)));
    t.finish();
}

/// 16 clients each send 2 MiB and half-close at once: the server writes
/// long after each client's end of stream, every byte arrives, then
/// end-of-file; every buffer comes back.
fn half_close_while_the_server_keeps_writing_returns_every_buffer(engine: EngineChoice) {
    let _one = one_at_a_time();
    let t = echo_server(engine, 2);
    let data = pattern(2 << 20, 3);
    let replies = exchange_from_clients(&t, 16, &data);
    assert!(replies.iter().all(|r| *r == data), "echo differs");
    let s = t.server().stats();
    assert_eq!((s.bytes_read, s.bytes_written), (32 << 20, 32 << 20));
    t.finish();
}

/// A client that echoes message after message until stopped, checking
/// each; returns how many it exchanged.
fn steady_client(addr: SocketAddr, id: usize, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut s = connect(addr);
        let mut n = 0;
        while !stop.load(SeqCst) {
            let msg = pattern(100 + (id * 7 + n) % 3000, (id + n) as u8);
            s.write_all(&msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).unwrap();
            assert!(back == msg, "client {id}: echo differs");
            n += 1;
        }
        n
    })
}

/// Echoes (as `berth echo` does) and reports when accepting pauses and
/// resumes.
struct PausingEcho {
    echo: Echo,
    events: Mutex<mpsc::Sender<bool>>,
}

impl Lifecycle for PausingEcho {
    type State = ();

    fn server_event(&self, event: ServerEvent<'_>) {
        let paused = match event {
            ServerEvent::AcceptingPaused => true,
            ServerEvent::AcceptingResumed => false,
            _ => return,
        };
        let _ = self.events.lock().unwrap().send(paused);
    }
}

impl Handler for PausingEcho {
    fn read_completed(&self, conn: &mut Conn<'_>, st: &mut (), buf: IoBuf) {
        self.echo.read_completed(conn, st, buf);
    }

    fn client_closed(&self, conn: &mut Conn<'_>, st: &mut ()) {
        self.echo.client_closed(conn, st);
    }
}

/// 20 clients keep echoing while accepting is paused and resumed three
/// times. During each pause (once the accepting thread has applied it) 30
/// more clients connect and send: after the accepts already under way
/// have landed, no more are accepted over a measured window, at least some
/// clients wait in the backlog, and after the resume every one of them is
/// served. No connection is lost or refused, the steady clients are served
/// throughout, and every buffer comes back.
fn pause_and_resume_accepting_under_load_loses_no_connection(engine: EngineChoice) {
    let _one = one_at_a_time();
    let (tx, events) = mpsc::channel();
    let handler = PausingEcho {
        echo: Echo::default(),
        events: Mutex::new(tx),
    };
    let b = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .engine(engine)
        .io_threads(2)
        .buffer_size(64 << 10);
    let t = start_with(b, handler);
    let handle = t.server().handle();
    let stop = Arc::new(AtomicBool::new(false));
    let steady: Vec<_> = (0..20)
        .map(|i| steady_client(t.addr, i, Arc::clone(&stop)))
        .collect();
    let accepted = || t.server().stats().accepted;
    assert!(eventually(IO_TIMEOUT, || accepted() == 20));
    let mut total = 20;
    for round in 0..3u8 {
        handle.pause_accepting();
        assert!(handle.is_paused());
        assert_eq!(events.recv_timeout(IO_TIMEOUT), Ok(true), "paused");
        let mut waiting: Vec<TcpStream> = (0..30).map(|_| t.connect()).collect();
        for (i, c) in waiting.iter_mut().enumerate() {
            c.write_all(&[round, i as u8]).unwrap();
        }
        // An accept the kernel completed just before the pause reached it
        // is still served; let those land, then watch.
        std::thread::sleep(Duration::from_millis(100)); // settling
        let held = accepted();
        std::thread::sleep(Duration::from_millis(300)); // the window observed
        assert_eq!(accepted(), held, "accepted while paused");
        assert!(held < total + 30, "no client waited for the resume");
        handle.resume_accepting();
        assert!(!handle.is_paused());
        assert_eq!(events.recv_timeout(IO_TIMEOUT), Ok(false), "resumed");
        for (i, c) in waiting.iter_mut().enumerate() {
            let mut back = [0u8; 2];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, [round, i as u8]);
        }
        total += 30;
        assert_eq!(accepted(), total);
    }
    stop.store(true, SeqCst);
    for c in steady {
        assert!(c.join().unwrap() > 0, "a steady client was never served");
    }
    let s = t.server().stats();
    assert_eq!(s.refused_max_connections + s.refused_per_ip, 0);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == total));
    assert_eq!(
        t.server().stats().closed_for(CloseReason::ClientClose),
        total
    );
    t.finish();
}

/// A packet-echo server with a 300 ms frame timeout: 500 connections each
/// send a packet header and then a byte every 100 ms, while 20 clients
/// exchange packets. Every slowloris connection is closed, each counted
/// as a timeout; every normal packet is echoed; the partial packets'
/// buffers all come back.
fn slowloris_connections_are_closed_by_the_frame_timeout_and_give_back_their_buffers(
    engine: EngineChoice,
) {
    const SLOW: usize = 500;
    let _one = one_at_a_time();
    let b = builder(engine).frame_timeout(Duration::from_millis(300));
    let t = start_with(b, Framed::new(PacketEcho::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = t.addr;
    let normal: Vec<JoinHandle<usize>> = (0..20)
        .map(|i| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut n = 0;
                while !stop.load(SeqCst) {
                    let len = 2 + (i + n) % 200;
                    let mut p = vec![len as u8];
                    p.extend(pattern(len - 1, n as u8));
                    s.write_all(&p).unwrap();
                    let mut back = vec![0u8; p.len()];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, p);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(10)); // the client's pace
                }
                n
            })
        })
        .collect();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&[200]).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while !slow.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100)); // the dribble's pace
        slow.retain_mut(|s| match s.read(&mut [0u8; 16]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = s.write(&[0x55]);
                true
            }
            Ok(0) | Err(_) => false,
            Ok(n) => panic!("a slowloris connection got {n} bytes back"),
        });
    }
    stop.store(true, SeqCst);
    for c in normal {
        assert!(c.join().unwrap() > 0, "a normal client was never served");
    }
    assert!(
        slow.is_empty(),
        "{} slowloris connections still open",
        slow.len()
    );
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed
        == (SLOW + 20) as u64));
    assert_eq!(
        t.server().stats().closed_for(CloseReason::Timeout),
        SLOW as u64
    );
    t.finish();
}
