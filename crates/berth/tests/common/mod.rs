//! Shared test support: a server wrapper that checks the buffer pool returns
//! to its baseline, clients with timeouts, and the both-engines macro.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use std::sync::{Mutex, mpsc};

use berth::{
    Conn, ConnHandle, EngineChoice, Handler, IoBuf, Lifecycle, PoolStats, Server, ServerBuilder,
};

/// Every socket wait in the tests is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Generate one `#[test]` per engine for each named `fn name(engine: EngineChoice)`.
/// Attributes may follow a name, for both tests (`name #[ignore = "why"]`)
/// or for one engine's (`name uring #[ignore = "why"]`).
#[macro_export]
macro_rules! both_engines {
    ($( $name:ident $(#[$both:meta])* $(uring #[$uring:meta])* $(epoll #[$epoll:meta])* ),* $(,)?) => {
        mod uring {
            $( #[test] $(#[$both])* $(#[$uring])* fn $name() { super::$name(berth::EngineChoice::Uring) } )*
        }
        mod epoll {
            $( #[test] $(#[$both])* $(#[$epoll])* fn $name() { super::$name(berth::EngineChoice::Epoll) } )*
        }
    };
}

/// A server under test. `finish` checks that every buffer came back.
pub struct TestServer<H: Handler> {
    pub server: Option<Server<H>>,
    pub addr: SocketAddr,
    baseline: PoolStats,
    baseline_ring: usize,
}

pub fn builder(engine: EngineChoice) -> ServerBuilder {
    Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .engine(engine)
        .io_threads(2)
        .buffer_size(4096)
        .ring_buffers(64)
}

pub fn start<H: Handler>(engine: EngineChoice, handler: H) -> TestServer<H> {
    start_with(builder(engine), handler)
}

pub fn start_with<H: Handler>(builder: ServerBuilder, handler: H) -> TestServer<H> {
    let server = builder.start(handler).expect("server starts");
    let addr = server.local_addr();
    let baseline = server.buffer_pool().stats();
    let baseline_ring = server.stats().ring_buffers as usize;
    TestServer {
        server: Some(server),
        addr,
        baseline,
        baseline_ring,
    }
}

impl<H: Handler> TestServer<H> {
    pub fn server(&self) -> &Server<H> {
        self.server.as_ref().expect("running")
    }

    pub fn handler(&self) -> &H {
        self.server().handler()
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Wait until every connection is closed and the pool is back to its
    /// baseline (the buffer rings grow and shrink with the load, so the
    /// buffers they hold are counted apart), then shut down and check that
    /// every buffer was returned.
    pub fn finish(mut self) {
        let server = self.server.take().expect("running");
        let outside_rings = self.baseline.in_use - self.baseline_ring;
        let settled = eventually(Duration::from_secs(10), || {
            let stats = server.stats();
            stats.open() == 0
                && server.buffer_pool().stats().in_use
                    == outside_rings + stats.ring_buffers as usize
        });
        assert!(
            settled,
            "connections or buffers leaked: stats {:?}, pool {:?}, baseline {:?}",
            server.stats(),
            server.buffer_pool().stats(),
            self.baseline
        );
        let pool = server.buffer_pool().clone();
        server.shutdown(Duration::from_secs(5));
        assert_eq!(
            pool.stats().in_use,
            0,
            "buffers still in use after shutdown"
        );
    }
}

/// Poll `cond` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    with_timeouts(TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"))
}

/// A client socket made ready for a test: reads and writes time out after
/// [`IO_TIMEOUT`], and small writes go out at once.
fn with_timeouts(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Read until end-of-file.
pub fn read_to_end(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Write `data` while a second thread reads the reply until EOF.
pub fn exchange(mut s: TcpStream, data: &[u8], shutdown_write: bool) -> io::Result<Vec<u8>> {
    let mut reader = s.try_clone()?;
    let t = std::thread::spawn(move || read_to_end(&mut reader));
    s.write_all(data)?;
    if shutdown_write {
        s.shutdown(std::net::Shutdown::Write)?;
    }
    t.join().expect("reader thread")
}

/// Hands each new connection's handle to the test; reads are ignored.
pub struct HandOut(Mutex<mpsc::Sender<ConnHandle>>);

impl Lifecycle for HandOut {
    type State = ();
}

impl Handler for HandOut {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        let _ = self.0.lock().unwrap().send(conn.handle());
    }
    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

/// A server whose connections' handles arrive on the returned receiver.
pub fn hand_out(engine: EngineChoice) -> (TestServer<HandOut>, mpsc::Receiver<ConnHandle>) {
    let (tx, rx) = mpsc::channel();
    (start(engine, HandOut(Mutex::new(tx))), rx)
}

/// `clients` connections at once each send `data`, half-close, and read the
/// reply to end-of-file; returns the replies.
pub fn exchange_from_clients<H: Handler>(
    t: &TestServer<H>,
    clients: usize,
    data: &[u8],
) -> Vec<Vec<u8>> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (s, data) = (t.connect(), data.to_vec());
            std::thread::spawn(move || exchange(s, &data, true).unwrap())
        })
        .collect();
    threads.into_iter().map(|c| c.join().unwrap()).collect()
}

/// A listener whose accepted sockets inherit a small, fixed send buffer
/// (`SO_SNDBUF` locks it; Linux copies it to accepted sockets), so that
/// bytes a client does not read stay in the server's write queue instead
/// of the kernel's.
pub fn small_sndbuf_listener() -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_reuse_address(true).unwrap();
    s.set_send_buffer_size(4096).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .expect("bind");
    s
}

/// A client with a small, fixed receive buffer (set before connecting, so
/// the window it offers stays small), with the usual timeouts.
pub fn connect_small_rcvbuf(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(4096).unwrap();
    s.connect_timeout(&addr.into(), IO_TIMEOUT)
        .expect("connect");
    with_timeouts(s.into())
}

/// A client connected from the local address `local` (port chosen by the
/// kernel), e.g. 127.0.0.2, with the usual timeouts.
pub fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(local, 0).into())
        .expect("bind the client's address");
    s.connect_timeout(&addr.into(), IO_TIMEOUT)
        .expect("connect");
    with_timeouts(s.into())
}

/// Read until end-of-file or an error; returns the bytes and how it ended
/// (`Ok(())` for end-of-file).
pub fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Err(e)),
        }
    }
}
