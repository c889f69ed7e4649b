//! Outbound connections, driven by the same Handler, on both engines.

mod common;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use berth::servers::Echo;
use berth::{Conn, EngineChoice, Handler, IoBuf, Shutdown};
use common::*;

both_engines!(
    client_connects_and_is_driven_by_its_handler,
    refused_connect_reports_connect_failed,
    connect_that_never_completes_times_out,
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

impl Handler for Greeter {
    type State = ();

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

    fn connect_failed(&self, addr: SocketAddr, err: &io::Error) {
        self.send(Event::Failed(addr, err.kind()));
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
