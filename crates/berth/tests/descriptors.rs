//! Running out of descriptors: accepting backs off (from 10 ms, doubling)
//! instead of spinning, established connections are unaffected, and
//! accepting resumes once descriptors are free again.
//!
//! The descriptor limit is per process, so this file holds one test, which
//! runs each engine in turn.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use berth::{Conn, EngineChoice, Handler, IoBuf, ServerEvent};
use common::*;

/// Echoes, and counts accept back-offs.
#[derive(Default)]
struct Counting {
    backoffs: AtomicUsize,
}

impl Handler for Counting {
    type State = ();

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        if let ServerEvent::AcceptBackoff { .. } = event {
            self.backoffs.fetch_add(1, SeqCst);
        }
    }
}

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write into.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_nofile(lim: libc::rlimit) {
    // SAFETY: `lim` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

fn echo_once(c: &mut std::net::TcpStream) {
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

fn out_of_descriptors(engine: EngineChoice) {
    // A low limit, set before the server starts: io_uring reads it when an
    // accept is submitted, not when it runs.
    let saved = nofile();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    set_nofile(libc::rlimit {
        rlim_cur: open + 64,
        rlim_max: saved.rlim_max,
    });
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
    set_nofile(saved);
    echo_once(&mut waiting);
    drop((established, waiting));
    t.finish();
}

#[test]
fn running_out_of_descriptors_backs_off_and_recovers() {
    for engine in [EngineChoice::Uring, EngineChoice::Epoll] {
        out_of_descriptors(engine);
    }
}
