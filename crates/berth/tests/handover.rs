//! Restarts that refuse nothing: a `reuse_port` server that stops while a
//! newer one listens on the same address steers new connections to the
//! newer one and serves what is queued to it before it closes its
//! listener. (The operator's restart, end to end through the `berth`
//! binary, is `crates/berth-cli/tests/restart.rs`.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth::{Conn, EngineChoice, Handler, IoBuf, Lifecycle, ServerEvent, Shutdown};
use common::*;

both_engines!(
    a_paused_server_serves_its_queue_when_it_hands_over,
    new_connections_go_to_the_newer_server_while_the_old_one_hands_over,
);

/// Greets each connection with its one-byte name, then echoes; tells when
/// accepting has been paused.
struct Named {
    name: u8,
    paused: AtomicBool,
}

impl Named {
    fn new(name: u8) -> Self {
        Named {
            name,
            paused: AtomicBool::new(false),
        }
    }
}

impl Lifecycle for Named {
    type State = ();

    fn server_event(&self, event: ServerEvent<'_>) {
        if let ServerEvent::AcceptingPaused = event {
            self.paused.store(true, Ordering::Release);
        }
    }
}

impl Handler for Named {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        let _ = conn.write(&[self.name]);
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut ()) {
        let _ = conn.shutdown(Shutdown::Write);
    }
}

/// The name of the server a new connection to `addr` reaches.
fn greeting(addr: SocketAddr) -> u8 {
    let mut s = connect(addr);
    let mut name = [0u8];
    s.read_exact(&mut name).expect("greeting");
    name[0]
}

/// How many sockets listen on `addr` (an IPv4 address), from /proc/net/tcp.
fn listeners(addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    // Addresses in host byte order, hex; the state 0A is LISTEN.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
        })
        .count()
}

/// Connections queued in the backlog of a paused server that stops would
/// be reset when its listener closes; handing over, it accepts and serves
/// them first.
fn a_paused_server_serves_its_queue_when_it_hands_over(engine: EngineChoice) {
    let mut old = start_with(builder(engine).reuse_port(true), Named::new(b'A'));
    let handle = old.server().handle();
    handle.pause_accepting();
    assert!(eventually(IO_TIMEOUT, || old
        .handler()
        .paused
        .load(Ordering::Acquire)));
    // Only the old server listens yet: every connection queues in its backlog.
    let queued: Vec<TcpStream> = (0..8).map(|_| old.connect()).collect();
    for (i, mut s) in queued.iter().enumerate() {
        s.write_all(format!("ping {i}").as_bytes()).unwrap();
    }
    assert_eq!(handle.stats().accepted, 0, "accepting is paused");
    let new = start_with(
        builder(engine).listen(old.addr).reuse_port(true),
        Named::new(b'B'),
    );

    let clients: Vec<_> = queued
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                let want = format!("Aping {i}").into_bytes();
                let mut got = vec![0u8; want.len()];
                s.read_exact(&mut got).expect("served by the old server");
                assert_eq!(got, want);
                s.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(read_to_end(&mut s).unwrap(), b"", "then a clean close");
            })
        })
        .collect();
    old.server
        .take()
        .expect("running")
        .shutdown(Duration::from_secs(10));
    for c in clients {
        c.join().expect("queued client");
    }
    assert_eq!(handle.stats().accepted, 8);
    assert_eq!(greeting(new.addr), b'B');
    new.finish();
}

/// Once the old server is told to stop, new connections go to the newer
/// one although the old listener is still open (the grace period).
fn new_connections_go_to_the_newer_server_while_the_old_one_hands_over(engine: EngineChoice) {
    let grace = Duration::from_secs(2);
    let mut old = start_with(
        builder(engine).reuse_port(true).handover_grace(grace),
        Named::new(b'A'),
    );
    let new = start_with(
        builder(engine).listen(old.addr).reuse_port(true),
        Named::new(b'B'),
    );
    // Both serve: the kernel's hash spreads new connections over them.
    let (mut a, mut b) = (false, false);
    let both = eventually(IO_TIMEOUT, || {
        match greeting(old.addr) {
            b'A' => a = true,
            _ => b = true,
        }
        a && b
    });
    assert!(both, "both servers take connections");

    let handle = old.server().handle();
    let stopped = Instant::now();
    handle.shutdown(Duration::from_secs(10));
    let mut in_a_row = 0;
    let steered = eventually(IO_TIMEOUT, || {
        in_a_row = if greeting(new.addr) == b'B' {
            in_a_row + 1
        } else {
            0
        };
        in_a_row == 20
    });
    assert!(steered, "new connections go to the newer server");
    assert!(stopped.elapsed() < grace, "within the grace period");
    assert_eq!(listeners(old.addr), 2, "the old listener is still open");
    old.server.take().expect("running").wait();
    assert_eq!(listeners(old.addr), 1);
    assert_eq!(greeting(new.addr), b'B');
    new.finish();
}
