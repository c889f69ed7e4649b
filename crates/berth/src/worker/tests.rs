//! Unit tests of the worker pool against connections without a server: the
//! operations a pool sends to a connection are read back from its mailbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use super::*;
use crate::buffer::BufPool;
use crate::conn::ConnEnv;
use crate::driver::key::Key;
use crate::driver::limits::{Limits, WriteBudget};
use crate::driver::mailbox::{Command, ConnOp, Mailbox};
use crate::driver::state::ConnState;

const WAIT: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}

/// A connection's IO-thread side, without an IO thread.
struct Fake {
    st: ConnState,
    pool: BufPool,
    mailbox: Arc<Mailbox>,
    budget: WriteBudget,
}

impl Fake {
    fn new(n: u64) -> Self {
        Fake {
            st: ConnState::new(
                ConnId(n << 8),
                Key {
                    idx: 0,
                    generation: 0,
                },
                "127.0.0.1:9".parse().unwrap(),
            ),
            pool: BufPool::new(64, 4),
            mailbox: Arc::new(Mailbox::new(true).unwrap()),
            budget: WriteBudget::new(Limits::unlimited()),
        }
    }

    /// Run `f` as if inside a callback.
    fn conn<R>(&mut self, f: impl FnOnce(&mut Conn<'_>) -> R) -> R {
        let mut conn = Conn {
            st: &mut self.st,
            env: ConnEnv {
                pool: &self.pool,
                mailbox: &self.mailbox,
                budget: &mut self.budget,
                now: 0,
            },
        };
        f(&mut conn)
    }

    /// The flow-control operations sent to the connection so far.
    fn ops(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(cmd) = self.mailbox.pop() {
            if let Command::Conn { op, .. } = cmd {
                out.push(match op {
                    ConnOp::PauseRead => "pause",
                    ConnOp::ResumeRead => "resume",
                    ConnOp::Abort => "abort",
                    ConnOp::Released => "released",
                    _ => "other",
                });
            }
        }
        out
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

/// Jobs that each wait for one `open` before returning, reporting their start.
struct Gate {
    started: Receiver<usize>,
    started_tx: Sender<usize>,
    open: Sender<()>,
    open_rx: Arc<Mutex<Receiver<()>>>,
}

impl Gate {
    fn new() -> Self {
        let (started_tx, started) = mpsc::channel();
        let (open, open_rx) = mpsc::channel();
        Gate {
            started,
            started_tx,
            open,
            open_rx: Arc::new(Mutex::new(open_rx)),
        }
    }

    fn job(&self, n: usize) -> impl FnOnce(&ConnHandle) + Send + 'static {
        let (started, open) = (self.started_tx.clone(), Arc::clone(&self.open_rx));
        move |_| {
            started.send(n).unwrap();
            let _ = lock(&open).recv_timeout(WAIT);
        }
    }

    fn wait_started(&self, n: usize) {
        assert_eq!(self.started.recv_timeout(WAIT).unwrap(), n);
    }
}

#[test]
fn builder_rejects_zero_sizes() {
    let e = WorkerPool::builder().threads(0).build().unwrap_err();
    assert!(matches!(e, WorkerBuildError::NoThreads));
    let e = WorkerPool::builder()
        .queue_per_connection(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, WorkerBuildError::NoQueue));
}

#[test]
fn jobs_of_one_connection_run_in_submission_order() {
    let p = pool(4, 1000);
    let mut c = Fake::new(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    for i in 0..300 {
        let seen = Arc::clone(&seen);
        c.conn(|conn| p.submit(conn, move |_| lock(&seen).push(i)))
            .unwrap();
    }
    let stats = p.clone();
    assert!(p.shutdown(WAIT));
    assert_eq!(*lock(&seen), (0..300).collect::<Vec<_>>());
    let s = stats.stats();
    assert_eq!(
        (s.completed, s.queued, s.busy, s.connections),
        (300, 0, 0, 0)
    );
}

#[test]
fn full_queue_pauses_at_once_and_low_water_resumes() {
    let p = pool(1, 4);
    let gate = Gate::new();
    let mut c = Fake::new(1);
    c.conn(|conn| p.submit(conn, gate.job(0))).unwrap();
    gate.wait_started(0);
    // Job 0 runs; jobs 1..=4 wait. The fourth fills the queue.
    for n in 1..=4 {
        let paused = c.conn(|conn| {
            p.submit(conn, gate.job(n)).unwrap();
            conn.is_reading_paused()
        });
        assert_eq!(paused, n == 4, "after submitting job {n}");
    }
    assert_eq!(p.pending(c.st.id), 4);
    assert_eq!(p.stats().read_pauses, 1);
    // Job 1 starts: 3 waiting, above the low-water mark of 2.
    gate.open.send(()).unwrap();
    gate.wait_started(1);
    assert_eq!(c.ops(), Vec::<&str>::new());
    // Job 2 starts: 2 waiting, reading resumes.
    gate.open.send(()).unwrap();
    gate.wait_started(2);
    assert_eq!(c.ops(), ["resume"]);
    for n in 3..=4 {
        gate.open.send(()).unwrap();
        gate.wait_started(n);
    }
    gate.open.send(()).unwrap();
    let stats = p.clone();
    assert!(p.shutdown(WAIT));
    assert_eq!(c.ops(), ["released"], "the queue's handle is dropped");
    assert_eq!(stats.stats().completed, 5);
}

#[test]
fn submit_to_pauses_through_the_handle_once() {
    let p = pool(1, 2);
    let gate = Gate::new();
    let mut c = Fake::new(1);
    let h = c.conn(|conn| conn.handle());
    p.submit_to(&h, gate.job(0)).unwrap();
    gate.wait_started(0);
    for n in 1..=4 {
        p.submit_to(&h, gate.job(n)).unwrap();
    }
    assert_eq!(c.ops(), ["pause"]);
    assert!(!c.conn(|conn| conn.is_reading_paused()));
    for n in 1..=4 {
        gate.open.send(()).unwrap();
        gate.wait_started(n);
    }
    gate.open.send(()).unwrap();
    let stats = p.clone();
    assert!(p.shutdown(WAIT));
    // Job 3 started with 1 waiting (the low-water mark for a bound of 2).
    assert_eq!(c.ops(), ["resume"]);
    assert_eq!(stats.stats().read_pauses, 1);
    drop(h);
}

#[test]
fn panicking_job_aborts_its_connection_and_the_worker_survives() {
    let p = pool(1, 8);
    let mut bad = Fake::new(1);
    let mut good = Fake::new(2);
    let (tx, rx) = mpsc::channel();
    bad.conn(|conn| p.submit(conn, |_| panic!("job bug triggered on purpose")))
        .unwrap();
    good.conn(|conn| p.submit(conn, move |_| tx.send(()).unwrap()))
        .unwrap();
    rx.recv_timeout(WAIT)
        .expect("the only worker is still alive");
    let stats = p.clone();
    assert!(p.shutdown(WAIT));
    assert_eq!(bad.ops(), ["abort", "released"]);
    assert_eq!(good.ops(), ["released"]);
    let s = stats.stats();
    assert_eq!((s.panicked, s.completed, s.connections), (1, 1, 0));
}

#[test]
fn queues_are_forgotten_once_empty() {
    let p = pool(4, 8);
    let mut conns: Vec<_> = (1..=100).map(Fake::new).collect();
    for c in &mut conns {
        c.conn(|conn| p.submit(conn, |_| ())).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while p.stats().connections > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    let s = p.stats();
    assert_eq!((s.connections, s.completed), (0, 100));
    // A worker drops its reference to a queue just after forgetting it;
    // once the workers are joined every queue's handle is gone.
    assert!(p.shutdown(WAIT));
    for c in &conns {
        assert_eq!(c.ops(), ["released"]);
    }
}

#[test]
fn shutdown_runs_queued_jobs_then_refuses_new_ones() {
    let p = pool(2, 1000);
    let other = p.clone();
    let mut c = Fake::new(1);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let ran = Arc::clone(&ran);
        c.conn(|conn| {
            p.submit(conn, move |_| {
                thread::sleep(Duration::from_millis(1));
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .unwrap();
    }
    assert!(p.shutdown(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    let refused = c.conn(|conn| other.submit(conn, |_| ()));
    assert_eq!(refused, Err(WorkError::ShutDown));
    let h = c.conn(|conn| conn.handle());
    assert_eq!(other.submit_to(&h, |_| ()), Err(WorkError::ShutDown));
    assert_eq!(other.stats().connections, 0);
}

#[test]
fn shutdown_with_a_stuck_job_is_bounded() {
    let p = pool(1, 8);
    let other = p.clone();
    let gate = Gate::new();
    let mut c = Fake::new(1);
    c.conn(|conn| p.submit(conn, gate.job(0))).unwrap();
    gate.wait_started(0);
    c.conn(|conn| p.submit(conn, |_| unreachable!("discarded")))
        .unwrap();
    let started = Instant::now();
    assert!(!p.shutdown(Duration::from_millis(100)));
    assert!(started.elapsed() < Duration::from_secs(2));
    gate.open.send(()).unwrap();
    let deadline = Instant::now() + WAIT;
    while other.owner.inner.alive() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    let s = other.stats();
    assert_eq!((s.completed, s.discarded, s.connections), (1, 1, 0));
    assert_eq!(other.owner.inner.alive(), 0);
}

#[test]
fn a_job_dropping_the_last_clone_does_not_deadlock() {
    let p = pool(2, 8);
    let (go, go_rx) = mpsc::channel::<()>();
    let (done, done_rx) = mpsc::channel();
    let mut c = Fake::new(1);
    let mine = p.clone();
    c.conn(|conn| {
        p.submit(conn, move |_| {
            go_rx.recv_timeout(WAIT).unwrap();
            drop(mine); // the last clone: stops the pool from inside it
            done.send(()).unwrap();
        })
    })
    .unwrap();
    drop(p);
    go.send(()).unwrap();
    done_rx.recv_timeout(WAIT).expect("drop returned");
}
