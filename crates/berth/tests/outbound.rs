//! Outbound connections, driven by the same Handler, on both engines.

mod common;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use berth::servers::Echo;
use berth::{Conn, EngineChoice, Handler, IoBuf, Lifecycle, Shutdown};
use common::*;

both_engines!(
    client_connects_and_is_driven_by_its_handler,
    refused_connect_reports_connect_failed,
    connect_that_never_completes_times_out,
    connect_from_binds_the_chosen_local_address,
    connect_from_an_address_not_on_this_host_reports_connect_failed,
);

#[derive(Debug)]
enum Event {
    Established(SocketAddr),
    Data(Vec<u8>),
    ClientClosed,
    Failed(SocketAddr, io::ErrorKind),
}

/// Sends a greeting on connect, collects what comes back, half-closes.
struct Greeter(Mutex<mpsc::Sender<Event>>);

impl Greeter {
    fn new() -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (Greeter(Mutex::new(tx)), rx)
    }
    fn send(&self, e: Event) {
        let _ = self.0.lock().unwrap().send(e);
    }
}

impl Lifecycle for Greeter {
    type State = ();

    fn connect_failed(&self, addr: SocketAddr, err: &io::Error) {
        self.send(Event::Failed(addr, err.kind()));
    }
}

impl Handler for Greeter {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), peer: SocketAddr) {
        self.send(Event::Established(peer));
        conn.write(b"hello from the client side").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.send(Event::Data(buf.to_vec()));
    }

    fn client_closed(&self, _: &mut Conn<'_>, _: &mut ()) {
        self.send(Event::ClientClosed);
    }
}

fn client(engine: EngineChoice, handler: Greeter) -> berth::Client<Greeter> {
    builder(engine)
        .start_client(handler)
        .expect("client starts")
}

fn client_connects_and_is_driven_by_its_handler(engine: EngineChoice) {
    let server = start(engine, Echo::default());
    let (h, events) = Greeter::new();
    let c = client(engine, h);
    c.connect(server.addr, IO_TIMEOUT).unwrap();
    let mut echoed = Vec::new();
    loop {
        match events.recv_timeout(IO_TIMEOUT).expect("an event") {
            Event::Established(peer) => assert_eq!(peer, server.addr),
            Event::Data(d) => echoed.extend(d),
            Event::ClientClosed => break,
            Event::Failed(_, kind) => panic!("connect failed: {kind:?}"),
        }
    }
    assert_eq!(echoed, b"hello from the client side");
    assert!(eventually(IO_TIMEOUT, || c.stats().open() == 0));
    let pool = c.buffer_pool().clone();
    c.shutdown(Duration::from_secs(5));
    assert_eq!(pool.stats().in_use, 0);
    server.finish();
}

fn refused_connect_reports_connect_failed(engine: EngineChoice) {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // nothing listens there now
    let (h, events) = Greeter::new();
    let c = client(engine, h);
    c.connect(addr, IO_TIMEOUT).unwrap();
    match events.recv_timeout(IO_TIMEOUT).expect("an event") {
        Event::Failed(a, kind) => {
            assert_eq!(a, addr);
            assert_eq!(kind, io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(c.stats().accepted, 0);
}

fn connect_that_never_completes_times_out(engine: EngineChoice) {
    // A listener that never accepts, with its tiny backlog filled: further
    // SYNs are dropped, so a connect hangs until its timeout.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let f = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        f.set_nonblocking(true).unwrap();
        let _ = f.connect(&addr.into());
        fillers.push(f);
    }
    std::thread::sleep(Duration::from_millis(50));
    let (h, events) = Greeter::new();
    let c = client(engine, h);
    c.connect(addr, Duration::from_millis(300)).unwrap();
    match events.recv_timeout(IO_TIMEOUT).expect("an event") {
        Event::Failed(a, kind) => {
            assert_eq!(a, addr);
            assert_eq!(kind, io::ErrorKind::TimedOut);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Nothing is left pending: the client stops promptly.
    c.shutdown(Duration::from_secs(1));
    drop((sock, fillers));
}

/// Accept one connection on `listener` (waiting at most `IO_TIMEOUT`: Linux
/// applies `SO_RCVTIMEO` to `accept`): the server side's socket and the peer
/// address it sees. The socket is kept open by the caller, so that the
/// client sees no close while the test still counts its connections.
fn accept_peer(listener: &TcpListener) -> (std::net::TcpStream, SocketAddr) {
    socket2::SockRef::from(listener)
        .set_read_timeout(Some(IO_TIMEOUT))
        .unwrap();
    listener
        .accept()
        .unwrap_or_else(|e| panic!("no connection arrived: {e}"))
}

fn connect_from_binds_the_chosen_local_address(engine: EngineChoice) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (h, events) = Greeter::new();
    let c = client(engine, h);

    // Port 0: the kernel picks the port, on the chosen address.
    let any_port: SocketAddr = "127.0.0.2:0".parse().unwrap();
    c.connect_from(addr, any_port, IO_TIMEOUT).unwrap();
    let (first, peer) = accept_peer(&listener);
    assert_eq!(peer.ip(), any_port.ip());
    assert_ne!(peer.port(), 0);

    // A chosen port, freed just before: exactly that address and port.
    let chosen = TcpListener::bind("127.0.0.3:0")
        .unwrap()
        .local_addr()
        .unwrap();
    c.connect_from(addr, chosen, IO_TIMEOUT).unwrap();
    let (second, peer) = accept_peer(&listener);
    assert_eq!(peer, chosen);

    for _ in 0..2 {
        match events.recv_timeout(IO_TIMEOUT).expect("an event") {
            Event::Established(p) => assert_eq!(p, addr),
            other => panic!("expected a connection, got {other:?}"),
        }
    }
    drop((first, second));
    c.shutdown(Duration::from_secs(1));
}

fn connect_from_an_address_not_on_this_host_reports_connect_failed(engine: EngineChoice) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (h, events) = Greeter::new();
    let c = client(engine, h);
    // 192.0.2.0/24 is reserved for documentation: never a local address.
    let foreign: SocketAddr = "192.0.2.1:0".parse().unwrap();
    c.connect_from(addr, foreign, IO_TIMEOUT).unwrap();
    match events.recv_timeout(IO_TIMEOUT).expect("an event") {
        Event::Failed(a, kind) => {
            assert_eq!(a, addr);
            assert_eq!(kind, io::ErrorKind::AddrNotAvailable);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(c.stats().open(), 0);
    c.shutdown(Duration::from_secs(1));
}
