//! Every call into user code goes through one door (`driver/door.rs`): a
//! panic in a connection's callback aborts that connection only; a panic in
//! a callback that concerns no connection (`connect_failed`,
//! `server_event`) is logged; either way the server keeps serving. One test
//! per callback kind, on both engines.
//!
//! Each server has a single IO thread, so the connections that must still
//! be served afterwards share the thread the panic unwound on.

mod common;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use berth::servers::Echo;
use berth::{Closing, Conn, EngineChoice, Handler, IoBuf, Lifecycle, ServerEvent, Shutdown};
use common::*;

both_engines!(
    panic_in_connection_established_aborts_only_that_connection,
    panic_in_read_completed_aborts_only_that_connection,
    panic_in_write_completed_aborts_only_that_connection,
    panic_in_client_closed_aborts_only_that_connection,
    panic_in_closing_aborts_only_that_connection,
    panic_in_connection_reset_closes_only_that_connection,
    panic_in_connection_error_closes_only_that_connection,
    panic_in_connect_failed_is_logged_and_the_client_connects_on,
    panic_in_every_server_event_is_logged_and_the_server_serves_on,
    panic_in_state_default_refuses_only_that_connection,
    panic_in_state_default_when_renewing_a_closed_connections_state_is_contained,
    a_state_whose_drop_panics_does_not_stop_the_io_thread,
);

/// Every deliberate panic's message carries this; the panic hook stays
/// quiet about those (and only those).
const MARKER: &str = "[deliberate test panic]";

/// Silence the deliberate panics' messages; any other panic (a failing
/// assertion) is reported by the default hook as usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !msg.contains(MARKER) {
                default(info);
            }
        }));
    });
}

/// The connection callbacks (and `connect_failed`) a test can make panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callback {
    ConnectionEstablished,
    ReadCompleted,
    WriteCompleted,
    ClientClosed,
    Closing,
    ConnectionReset,
    ConnectionError,
    ConnectFailed,
}

/// Makes one callback panic, once, the first time it runs after `arm`.
struct Trap {
    callback: Callback,
    armed: AtomicBool,
    sprung: AtomicUsize,
}

impl Trap {
    fn new(callback: Callback) -> Self {
        Trap {
            callback,
            armed: AtomicBool::new(false),
            sprung: AtomicUsize::new(0),
        }
    }

    fn arm(&self) {
        self.armed.store(true, SeqCst);
    }

    fn sprung(&self) -> usize {
        self.sprung.load(SeqCst)
    }

    /// Called first thing in every callback: panics if `here` is armed.
    fn check(&self, here: Callback) {
        if here == self.callback && self.armed.swap(false, SeqCst) {
            self.sprung.fetch_add(1, SeqCst);
            panic!("{MARKER} in {here:?}");
        }
    }
}

/// What the `connection_error` victim asks for: a reply far larger than
/// the socket buffers between the server and a peer that never reads.
const FLOOD_REQUEST: &[u8] = b"flood";
const FLOOD: usize = 1 << 20;

/// An echo server with a trap in one callback.
struct Booby {
    trap: Trap,
    /// Bytes reported by `write_completed`.
    written: AtomicUsize,
}

impl Booby {
    fn new(callback: Callback) -> Self {
        Booby {
            trap: Trap::new(callback),
            written: AtomicUsize::new(0),
        }
    }
}

impl Lifecycle for Booby {
    type State = ();

    fn write_completed(&self, _: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.trap.check(Callback::WriteCompleted);
        self.written.fetch_add(buf.len(), SeqCst);
    }

    fn closing(&self, _: &mut Conn<'_>, _: &mut ()) -> Closing {
        self.trap.check(Callback::Closing);
        Closing::Default
    }

    fn connection_reset(&self, _: &mut Conn<'_>, _: &mut (), _: &io::Error) {
        self.trap.check(Callback::ConnectionReset);
    }

    fn connection_error(&self, _: &mut Conn<'_>, _: &mut (), _: &io::Error) {
        self.trap.check(Callback::ConnectionError);
    }
}

impl Handler for Booby {
    fn connection_established(&self, _: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        self.trap.check(Callback::ConnectionEstablished);
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.trap.check(Callback::ReadCompleted);
        if &buf[..] == FLOOD_REQUEST {
            conn.write(&pattern(FLOOD, 7)).unwrap();
        } else {
            conn.write_buf(buf).unwrap();
        }
    }

    fn client_closed(&self, _: &mut Conn<'_>, _: &mut ()) {
        self.trap.check(Callback::ClientClosed);
    }
}

/// Write `msg` and read it back.
fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back)
        .unwrap_or_else(|e| panic!("no echo of {msg:?}: {e}"));
    assert_eq!(back, msg);
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
}

/// Read until the server ends the connection: the bytes that came first,
/// and how it ended. Panics if it is not ended within `IO_TIMEOUT`.
fn read_until_end(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Eof),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (got, End::Reset),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("the server did not end the connection: {e}"),
        }
    }
}

/// The peer sees the abortive close a panic leads to: a reset.
fn assert_aborted(s: &mut TcpStream) -> Vec<u8> {
    let (got, end) = read_until_end(s);
    assert_eq!(end, End::Reset, "aborted, not closed (after {got:?})");
    got
}

/// The frame every connection-callback test shares. A bystander
/// connection is served first. Once the trap is armed, `victim` makes
/// `callback` panic on a connection of its own (and checks what its peer
/// saw). Then that connection must be closed, the trap sprung exactly
/// once, the bystander still served, a fresh connection served too, and
/// every buffer back in the pool.
fn only_the_victim_suffers(
    engine: EngineChoice,
    callback: Callback,
    victim: impl FnOnce(&TestServer<Booby>),
) {
    quiet_deliberate_panics();
    let t = start_with(builder(engine).io_threads(1), Booby::new(callback));
    only_the_victim_suffers_on(t, callback, victim);
}

fn only_the_victim_suffers_on(
    t: TestServer<Booby>,
    callback: Callback,
    victim: impl FnOnce(&TestServer<Booby>),
) {
    let h = t.handler();
    let mut bystander = t.connect();
    round_trip(&mut bystander, b"before");
    // The echo's `write_completed` may still be on its way: arm after it.
    assert!(eventually(IO_TIMEOUT, || h.written.load(SeqCst) == 6));
    h.trap.arm();
    victim(&t);
    assert!(
        eventually(IO_TIMEOUT, || h.trap.sprung() > 0),
        "{callback:?} was never called"
    );
    assert!(
        eventually(IO_TIMEOUT, || t.server().stats().open() == 1),
        "the victim's connection is still open: {:?}",
        t.server().stats()
    );
    assert_eq!(h.trap.sprung(), 1);
    round_trip(&mut bystander, b"after");
    let mut fresh = t.connect();
    round_trip(&mut fresh, b"fresh");
    drop((bystander, fresh));
    t.finish();
}

fn panic_in_connection_established_aborts_only_that_connection(engine: EngineChoice) {
    only_the_victim_suffers(engine, Callback::ConnectionEstablished, |t| {
        // The reset can come before the connect returns, and it reports it.
        match TcpStream::connect_timeout(&t.addr, IO_TIMEOUT) {
            Ok(mut v) => {
                v.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let got = assert_aborted(&mut v);
                assert!(got.is_empty());
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
    });
}

fn panic_in_read_completed_aborts_only_that_connection(engine: EngineChoice) {
    only_the_victim_suffers(engine, Callback::ReadCompleted, |t| {
        let mut v = t.connect();
        v.write_all(b"boom").unwrap();
        let got = assert_aborted(&mut v);
        assert!(got.is_empty(), "nothing echoed: {got:?}");
    });
}

fn panic_in_write_completed_aborts_only_that_connection(engine: EngineChoice) {
    only_the_victim_suffers(engine, Callback::WriteCompleted, |t| {
        let mut v = t.connect();
        v.write_all(b"boom").unwrap();
        // The echo was written before `write_completed` ran; it may arrive
        // ahead of the reset.
        let got = assert_aborted(&mut v);
        assert!(b"boom".starts_with(&got), "{got:?}");
    });
}

fn panic_in_client_closed_aborts_only_that_connection(engine: EngineChoice) {
    // Without the panic the half-close would end in a graceful close (EOF).
    only_the_victim_suffers(engine, Callback::ClientClosed, |t| {
        let mut v = t.connect();
        v.shutdown(std::net::Shutdown::Write).unwrap();
        assert_aborted(&mut v);
    });
}

fn panic_in_closing_aborts_only_that_connection(engine: EngineChoice) {
    // Without the panic `Closing::Default` would close gracefully (EOF).
    only_the_victim_suffers(engine, Callback::Closing, |t| {
        let mut v = t.connect();
        round_trip(&mut v, b"hi");
        v.shutdown(std::net::Shutdown::Write).unwrap();
        assert_aborted(&mut v);
    });
}

fn panic_in_connection_reset_closes_only_that_connection(engine: EngineChoice) {
    only_the_victim_suffers(engine, Callback::ConnectionReset, |t| {
        let mut v = t.connect();
        round_trip(&mut v, b"hi");
        socket2::SockRef::from(&v)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(v); // RST
    });
}

/// `connection_error` needs a read or write error that is not a reset
/// (ECONNRESET, EPIPE and ECONNABORTED go to `connection_reset`). On
/// loopback a live peer answers everything, so no retransmission ever times
/// out; but a peer that stops reading closes its receive window, and since
/// Linux 5.11 ("tcp: fix TCP_USER_TIMEOUT with zero window") a connection
/// whose window stays shut for longer than `TCP_USER_TIMEOUT` is dropped
/// with ETIMEDOUT. The listener sets that option (and a small send buffer),
/// and accepted sockets inherit both; the victim, with a small receive
/// buffer, asks for a reply far larger than both buffers and never reads.
fn panic_in_connection_error_closes_only_that_connection(engine: EngineChoice) {
    use socket2::{Domain, Socket, Type};
    quiet_deliberate_panics();
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .set_tcp_user_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    listener.set_send_buffer_size(16 * 1024).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let builder = builder(engine).io_threads(1).listener(listener);
    let t = start_with(builder, Booby::new(Callback::ConnectionError));
    only_the_victim_suffers_on(t, Callback::ConnectionError, |t| {
        let v = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        v.set_recv_buffer_size(4096).unwrap();
        v.connect_timeout(&t.addr.into(), IO_TIMEOUT).unwrap();
        let mut v = TcpStream::from(v);
        v.write_all(FLOOD_REQUEST).unwrap();
        // Keep the victim open (and unread) until the server gave up on it.
        let h = t.handler();
        assert!(
            eventually(IO_TIMEOUT, || h.trap.sprung() > 0),
            "connection_error was never called"
        );
    });
}

#[derive(Debug)]
enum Event {
    Failed(SocketAddr, io::ErrorKind),
    Data(Vec<u8>),
    ClientClosed,
}

/// An outbound client with a trap in `connect_failed`: it greets, half-closes
/// and reports what comes back.
struct Caller {
    trap: Trap,
    events: Mutex<mpsc::Sender<Event>>,
}

impl Caller {
    fn send(&self, e: Event) {
        let _ = self.events.lock().unwrap().send(e);
    }
}

impl Lifecycle for Caller {
    type State = ();

    fn connect_failed(&self, addr: SocketAddr, err: &io::Error) {
        self.trap.check(Callback::ConnectFailed);
        self.send(Event::Failed(addr, err.kind()));
    }
}

impl Handler for Caller {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        conn.write(b"hello").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.send(Event::Data(buf.to_vec()));
    }

    fn client_closed(&self, _: &mut Conn<'_>, _: &mut ()) {
        self.send(Event::ClientClosed);
    }
}

/// An address nothing listens on (a port freed just before).
fn refused_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn panic_in_connect_failed_is_logged_and_the_client_connects_on(engine: EngineChoice) {
    quiet_deliberate_panics();
    let server = start(engine, Echo::default());
    let (tx, events) = mpsc::channel();
    let caller = Caller {
        trap: Trap::new(Callback::ConnectFailed),
        events: Mutex::new(tx),
    };
    // One IO thread: every connect below is made by the thread that panicked.
    let c = builder(engine)
        .io_threads(1)
        .start_client(caller)
        .expect("client starts");
    c.handler().trap.arm();
    let refused = refused_addr();
    c.connect(refused, IO_TIMEOUT).unwrap();
    assert!(eventually(IO_TIMEOUT, || c.handler().trap.sprung() == 1));
    // The next failure is reported as usual (the trap is spent)...
    c.connect(refused, IO_TIMEOUT).unwrap();
    match events.recv_timeout(IO_TIMEOUT).expect("an event") {
        Event::Failed(addr, kind) => {
            assert_eq!(addr, refused);
            assert_eq!(kind, io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // ...and a connect to a live server is made and served.
    c.connect(server.addr, IO_TIMEOUT).unwrap();
    let mut echoed = Vec::new();
    loop {
        match events.recv_timeout(IO_TIMEOUT).expect("an event") {
            Event::Data(d) => echoed.extend(d),
            Event::ClientClosed => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, b"hello");
    assert_eq!(c.handler().trap.sprung(), 1);
    assert!(eventually(IO_TIMEOUT, || c.stats().open() == 0));
    let pool = c.buffer_pool().clone();
    c.shutdown(Duration::from_secs(5));
    assert_eq!(pool.stats().in_use, 0, "the client's buffers came back");
    server.finish();
}

/// Notes every server event, then panics in it. An echo server otherwise.
struct Noisy {
    seen: Arc<Mutex<Vec<&'static str>>>,
}

impl Lifecycle for Noisy {
    type State = ();

    fn server_event(&self, event: ServerEvent<'_>) {
        let name = match event {
            ServerEvent::Started { .. } => "Started",
            ServerEvent::Stopped => "Stopped",
            ServerEvent::AcceptingPaused => "AcceptingPaused",
            ServerEvent::AcceptingResumed => "AcceptingResumed",
            ServerEvent::AcceptBackoff { .. } => "AcceptBackoff",
            ServerEvent::ConnectionOpened { .. } => "ConnectionOpened",
            ServerEvent::ConnectionClosed { .. } => "ConnectionClosed",
            _ => "another event",
        };
        self.seen.lock().unwrap().push(name);
        panic!("{MARKER} in server_event({name})");
    }
}

impl Handler for Noisy {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        conn.write_buf(buf).unwrap();
    }
}

fn panic_in_every_server_event_is_logged_and_the_server_serves_on(engine: EngineChoice) {
    quiet_deliberate_panics();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = |name| seen.lock().unwrap().iter().filter(|&&n| n == name).count();
    let t = start_with(
        builder(engine).io_threads(1),
        Noisy {
            seen: Arc::clone(&seen),
        },
    );
    assert_eq!(count("Started"), 1);
    // A panic in `ConnectionOpened` is only logged: the connection is served.
    let mut first = t.connect();
    round_trip(&mut first, b"one");
    assert_eq!(count("ConnectionOpened"), 1);
    let control = t.server().handle();
    control.pause_accepting();
    assert!(eventually(IO_TIMEOUT, || count("AcceptingPaused") == 1));
    round_trip(&mut first, b"paused");
    control.resume_accepting();
    assert!(eventually(IO_TIMEOUT, || count("AcceptingResumed") == 1));
    let mut second = t.connect();
    round_trip(&mut second, b"two");
    drop(first);
    assert!(eventually(IO_TIMEOUT, || count("ConnectionClosed") == 1));
    round_trip(&mut second, b"still");
    let mut third = t.connect();
    round_trip(&mut third, b"three");
    drop((second, third));
    // `Stopped` panics too; the shutdown still completes.
    t.finish();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "Started",
            "ConnectionOpened",
            "AcceptingPaused",
            "AcceptingResumed",
            "ConnectionOpened",
            "ConnectionClosed",
            "ConnectionOpened",
            "ConnectionClosed",
            "ConnectionClosed",
            "Stopped",
        ]
    );
}

thread_local! {
    /// Set on an IO thread: the next `FragileState` made there panics.
    static DEFAULT_ARMED: Cell<bool> = const { Cell::new(false) };
    /// How often that happened on this thread.
    static DEFAULT_SPRUNG: Cell<u8> = const { Cell::new(0) };
}

/// A connection state whose `Default` can be made to panic. The trap is a
/// thread-local of the IO thread (armed through the connection, below), so
/// tests running side by side do not trip each other's.
struct FragileState;

impl Default for FragileState {
    fn default() -> Self {
        if DEFAULT_ARMED.replace(false) {
            DEFAULT_SPRUNG.set(DEFAULT_SPRUNG.get() + 1);
            panic!("{MARKER} in State::default");
        }
        FragileState
    }
}

/// An echo server with a `FragileState`: a connection that sends `arm`
/// arms the trap on its IO thread; one that sends `sprung?` learns how
/// often it sprang there.
struct Fragile;

impl Lifecycle for Fragile {
    type State = FragileState;
}

impl Handler for Fragile {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut FragileState, buf: IoBuf) {
        match &buf[..] {
            b"arm" => {
                DEFAULT_ARMED.set(true);
                conn.write(b"armed").unwrap();
            }
            b"sprung?" => conn.write(&[b'0' + DEFAULT_SPRUNG.get()]).unwrap(),
            _ => conn.write_buf(buf).unwrap(),
        }
    }
}

/// Ask the server how often `FragileState::default` panicked.
fn default_sprung(s: &mut TcpStream) -> u8 {
    s.write_all(b"sprung?").unwrap();
    let mut n = [0u8];
    s.read_exact(&mut n).unwrap();
    n[0] - b'0'
}

fn arm_default(s: &mut TcpStream) {
    s.write_all(b"arm").unwrap();
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"armed");
}

fn panic_in_state_default_refuses_only_that_connection(engine: EngineChoice) {
    quiet_deliberate_panics();
    let t = start_with(builder(engine).io_threads(1), Fragile);
    let mut bystander = t.connect();
    round_trip(&mut bystander, b"before");
    // No connection has closed yet, so none is kept for reuse: the next
    // connection's state is made with `Default`.
    arm_default(&mut bystander);
    let mut victim = t.connect();
    let (got, _eof_or_reset) = read_until_end(&mut victim);
    assert!(got.is_empty());
    assert_eq!(default_sprung(&mut bystander), 1);
    assert_eq!(t.server().stats().accepted, 1, "the victim was refused");
    round_trip(&mut bystander, b"after");
    let mut fresh = t.connect();
    round_trip(&mut fresh, b"fresh");
    drop((bystander, fresh, victim));
    t.finish();
}

fn panic_in_state_default_when_renewing_a_closed_connections_state_is_contained(
    engine: EngineChoice,
) {
    quiet_deliberate_panics();
    let t = start_with(builder(engine).io_threads(1), Fragile);
    let mut bystander = t.connect();
    let mut victim = t.connect();
    round_trip(&mut bystander, b"before");
    round_trip(&mut victim, b"victim");
    // A closed connection's state is replaced with a fresh one, so that
    // the connection object can be reused: that `Default` panics.
    arm_default(&mut bystander);
    victim.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, end) = read_until_end(&mut victim);
    assert_eq!((got.len(), end), (0, End::Eof), "a normal close");
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 1));
    assert_eq!(default_sprung(&mut bystander), 1);
    round_trip(&mut bystander, b"after");
    // The object was not kept: this connection's state is made anew.
    let mut fresh = t.connect();
    round_trip(&mut fresh, b"fresh");
    assert_eq!(default_sprung(&mut fresh), 1);
    drop((bystander, fresh, victim));
    t.finish();
}

/// A connection state with a drop bomb, as a user might write to catch a
/// session that was never used: dropping one that saw no data panics.
#[derive(Default)]
struct Bomb {
    served: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if !self.served {
            panic!("{MARKER} in State::drop");
        }
    }
}

/// An echo server whose connections' state is a `Bomb`.
struct Bombs;

impl Lifecycle for Bombs {
    type State = Bomb;
}

impl Handler for Bombs {
    fn read_completed(&self, conn: &mut Conn<'_>, state: &mut Bomb, buf: IoBuf) {
        state.served = true;
        conn.write_buf(buf).unwrap();
    }
}

// Regression: a state dropped with a connection object that was not kept
// for reuse, or with the objects kept when the IO thread ended, was
// dropped outside the door, so its panic ended the IO thread (or, for a
// second one during that unwinding, the process).
fn a_state_whose_drop_panics_does_not_stop_the_io_thread(engine: EngineChoice) {
    quiet_deliberate_panics();
    let t = start_with(builder(engine).io_threads(1), Bombs);
    let closed = |n| eventually(IO_TIMEOUT, || t.server().stats().closed == n);
    // Served, then closed: the object is kept for reuse, its state renewed
    // (the served one drops quietly; the fresh one is not served).
    let mut a = t.connect();
    round_trip(&mut a, b"a");
    drop(a);
    assert!(closed(1));
    // This connection reuses that object and closes unserved. Renewing its
    // state drops an unserved one: a panic, so the object is not kept, and
    // the fresh state made meanwhile is dropped with it: another panic.
    drop(t.connect());
    assert!(closed(2));
    // Both were contained: the IO thread serves on.
    let mut c = t.connect();
    let mut d = t.connect();
    round_trip(&mut c, b"c");
    round_trip(&mut d, b"d");
    drop((c, d));
    assert!(closed(4));
    // Their objects are kept for reuse, with unserved states: each panics
    // when the IO thread drops it at shutdown.
    t.finish();
}
