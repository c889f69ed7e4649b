//! Running out of descriptors: accepting backs off (from 10 ms, doubling)
//! instead of spinning, established connections are unaffected, and
//! accepting resumes once descriptors are free again.
//!
//! The test fills the process's descriptor table up to its limit, so this
//! file holds one test, which runs each engine in turn.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use berth::{Conn, EngineChoice, Handler, IoBuf, Lifecycle, ServerEvent};
use common::*;

/// Echoes, and counts accept back-offs.
#[derive(Default)]
struct Counting {
    backoffs: AtomicUsize,
}

impl Lifecycle for Counting {
    type State = ();

    fn server_event(&self, event: ServerEvent<'_>) {
        if let ServerEvent::AcceptBackoff { .. } = event {
            self.backoffs.fetch_add(1, SeqCst);
        }
    }
}

impl Handler for Counting {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }
}

/// The soft limit on open descriptors, from `/proc/self/limits`.
fn nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    line.split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .expect("a numeric soft limit")
}

/// The most descriptors this test will take up to the limit.
const MAX_FILL: u64 = 65_536;

fn echo_once(c: &mut std::net::TcpStream) {
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

fn out_of_descriptors(engine: EngineChoice) {
    let t = start(engine, Counting::default());
    let mut established = t.connect();
    echo_once(&mut established);
    // Take every descriptor left but one.
    let mut filler = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        filler.push(f);
    }
    drop(filler.pop());
    // The client takes the last descriptor; the server cannot accept it.
    let mut waiting = connect(t.addr);
    assert!(
        eventually(IO_TIMEOUT, || t.handler().backoffs.load(SeqCst) >= 1),
        "{engine:?}: no back-off when descriptors ran out"
    );
    std::thread::sleep(Duration::from_millis(200));
    // 10 + 20 + 40 + 80 ms: a few back-offs, not one per failed accept.
    let backoffs = t.handler().backoffs.load(SeqCst);
    assert!(
        backoffs <= 6,
        "{engine:?}: {backoffs} back-offs in 200 ms (one per accept in flight?)"
    );
    // Established connections are still served.
    echo_once(&mut established);
    // Free descriptors: the waiting client is accepted and served.
    drop(filler);
    echo_once(&mut waiting);
    drop((established, waiting));
    t.finish();
}

#[test]
fn running_out_of_descriptors_backs_off_and_recovers() {
    let limit = nofile_limit();
    if limit > MAX_FILL {
        eprintln!("skipped: the descriptor limit ({limit}) is too high to fill");
        return;
    }
    for engine in [EngineChoice::Uring, EngineChoice::Epoll] {
        out_of_descriptors(engine);
    }
}
