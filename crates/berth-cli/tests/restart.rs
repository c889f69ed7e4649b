//! The operator's restart with `--reuse-port` (issue #16, requirement 6):
//! instance A serves; instance B starts on the same address; A is told to
//! stop (SIGTERM here; `berth ctl shutdown` starts the same drain).
//! Clients that each open a connection every 2 ms and echo through each
//! one see nothing refused, reset or left unanswered, and both instances
//! served some of their connections. Once per engine.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{Running, TIMEOUT, berth, both_engines};

both_engines!(a_restart_with_reuse_port_refuses_resets_and_drops_nothing);

/// The echo server's log line for each connection it takes (with `-v`).
const ESTABLISHED: &str = "connection opened";

/// Clients, each opening a connection every ~2 ms: more than one, so that
/// connections are in every stage of their handshake when A stops.
const CLIENTS: usize = 4;

/// The bound on each step of one exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

fn instance(engine: &str, listen: &str) -> Running {
    Running::spawn(berth(&[
        "echo",
        "--listen",
        listen,
        "--engine",
        engine,
        "--reuse-port",
        "--io-threads",
        "2",
        "-v",
    ]))
}

/// What became of the client's connections.
#[derive(Debug, Default)]
struct Tally {
    echoed: usize,
    refused: usize,
    reset: usize,
    /// Closed before the whole echo came back, or no echo in time.
    unanswered: usize,
    /// The first few failures, for the assertion's message.
    failures: Vec<String>,
}

impl Tally {
    fn add(mut self, other: Tally) -> Tally {
        self.echoed += other.echoed;
        self.refused += other.refused;
        self.reset += other.reset;
        self.unanswered += other.unanswered;
        self.failures.extend(other.failures);
        self
    }
}

enum Outcome {
    Refused,
    Reset,
    Unanswered,
}

fn classify(err: &io::Error) -> Outcome {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Outcome::Reset,
        _ => Outcome::Unanswered,
    }
}

/// Connect, send a line, read its echo; close.
fn exchange(addr: SocketAddr, n: usize) -> Result<(), (Outcome, String)> {
    let fail = |what: &str, err: io::Error| (classify(&err), format!("#{n} {what}: {err}"));
    let mut s =
        TcpStream::connect_timeout(&addr, EXCHANGE_TIMEOUT).map_err(|e| fail("connect", e))?;
    s.set_read_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    let line = format!("connection {n}\n").into_bytes();
    s.write_all(&line).map_err(|e| fail("write", e))?;
    let mut echo = vec![0u8; line.len()];
    s.read_exact(&mut echo).map_err(|e| fail("read", e))?;
    if echo != line {
        return Err((Outcome::Unanswered, format!("#{n}: echo differs")));
    }
    Ok(())
}

/// A connection every ~2 ms until `stop`.
fn client(addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<Tally> {
    std::thread::spawn(move || {
        let mut tally = Tally::default();
        let mut n = 0;
        while !stop.load(Ordering::Acquire) {
            n += 1;
            match exchange(addr, n) {
                Ok(()) => tally.echoed += 1,
                Err((outcome, why)) => {
                    match outcome {
                        Outcome::Refused => tally.refused += 1,
                        Outcome::Reset => tally.reset += 1,
                        Outcome::Unanswered => tally.unanswered += 1,
                    }
                    if tally.failures.len() < 10 {
                        tally.failures.push(why);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tally
    })
}

/// Poll `cond` every few milliseconds; fail after `TIMEOUT`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn a_restart_with_reuse_port_refuses_resets_and_drops_nothing(engine: &str) {
    let mut a = instance(engine, "127.0.0.1:0");
    let addr = a.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| client(addr, Arc::clone(&stop)))
        .collect();
    wait_until("A serves", || a.count(ESTABLISHED) >= 5);

    let mut b = instance(engine, &addr.to_string());
    wait_until("B serves beside A", || b.count(ESTABLISHED) >= 5);

    a.signal("-TERM");
    assert!(a.wait_exit().success(), "A exits cleanly");
    a.read_log_to_end();
    for step in [
        "handing over",
        "listener closed after the handover",
        "stopped",
    ] {
        assert!(a.count(step) == 1, "A logs {step:?}: {:#?}", a.log);
    }

    // The client carries on against B alone.
    let before = b.count(ESTABLISHED);
    wait_until("B serves alone", || b.count(ESTABLISHED) >= before + 200);
    stop.store(true, Ordering::Release);
    let tally = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .fold(Tally::default(), Tally::add);

    assert_eq!(
        (tally.refused, tally.reset, tally.unanswered),
        (0, 0, 0),
        "refused, reset, unanswered: {tally:#?}"
    );
    let served_by_a = a.count(ESTABLISHED);
    assert!(served_by_a > 0, "A served some");
    // Each connection was taken by exactly one instance.
    wait_until("B has logged every connection it took", || {
        served_by_a + b.count(ESTABLISHED) >= tally.echoed
    });
    assert_eq!(served_by_a + b.count(ESTABLISHED), tally.echoed);

    b.signal("-TERM");
    assert!(b.wait_exit().success(), "B exits cleanly");
}
