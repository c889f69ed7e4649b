//! [`ServerHandle`]: control a running server from any thread; and the
//! [`ServerStats`] summed over its IO threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::driver::mailbox::{Command, Mailbox};
use crate::driver::stats::{CloseReason, ThreadStats};
use crate::engine::EngineKind;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A `Send + Sync + Clone` handle to control a running server from any thread.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    mailboxes: Arc<[Arc<Mailbox>]>,
    stopping: Arc<AtomicBool>,
    next_connect: Arc<AtomicUsize>,
    /// Thread 0 accepts, and forwards `Stop` to the others once it has
    /// stopped accepting; without a listener every thread is told directly.
    accepting: bool,
    /// Accepting was paused (and not resumed) through a handle.
    paused: Arc<AtomicBool>,
    stats: Arc<[Arc<ThreadStats>]>,
    engine: EngineKind,
    started: Instant,
}

impl ServerHandle {
    pub(super) fn new(
        mailboxes: Arc<[Arc<Mailbox>]>,
        accepting: bool,
        stats: Arc<[Arc<ThreadStats>]>,
        engine: EngineKind,
    ) -> Self {
        ServerHandle {
            mailboxes,
            stopping: Arc::new(AtomicBool::new(false)),
            next_connect: Arc::new(AtomicUsize::new(0)),
            accepting,
            paused: Arc::new(AtomicBool::new(false)),
            stats,
            engine,
            started: Instant::now(),
        }
    }

    /// Counters summed over the IO threads (read without stopping them).
    pub fn stats(&self) -> ServerStats {
        ServerStats::sum(&self.stats)
    }

    /// The engine in use.
    pub fn engine(&self) -> EngineKind {
        self.engine
    }

    /// The number of IO threads.
    pub fn io_threads(&self) -> usize {
        self.mailboxes.len()
    }

    /// How long ago the server started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether accepting is paused ([`ServerHandle::pause_accepting`]).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    fn acceptor(&self) -> &Mailbox {
        &self.mailboxes[0]
    }

    /// Stop accepting: new connections wait in the kernel backlog.
    pub fn pause_accepting(&self) {
        self.paused.store(true, Ordering::Release);
        self.acceptor().push(Command::PauseAccept);
    }

    /// Accept again, starting with the connections that queued meanwhile.
    pub fn resume_accepting(&self) {
        self.paused.store(false, Ordering::Release);
        self.acceptor().push(Command::ResumeAccept);
    }

    /// Begin a graceful shutdown: stop accepting, let queued writes finish,
    /// call [`Lifecycle::closing`](crate::Lifecycle::closing) for each connection and close it. After
    /// `deadline`, the remaining connections are closed abortively. Returns
    /// at once; [`Server::wait`](crate::Server::wait) waits for the end.
    /// A server built with [`reuse_port`](crate::ServerBuilder::reuse_port)
    /// first hands its address over to a newer listener, within `deadline`.
    ///
    /// Calling it again while the drain runs brings the deadline forward
    /// if the new one is earlier (a later one changes nothing):
    /// `shutdown(Duration::ZERO)` closes what is left abortively at once,
    /// as a second Ctrl-C would.
    pub fn shutdown(&self, deadline: Duration) {
        let deadline = Instant::now()
            .checked_add(deadline)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        if !self.stopping.swap(true, Ordering::AcqRel) {
            if self.accepting {
                self.acceptor().push(Command::Stop { deadline });
            } else {
                for mb in self.mailboxes.iter() {
                    mb.push(Command::Stop { deadline });
                }
            }
        } else {
            // Straight to every thread: the acceptor may have finished its
            // part already. A thread the `Stop` has not reached yet keeps
            // the deadline for it, so none stops before its time.
            for mb in self.mailboxes.iter() {
                mb.push(Command::Hurry { deadline });
            }
        }
    }

    /// Open an outbound connection to `addr`, driven by the same handler as
    /// accepted ones: [`Handler::connection_established`](crate::Handler::connection_established) when connected,
    /// [`Lifecycle::connect_failed`](crate::Lifecycle::connect_failed) if it is refused, unreachable, or not
    /// connected within `timeout`. Connections spread over the IO threads.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<(), ShuttingDown> {
        self.push_connect(addr, None, timeout)
    }

    /// Like [`ServerHandle::connect`], from the local address `local`
    /// (Netty's `connect(remote, local)`): the socket is bound to it, with
    /// `SO_REUSEADDR`, before connecting. A port of `0` lets the kernel
    /// pick the port on that address. A load generator that opens many
    /// short connections chooses its own ports this way: on Linux, letting
    /// the kernel pick means searching past every port whose last
    /// connection is still in `TIME_WAIT`. It had best choose them outside
    /// the kernel's ephemeral range (`ip_local_port_range`): the kernel
    /// skips a port that a bind took when it picks one for any connect on
    /// the machine, for as long as the socket lasts, `TIME_WAIT` included.
    /// A local address that cannot be bound (`AddrInUse` if another socket
    /// holds the port), or a pair of addresses still in use
    /// (`AddrNotAvailable`), is reported through
    /// [`Lifecycle::connect_failed`](crate::Lifecycle::connect_failed).
    pub fn connect_from(
        &self,
        addr: SocketAddr,
        local: SocketAddr,
        timeout: Duration,
    ) -> Result<(), ShuttingDown> {
        self.push_connect(addr, Some(local), timeout)
    }

    fn push_connect(
        &self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<(), ShuttingDown> {
        if self.is_shutting_down() {
            return Err(ShuttingDown);
        }
        let n = self.next_connect.fetch_add(1, Ordering::Relaxed);
        self.mailboxes[n % self.mailboxes.len()].push(Command::Connect {
            addr,
            local,
            timeout,
        });
        Ok(())
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// Counters summed over a server's IO threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Bytes received.
    pub bytes_read: u64,
    /// Bytes handed to the kernel for sending.
    pub bytes_written: u64,
    /// Completed receive operations (each delivered one buffer).
    pub reads: u64,
    /// Completed send operations.
    pub writes: u64,
    /// Receive buffers the io_uring buffer rings hold now, waiting for data
    /// (a gauge; always 0 on epoll). They count as in use in the pool's
    /// [`PoolStats`](crate::PoolStats).
    pub ring_buffers: u64,
    /// Closed connections by why they closed, indexed by
    /// [`CloseReason`] (`closed_by_reason[reason as usize]`; see
    /// [`ServerStats::closed_for`]). They add up to `closed`.
    pub closed_by_reason: [u64; 7],
    /// Connections refused at accept because the server held
    /// [`ServerBuilder::max_connections`](crate::ServerBuilder::max_connections)
    /// (also counted as accepted and closed for [`CloseReason::Limit`]).
    pub refused_max_connections: u64,
    /// Connections refused because their address held
    /// [`ServerBuilder::max_connections_per_ip`](crate::ServerBuilder::max_connections_per_ip).
    pub refused_per_ip: u64,
    /// Connections closed because they did not start with a valid PROXY
    /// protocol header ([`ServerBuilder::proxy_protocol`](crate::ServerBuilder::proxy_protocol)).
    pub proxy_header_errors: u64,
}

impl ServerStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }

    /// Connections closed for `reason`.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed_by_reason[reason as usize]
    }

    /// Sum the counters of the IO threads.
    pub(super) fn sum(threads: &[Arc<ThreadStats>]) -> ServerStats {
        let mut s = ServerStats::default();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for t in threads {
            s.accepted += get(&t.accepted);
            s.closed += get(&t.closed);
            s.bytes_read += get(&t.bytes_read);
            s.bytes_written += get(&t.bytes_written);
            s.reads += get(&t.reads);
            s.writes += get(&t.writes);
            s.ring_buffers += get(&t.ring_buffers);
            for (sum, c) in s.closed_by_reason.iter_mut().zip(&t.closed_by) {
                *sum += get(c);
            }
            s.refused_max_connections += get(&t.refused[0]);
            s.refused_per_ip += get(&t.refused[1]);
            s.proxy_header_errors += get(&t.proxy_errors);
        }
        s
    }
}

/// The server is shutting down and takes no new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is shutting down")]
pub struct ShuttingDown;
