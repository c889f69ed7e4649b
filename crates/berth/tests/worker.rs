//! The worker pool over real loopback sockets, on both engines.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use berth::{
    Conn, ConnError, ConnHandle, EngineChoice, Handler, IoBuf, Lifecycle, WorkerPool, WorkerStats,
};
use common::*;

both_engines!(
    replies_come_back_in_line_order,
    connections_run_in_parallel,
    jobs_of_one_connection_never_overlap,
    flooding_client_is_paused_then_resumed,
    panicking_job_aborts_only_its_connection,
    jobs_of_a_closed_connection_still_run_and_are_forgotten,
    submit_to_from_another_thread_keeps_order,
    stats_add_up,
);

/// The read buffer size of the test servers (see `common::builder`).
const READ_SIZE: usize = 4096;

type Job = Box<dyn FnOnce(&ConnHandle) + Send>;
type MakeJob = Box<dyn Fn(Vec<u8>, &mut Lines) -> Job + Send + Sync>;

/// Per-connection state: the partial line, and a flag shared with its jobs.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    running: Arc<AtomicBool>,
}

/// Submits one job per received line, from the read callback.
struct LineJobs {
    pool: WorkerPool,
    make: MakeJob,
    /// The most jobs seen waiting on one connection, after any submission.
    max_pending: AtomicUsize,
}

impl Lifecycle for LineJobs {
    type State = Lines;
}

impl Handler for LineJobs {
    fn read_completed(&self, conn: &mut Conn<'_>, st: &mut Lines, buf: IoBuf) {
        st.partial.extend_from_slice(&buf);
        while let Some(end) = st.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = st.partial.drain(..=end).collect();
            let job = (self.make)(line, st);
            self.pool.submit(conn, job).unwrap();
            let pending = self.pool.pending(conn.id());
            self.max_pending.fetch_max(pending, SeqCst);
        }
    }
}

fn pool(threads: usize, bound: usize) -> WorkerPool {
    WorkerPool::builder()
        .threads(threads)
        .queue_per_connection(bound)
        .name("test-worker")
        .build()
        .unwrap()
}

fn start_lines(
    engine: EngineChoice,
    pool: &WorkerPool,
    make: impl Fn(Vec<u8>, &mut Lines) -> Job + Send + Sync + 'static,
) -> TestServer<LineJobs> {
    start(
        engine,
        LineJobs {
            pool: pool.clone(),
            make: Box::new(make),
            max_pending: AtomicUsize::new(0),
        },
    )
}

/// A small pseudo-random delay derived from `data` (FNV-1a).
fn jitter(data: &[u8], max_micros: u64) -> Duration {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Duration::from_micros(h % max_micros)
}

fn numbered(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect()
}

fn echo_after(max_micros: u64) -> impl Fn(Vec<u8>, &mut Lines) -> Job + Send + Sync + 'static {
    move |line, _| {
        Box::new(move |h: &ConnHandle| {
            std::thread::sleep(jitter(&line, max_micros));
            let _ = h.write(&line);
        })
    }
}

/// Wait until `pool` is idle and has forgotten every connection.
fn settled(pool: &WorkerPool) -> WorkerStats {
    eventually(IO_TIMEOUT, || {
        let s = pool.stats();
        s.queued == 0 && s.busy == 0 && s.connections == 0
    });
    pool.stats()
}

fn replies_come_back_in_line_order(engine: EngineChoice) {
    let pool = pool(4, 16);
    let t = start_lines(engine, &pool, echo_after(300));
    let data = numbered(500);
    for reply in exchange_from_clients(&t, 3, &data) {
        assert!(reply == data, "replies out of order or missing");
    }
    assert_eq!(settled(&pool).completed, 1500);
    t.finish();
}

/// Releases everyone once `n` have arrived, or reports a timeout.
struct Rendezvous {
    n: usize,
    arrived: Mutex<usize>,
    cv: Condvar,
}

impl Rendezvous {
    fn arrive_and_wait(&self, timeout: Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.cv.notify_all();
        let (arrived, _) = self
            .cv
            .wait_timeout_while(arrived, timeout, |a| *a < self.n)
            .unwrap();
        *arrived >= self.n
    }
}

fn connections_run_in_parallel(engine: EngineChoice) {
    const N: usize = 4;
    let pool = pool(N, 8);
    let meet = Arc::new(Rendezvous {
        n: N,
        arrived: Mutex::new(0),
        cv: Condvar::new(),
    });
    let m = Arc::clone(&meet);
    let t = start_lines(engine, &pool, move |_, _| {
        let m = Arc::clone(&m);
        Box::new(move |h: &ConnHandle| {
            let met = m.arrive_and_wait(Duration::from_secs(10));
            h.write(if met { b"met\n" } else { b"timeout\n" }).unwrap();
        })
    });
    let mut clients: Vec<_> = (0..N).map(|_| t.connect()).collect();
    for c in &mut clients {
        c.write_all(b"go\n").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
    for c in &mut clients {
        assert_eq!(read_to_end(c).unwrap(), b"met\n", "jobs did not overlap");
    }
    assert_eq!(settled(&pool).completed, N as u64);
    drop(clients);
    t.finish();
}

fn jobs_of_one_connection_never_overlap(engine: EngineChoice) {
    let pool = pool(8, 8);
    let overlaps = Arc::new(AtomicUsize::new(0));
    let o = Arc::clone(&overlaps);
    let t = start_lines(engine, &pool, move |line, st| {
        let (running, o) = (Arc::clone(&st.running), Arc::clone(&o));
        Box::new(move |h: &ConnHandle| {
            if running.swap(true, SeqCst) {
                o.fetch_add(1, SeqCst);
            }
            std::thread::sleep(jitter(&line, 200));
            running.store(false, SeqCst);
            let _ = h.write(&line);
        })
    });
    let data = numbered(150);
    for reply in exchange_from_clients(&t, 8, &data) {
        assert!(reply == data);
    }
    assert_eq!(
        overlaps.load(SeqCst),
        0,
        "jobs of one connection overlapped"
    );
    t.finish();
}

fn flooding_client_is_paused_then_resumed(engine: EngineChoice) {
    const BOUND: usize = 64;
    const LINE: usize = 200;
    const LINES: usize = 3000;
    // A read of READ_SIZE bytes completes at most this many lines. It is
    // below BOUND - BOUND / 2, so the pool's bound is exact (module docs).
    const PER_READ: usize = READ_SIZE.div_ceil(LINE);
    let pool = pool(2, BOUND);
    let t = start_lines(engine, &pool, |line, _| {
        Box::new(move |h: &ConnHandle| {
            std::thread::sleep(Duration::from_micros(100));
            let mut number = line[..6].to_vec();
            number.push(b'\n');
            h.write(&number).unwrap();
        })
    });
    let data: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("{i:06}{}\n", "x".repeat(LINE - 7)).into_bytes())
        .collect();
    assert_eq!(data.len(), LINES * LINE);
    let got = exchange(t.connect(), &data, true).unwrap();
    let want: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("{i:06}\n").into_bytes())
        .collect();
    assert!(got == want, "replies missing or out of order");
    let max = t.handler().max_pending.load(SeqCst);
    assert!(max >= BOUND, "the queue never filled (max {max})");
    assert!(
        max <= BOUND + PER_READ,
        "queue grew to {max}, past the bound {BOUND} + one read ({PER_READ})"
    );
    let s = settled(&pool);
    assert!(s.read_pauses >= 1);
    assert_eq!(s.completed, LINES as u64);
    t.finish();
}

fn panicking_job_aborts_only_its_connection(engine: EngineChoice) {
    let pool = pool(1, 8); // one worker: it must survive the panic
    let t = start_lines(engine, &pool, |line, _| {
        Box::new(move |h: &ConnHandle| {
            assert!(line != b"panic\n", "job bug triggered on purpose");
            h.write(&line).unwrap();
        })
    });
    let mut good = BufReader::new(t.connect());
    let ask = |s: &mut BufReader<TcpStream>, q: &[u8]| {
        s.get_mut().write_all(q).unwrap();
        let mut reply = String::new();
        s.read_line(&mut reply).unwrap();
        assert_eq!(reply.as_bytes(), q);
    };
    ask(&mut good, b"before\n");
    let mut bad = t.connect();
    bad.write_all(b"panic\n").unwrap();
    let err = bad.read(&mut [0u8; 8]).expect_err("aborted");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    ask(&mut good, b"after\n");
    drop((good, bad));
    let s = settled(&pool);
    assert_eq!((s.panicked, s.completed), (1, 2));
    t.finish();
}

fn jobs_of_a_closed_connection_still_run_and_are_forgotten(engine: EngineChoice) {
    let pool = pool(2, 64);
    let closed = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&closed);
    let t = start_lines(engine, &pool, move |line, _| {
        let c = Arc::clone(&c);
        Box::new(move |h: &ConnHandle| {
            if line == b"abort\n" {
                h.abort().unwrap();
                return;
            }
            assert!(eventually(IO_TIMEOUT, || !h.is_open()));
            if h.write(&line) == Err(ConnError::Closed) {
                c.fetch_add(1, SeqCst);
            }
        })
    });
    let mut s = t.connect();
    let mut data = b"abort\n".to_vec();
    data.extend(numbered(20));
    s.write_all(&data).unwrap();
    let err = read_to_end(&mut s).expect_err("aborted");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let stats = settled(&pool);
    assert_eq!(
        closed.load(SeqCst),
        20,
        "every later job ran and saw Closed"
    );
    assert_eq!((stats.completed, stats.connections), (21, 0));
    drop(s);
    t.finish();
}

fn submit_to_from_another_thread_keeps_order(engine: EngineChoice) {
    let pool = pool(4, 8);
    let (t, rx) = hand_out(engine);
    let mut s = t.connect();
    let h = rx.recv_timeout(IO_TIMEOUT).unwrap();
    let want = numbered(300);
    for line in want.split_inclusive(|&b| b == b'\n') {
        let line = line.to_vec();
        pool.submit_to(&h, move |h: &ConnHandle| {
            std::thread::sleep(jitter(&line, 100));
            h.write(&line).unwrap();
        })
        .unwrap();
    }
    pool.submit_to(&h, |h: &ConnHandle| h.close().unwrap())
        .unwrap();
    drop(h);
    assert!(read_to_end(&mut s).unwrap() == want);
    assert_eq!(settled(&pool).completed, 301);
    drop(s);
    t.finish();
}

fn stats_add_up(engine: EngineChoice) {
    const CONNS: usize = 20;
    const LINES: usize = 25;
    let pool = pool(4, 8);
    let t = start_lines(engine, &pool, echo_after(50));
    let data = numbered(LINES);
    for reply in exchange_from_clients(&t, CONNS, &data) {
        assert!(reply == data);
    }
    let s = settled(&pool);
    let want = WorkerStats {
        threads: 4,
        completed: (CONNS * LINES) as u64,
        read_pauses: s.read_pauses,
        ..WorkerStats::default()
    };
    assert_eq!(s, want);
    t.finish();
}
