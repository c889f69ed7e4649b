//! The scheduler behind [`WorkerPool`](super::WorkerPool): per-connection
//! queues, the ready list the workers take them from, and shutdown.
//!
//! Locks are taken in this order only: a shard of the queue map, then a
//! queue's state, then the ready list. No lock is held while a job runs.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
// The counters are statistics, not synchronization: `std`'s, even under loom.
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::types::{DROP_TIMEOUT, WorkError, WorkerBuildError, WorkerStats};
use crate::conn::{Conn, ConnHandle, ConnId};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Condvar, Mutex, MutexGuard};

const SHARDS: usize = 16;

pub(super) type Job = Box<dyn FnOnce(&ConnHandle) + Send>;

/// One shard of the connection-to-queue map.
type Shard = Mutex<HashMap<ConnId, Arc<ConnQueue>>>;

/// Lock, ignoring poisoning: no code of this module panics while holding a
/// lock, and jobs run without one.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection's serial queue.
struct ConnQueue {
    id: ConnId,
    handle: ConnHandle,
    state: Mutex<QueueState>,
}

struct QueueState {
    jobs: VecDeque<Job>,
    /// In the ready list or being run by a worker; only that worker pops.
    scheduled: bool,
    /// The pool paused reading and has not resumed it yet.
    paused: bool,
}

#[derive(Default)]
struct Ready {
    queues: VecDeque<Arc<ConnQueue>>,
    closed: bool,
}

/// Where a submission comes from.
pub(super) enum Via<'a, 'c> {
    Conn(&'a mut Conn<'c>),
    Handle(&'a ConnHandle),
}

pub(super) struct Inner {
    pub(super) bound: usize,
    low: usize,
    threads: usize,
    /// Queues by connection, sharded to spread submissions.
    shards: Box<[Shard]>,
    ready: Mutex<Ready>,
    work: Condvar,
    closed: AtomicBool,
    abandon: AtomicBool,
    alive: Mutex<usize>,
    exited: Condvar,
    queued: AtomicUsize,
    busy: AtomicUsize,
    completed: AtomicU64,
    panicked: AtomicU64,
    discarded: AtomicU64,
    connections: AtomicUsize,
    read_pauses: AtomicU64,
}

impl Inner {
    pub(super) fn new(threads: usize, bound: usize) -> Self {
        Inner {
            bound,
            low: bound / 2,
            threads,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            ready: Mutex::new(Ready::default()),
            work: Condvar::new(),
            closed: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            alive: Mutex::new(0),
            exited: Condvar::new(),
            queued: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            read_pauses: AtomicU64::new(0),
        }
    }

    pub(super) fn stats(&self) -> WorkerStats {
        WorkerStats {
            threads: self.threads,
            queued: self.queued.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            read_pauses: self.read_pauses.load(Ordering::Relaxed),
        }
    }

    pub(super) fn pending(&self, id: ConnId) -> usize {
        lock(self.shard(id))
            .get(&id)
            .map_or(0, |q| lock(&q.state).jobs.len())
    }

    /// Worker threads that have not finished.
    #[cfg(test)]
    pub(super) fn alive(&self) -> usize {
        *lock(&self.alive)
    }

    fn shard(&self, id: ConnId) -> &Shard {
        // The low byte of an id is its IO thread, the rest a sequence.
        let n = id.as_u64();
        &self.shards[((n >> 8) ^ n) as usize % SHARDS]
    }

    pub(super) fn enqueue(&self, mut via: Via<'_, '_>, job: Job) -> Result<(), WorkError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(WorkError::ShutDown);
        }
        let id = match &via {
            Via::Conn(c) => c.id(),
            Via::Handle(h) => h.id(),
        };
        let mut shard = lock(self.shard(id));
        let q = match shard.get(&id) {
            Some(q) => Arc::clone(q),
            None => {
                let handle = match &mut via {
                    Via::Conn(c) => c.handle(),
                    Via::Handle(h) => (*h).clone(),
                };
                let q = Arc::new(ConnQueue {
                    id,
                    handle,
                    state: Mutex::new(QueueState {
                        jobs: VecDeque::new(),
                        scheduled: false,
                        paused: false,
                    }),
                });
                shard.insert(id, Arc::clone(&q));
                self.connections.fetch_add(1, Ordering::Relaxed);
                q
            }
        };
        let mut st = lock(&q.state);
        if !st.scheduled {
            // Not scheduled means empty: schedule it, unless shutting down.
            let mut ready = lock(&self.ready);
            if ready.closed {
                drop(ready);
                shard.remove(&id);
                self.connections.fetch_sub(1, Ordering::Relaxed);
                return Err(WorkError::ShutDown);
            }
            ready.queues.push_back(Arc::clone(&q));
            st.scheduled = true;
            self.work.notify_one();
        }
        drop(shard);
        st.jobs.push_back(job);
        self.queued.fetch_add(1, Ordering::Relaxed);
        if st.jobs.len() >= self.bound {
            if !st.paused {
                st.paused = true;
                self.read_pauses.fetch_add(1, Ordering::Relaxed);
                if let Via::Handle(h) = &via {
                    // Sent under the queue lock, so it reaches the IO
                    // thread before any resume a worker sends later.
                    let _ = h.pause_reading();
                }
            }
            if let Via::Conn(c) = via {
                // Every time, not only on the transition: a resume still in
                // the mailbox is applied after this and undoes it, and the
                // next callback to find the queue full must pause again.
                c.pause_reading();
            }
        }
        Ok(())
    }

    /// Count in a worker thread about to [`run`](Inner::run); it counts
    /// itself out when `run` returns.
    pub(super) fn enlist(&self) {
        *lock(&self.alive) += 1;
    }

    /// Take no more jobs: a submission from now on fails, and each worker
    /// returns once the ready list is empty.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.ready).closed = true;
        self.work.notify_all();
    }

    /// A worker thread's loop: run one job of the next ready queue.
    pub(super) fn run(&self) {
        let _exit = ExitGuard(self);
        loop {
            let q = {
                let mut ready = lock(&self.ready);
                loop {
                    if let Some(q) = ready.queues.pop_front() {
                        break q;
                    }
                    if ready.closed {
                        return;
                    }
                    ready = self.work.wait(ready).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.run_one(q);
        }
    }

    fn run_one(&self, q: Arc<ConnQueue>) {
        let job = {
            let mut st = lock(&q.state);
            let job = st.jobs.pop_front();
            if job.is_some() {
                self.queued.fetch_sub(1, Ordering::Relaxed);
            }
            if st.paused && st.jobs.len() <= self.low {
                st.paused = false;
                let _ = q.handle.resume_reading();
            }
            job
        };
        if let Some(job) = job {
            if self.abandon.load(Ordering::Acquire) {
                self.discarded.fetch_add(1, Ordering::Relaxed);
                drop(job);
            } else {
                self.busy.fetch_add(1, Ordering::Relaxed);
                let result = catch_unwind(AssertUnwindSafe(|| job(&q.handle)));
                self.busy.fetch_sub(1, Ordering::Relaxed);
                match result {
                    Ok(()) => self.completed.fetch_add(1, Ordering::Relaxed),
                    Err(payload) => {
                        tracing::error!(
                            conn = %q.id,
                            panic = panic_message(&*payload),
                            "worker job panicked; aborting the connection"
                        );
                        let _ = q.handle.abort();
                        self.panicked.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
        if lock(&q.state).jobs.is_empty() {
            // Retire the queue, unless a job arrived meanwhile.
            let mut shard = lock(self.shard(q.id));
            let mut st = lock(&q.state);
            if st.jobs.is_empty() {
                st.scheduled = false;
                if shard.get(&q.id).is_some_and(|s| Arc::ptr_eq(s, &q)) {
                    shard.remove(&q.id);
                    self.connections.fetch_sub(1, Ordering::Relaxed);
                }
                return; // the handle goes with the last `Arc`
            }
        }
        // More to do: back of the line, so other connections get a turn.
        // This worker loops and takes the front, so no wake-up is needed.
        lock(&self.ready).queues.push_back(q);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// Counts a worker thread out, however it ends.
struct ExitGuard<'a>(&'a Inner);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.alive) -= 1;
        self.0.exited.notify_all();
    }
}

/// Shared by the clones of a pool; stops it when the last one goes.
pub(super) struct Owner {
    pub(super) inner: Arc<Inner>,
    joins: Mutex<Vec<JoinHandle<()>>>,
}

impl Owner {
    /// Start `threads` workers named `name-0`, `name-1`, ...
    pub(super) fn start(
        threads: usize,
        bound: usize,
        name: &str,
    ) -> Result<Owner, WorkerBuildError> {
        let inner = Arc::new(Inner::new(threads, bound));
        let owner = Owner {
            inner: Arc::clone(&inner),
            joins: Mutex::new(Vec::with_capacity(threads)),
        };
        for i in 0..threads {
            inner.enlist();
            let worker = Arc::clone(&inner);
            let spawned = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(join) => lock(&owner.joins).push(join),
                Err(err) => {
                    *lock(&inner.alive) -= 1;
                    return Err(WorkerBuildError::Spawn(err)); // `owner` stops the others
                }
            }
        }
        Ok(owner)
    }

    pub(super) fn stop(&self, timeout: Duration) -> bool {
        let inner = &self.inner;
        inner.close();
        let joins = std::mem::take(&mut *lock(&self.joins));
        // A job may drop the last clone: never wait for our own thread.
        let me = thread::current().id();
        let own = joins.iter().filter(|j| j.thread().id() == me).count();
        let deadline = Instant::now() + timeout;
        let mut alive = lock(&inner.alive);
        while *alive > own {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            alive = inner
                .exited
                .wait_timeout(alive, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let clean = *alive <= own;
        drop(alive);
        if !clean {
            inner.abandon.store(true, Ordering::Release);
            tracing::warn!(
                ?timeout,
                "worker pool shutdown timed out; dropping queued jobs and detaching busy workers"
            );
        }
        for join in joins {
            if join.thread().id() != me && join.is_finished() {
                let _ = join.join();
            }
        }
        clean
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop(DROP_TIMEOUT);
    }
}
