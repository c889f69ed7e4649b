//! Admission control over loopback, on both engines: `max_connections` and
//! `max_connections_per_ip` (clients from 127.0.0.1 and 127.0.0.2) close a
//! connection over the limit at once, after the handler's refusal line,
//! count it by reason, and admit again once a place is given back.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Mutex, mpsc};

use berth::{CloseReason, Conn, EngineChoice, Handler, IoBuf, Lifecycle, Refusal, ServerEvent};
use common::*;

both_engines!(
    max_connections_refuses_the_next_with_the_refusal_line_and_admits_after_a_close,
    max_connections_per_ip_counts_each_client_address,
    a_refused_connection_without_a_refusal_line_is_just_closed,
);

/// What the handler's server events said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Refused(SocketAddr, Refusal),
    Closed,
}

/// Echoes; refuses with a line naming the limit (or with none, when
/// `lines` is false); reports refusals and closes.
struct Gate {
    lines: bool,
    seen: Mutex<mpsc::Sender<Seen>>,
}

impl Gate {
    fn new(lines: bool) -> (Gate, mpsc::Receiver<Seen>) {
        let (tx, rx) = mpsc::channel();
        let gate = Gate {
            lines,
            seen: Mutex::new(tx),
        };
        (gate, rx)
    }
}

impl Lifecycle for Gate {
    type State = ();

    fn refusal(&self, peer: SocketAddr, reason: Refusal) -> Option<Vec<u8>> {
        let line = match reason {
            Refusal::MaxConnections => "-ERR server full\r\n".to_owned(),
            Refusal::MaxConnectionsPerIp => format!("-ERR too many from {}\r\n", peer.ip()),
            _ => "-ERR ?\r\n".to_owned(),
        };
        self.lines.then(|| line.into_bytes())
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        let seen = match event {
            ServerEvent::ConnectionRefused { peer, reason } => Seen::Refused(peer, reason),
            // Sent after the connection gave back its place.
            ServerEvent::ConnectionClosed { .. } => Seen::Closed,
            _ => return,
        };
        let _ = self.seen.lock().unwrap().send(seen);
    }
}

impl Handler for Gate {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }
}

/// The connection is admitted and served.
fn served(c: &mut TcpStream) {
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
}

/// The connection is refused: `line`, then end-of-file.
fn refused(mut c: TcpStream, line: &[u8]) {
    let (got, end) = read_until_closed(&mut c);
    assert!(end.is_ok(), "closed, not reset: {end:?}");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(line));
}

/// `max_connections(3)`: a fourth connection gets the refusal line and is
/// closed, counted as refused and as closed for `Limit`; once one of the
/// three has closed, a new connection is admitted.
fn max_connections_refuses_the_next_with_the_refusal_line_and_admits_after_a_close(
    engine: EngineChoice,
) {
    let (gate, seen) = Gate::new(true);
    let t = start_with(builder(engine).max_connections(3), gate);
    let mut held: Vec<TcpStream> = (0..3).map(|_| t.connect()).collect();
    held.iter_mut().for_each(served);

    let fourth = t.connect();
    let fourth_addr = fourth.local_addr().unwrap();
    refused(fourth, b"-ERR server full\r\n");
    assert_eq!(
        seen.recv_timeout(IO_TIMEOUT),
        Ok(Seen::Refused(fourth_addr, Refusal::MaxConnections))
    );
    let s = t.server().stats();
    assert_eq!(
        (s.refused_max_connections, s.refused_per_ip),
        (1, 0),
        "{s:?}"
    );
    assert_eq!(s.closed_for(CloseReason::Limit), 1);
    assert_eq!(
        (s.accepted, s.closed),
        (4, 1),
        "counted as accepted and closed"
    );
    held.iter_mut().for_each(served);

    drop(held.remove(0));
    assert_eq!(seen.recv_timeout(IO_TIMEOUT), Ok(Seen::Closed));
    let mut fifth = t.connect();
    served(&mut fifth);
    held.iter_mut().for_each(served);
    let s = t.server().stats();
    assert_eq!(s.refused_max_connections, 1);
    assert_eq!(s.open(), 3);
    drop(held);
    drop(fifth);
    t.finish();
}

/// `max_connections_per_ip(2)`: a third connection from 127.0.0.1 is
/// refused while two from 127.0.0.2 are admitted (and a third from there
/// refused); a place freed on 127.0.0.1 is taken again from 127.0.0.1.
fn max_connections_per_ip_counts_each_client_address(engine: EngineChoice) {
    let (gate, seen) = Gate::new(true);
    let t = start_with(builder(engine).max_connections_per_ip(2), gate);
    let one: IpAddr = "127.0.0.1".parse().unwrap();
    let two: IpAddr = "127.0.0.2".parse().unwrap();

    let mut from_one: Vec<TcpStream> = (0..2).map(|_| connect_from(one, t.addr)).collect();
    from_one.iter_mut().for_each(served);
    refused(
        connect_from(one, t.addr),
        b"-ERR too many from 127.0.0.1\r\n",
    );
    let mut from_two: Vec<TcpStream> = (0..2).map(|_| connect_from(two, t.addr)).collect();
    from_two.iter_mut().for_each(served);
    refused(
        connect_from(two, t.addr),
        b"-ERR too many from 127.0.0.2\r\n",
    );

    let mut refusals = Vec::new();
    for _ in 0..2 {
        match seen.recv_timeout(IO_TIMEOUT) {
            Ok(Seen::Refused(peer, reason)) => refusals.push((peer.ip(), reason)),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(
        refusals,
        [
            (one, Refusal::MaxConnectionsPerIp),
            (two, Refusal::MaxConnectionsPerIp)
        ]
    );
    let s = t.server().stats();
    assert_eq!(
        (s.refused_per_ip, s.refused_max_connections),
        (2, 0),
        "{s:?}"
    );
    assert_eq!(s.closed_for(CloseReason::Limit), 2);

    drop(from_one.remove(0));
    assert_eq!(seen.recv_timeout(IO_TIMEOUT), Ok(Seen::Closed));
    let mut again = connect_from(one, t.addr);
    served(&mut again);
    from_one.iter_mut().chain(&mut from_two).for_each(served);
    assert_eq!(t.server().stats().refused_per_ip, 2);
    drop((from_one, from_two, again));
    t.finish();
}

/// Without a refusal line (the hook's default answer), a connection over
/// the limit is closed at once with nothing sent.
fn a_refused_connection_without_a_refusal_line_is_just_closed(engine: EngineChoice) {
    let (gate, _seen) = Gate::new(false);
    let t = start_with(builder(engine).max_connections(1), gate);
    let mut first = t.connect();
    served(&mut first);
    refused(t.connect(), b"");
    assert!(eventually(IO_TIMEOUT, || {
        t.server().stats().closed_for(CloseReason::Limit) == 1
    }));
    served(&mut first);
    drop(first);
    t.finish();
}
