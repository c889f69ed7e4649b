//! The server, its builder and its control handle.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::buffer::BufPool;
use crate::core::ThreadStats;
use crate::engine::thread::{ThreadConfig, ThreadCtx};
use crate::engine::{EngineChoice, EngineKind, epoll, probe_uring, sys, uring};
use crate::error::Error;
use crate::handler::{Handler, ServerEvent};
use crate::listener::{ListenerSource, default_listener};
use crate::mailbox::{Command, Mailbox};

/// The seed's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5001";

/// The default size of each IO buffer, in bytes.
pub const DEFAULT_BUFFER_SIZE: usize = 16 * 1024;

/// Configures and starts a [`Server`]. Every setting has a safe default.
#[derive(Debug)]
pub struct ServerBuilder {
    addr: SocketAddr,
    listener: Option<ListenerSource>,
    io_threads: usize,
    buffer_size: usize,
    max_pooled_buffers: usize,
    max_pooled_connections: usize,
    backlog: i32,
    engine: Option<EngineChoice>,
    ring_buffers: Option<u16>,
    ring_entries: u32,
    nodelay: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addr: DEFAULT_ADDR.parse().expect("valid default address"),
            listener: None,
            io_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            buffer_size: DEFAULT_BUFFER_SIZE,
            max_pooled_buffers: 4096,
            max_pooled_connections: 1024,
            backlog: 1024,
            engine: None,
            ring_buffers: None,
            ring_entries: 1024,
            nodelay: true,
        }
    }
}

/// Bytes of receive buffers an io_uring buffer ring may hold by default
/// (at most 256 buffers, whatever their size).
const RING_BYTES: usize = 8 << 20;

/// The default room for buffers in an IO thread's io_uring buffer ring for
/// `buffer_size`-byte buffers: `RING_BYTES` (8 MiB) worth, between 32 and 256
/// (128 of 64 KiB; 256 of 16 KiB, the default size, which is 4 MiB).
///
/// The ring is filled only as far as the load needs (it is topped up
/// before each wait to about twice the busiest recent pass; a thread that
/// has not been busy holds 4 to 8 buffers), and this is the most it may
/// grow to. Buffers cannot be taken back out of a ring, so after a burst a
/// thread keeps what its ring was given until the kernel uses it. Too little
/// room is costly: with 1,000 busy connections a pass can take more than
/// 32 buffers, and every receive that then finds the ring empty ends with
/// `ENOBUFS` and must be re-armed, which makes the next pass longer still.
pub fn default_ring_buffers(buffer_size: usize) -> u16 {
    let n = (RING_BYTES / buffer_size.max(1)).clamp(32, 256);
    u16::try_from(n).unwrap_or(256)
}

impl ServerBuilder {
    /// The address to listen on (default `127.0.0.1:5001`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Use this listening socket instead of creating one.
    pub fn listener(mut self, listener: impl Into<ListenerSource>) -> Self {
        self.listener = Some(listener.into());
        self
    }

    /// Number of IO threads (default: the number of cores; at least 1).
    pub fn io_threads(mut self, n: usize) -> Self {
        self.io_threads = n.clamp(1, 255);
        self
    }

    /// Size of each IO buffer in bytes (default 16 KiB).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.clamp(64, u32::MAX as usize);
        self
    }

    /// Most free buffers kept for reuse (default 4096); the rest are freed.
    pub fn max_pooled_buffers(mut self, n: usize) -> Self {
        self.max_pooled_buffers = n.max(1);
        self
    }

    /// Most closed connection objects kept for reuse (default 1024).
    pub fn max_pooled_connections(mut self, n: usize) -> Self {
        self.max_pooled_connections = n;
        self
    }

    /// Listen backlog (default 1024).
    pub fn backlog(mut self, n: i32) -> Self {
        self.backlog = n.max(1);
        self
    }

    /// Which engine to run on (default: `BERTH_ENGINE`, else `auto`).
    pub fn engine(mut self, choice: EngineChoice) -> Self {
        self.engine = Some(choice);
        self
    }

    /// The most receive buffers an IO thread's io_uring buffer ring may
    /// hold (rounded up to a power of two); it is filled only as far as the
    /// load needs. The default is up to 8 MiB of buffers and at most 256 of
    /// them — 128 of 64 KiB, 256 of 16 KiB (4 MiB) — and never fewer than
    /// 32; see [`default_ring_buffers`].
    pub fn ring_buffers(mut self, n: u16) -> Self {
        self.ring_buffers = Some(n.max(1));
        self
    }

    /// Submission queue entries per io_uring (default 1024; the completion
    /// queue gets eight times as many). A small ring still works — a full
    /// submission queue waits in order, an overflowing completion queue is
    /// kept by the kernel — but it batches less.
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.ring_entries = n.clamp(2, 32768).next_power_of_two();
        self
    }

    /// Set `TCP_NODELAY` on accepted connections (default on).
    ///
    /// It is set (or cleared) once on the listener, whose accepted sockets
    /// inherit it on Linux, so accepting costs no `setsockopt` per
    /// connection. Accepted sockets are checked until one shows the option;
    /// one that lacks it (accepted before the listener had it, say) gets it
    /// set on its own, and after 16 such sockets in a row every socket does.
    /// A user-supplied or inherited listener is changed too, as any process
    /// sharing it will see.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    fn resolve_engine(&self) -> Result<EngineKind, Error> {
        let choice = match self.engine {
            Some(c) => c,
            None => EngineChoice::from_env()
                .unwrap_or_else(|err| {
                    tracing::warn!(%err, "ignoring {}", EngineChoice::ENV);
                    None
                })
                .unwrap_or_default(),
        };
        match choice {
            EngineChoice::Epoll => Ok(EngineKind::Epoll),
            EngineChoice::Uring => {
                probe_uring()?;
                Ok(EngineKind::Uring)
            }
            EngineChoice::Auto => match probe_uring() {
                Ok(()) => Ok(EngineKind::Uring),
                Err(why) => {
                    tracing::warn!("io_uring unavailable, falling back to epoll: {why}");
                    Ok(EngineKind::Epoll)
                }
            },
        }
    }

    /// Bind, start the IO threads, and start accepting.
    pub fn start<H: Handler>(mut self, handler: H) -> Result<Server<H>, Error> {
        sys::ignore_sigpipe();
        let engine = self.resolve_engine()?;
        let listener = match self.listener.take() {
            Some(source) => source
                .into_listener(self.backlog)
                .map_err(Error::Listener)?,
            None => default_listener(self.addr, self.backlog).map_err(|source| Error::Bind {
                addr: self.addr,
                source,
            })?,
        };
        let local_addr = listener.local_addr().map_err(Error::Listener)?;
        let buffer_size = self.buffer_size;
        let rt = self.launch(engine, handler, Some(listener))?;
        tracing::info!(addr = %local_addr, %engine, io_threads = rt.threads.len(), buffer_size, "listening");
        rt.handler.server_event(ServerEvent::Started {
            addr: local_addr,
            engine,
        });
        Ok(Server { rt, local_addr })
    }

    /// Start the IO threads without a listener, for outbound connections
    /// only ([`Client::connect`]). The listening settings are ignored.
    pub fn start_client<H: Handler>(self, handler: H) -> Result<Client<H>, Error> {
        sys::ignore_sigpipe();
        let engine = self.resolve_engine()?;
        let rt = self.launch(engine, handler, None)?;
        tracing::debug!(%engine, io_threads = rt.threads.len(), "client started");
        Ok(Client { rt })
    }

    fn launch<H: Handler>(
        self,
        engine: EngineKind,
        handler: H,
        listener: Option<TcpListener>,
    ) -> Result<Runtime<H>, Error> {
        let handler = Arc::new(handler);
        let pool = BufPool::new(self.buffer_size, self.max_pooled_buffers);
        let config = ThreadConfig {
            max_pooled_conns: self.max_pooled_connections,
            ring_buffers: self
                .ring_buffers
                .unwrap_or_else(|| default_ring_buffers(self.buffer_size)),
            ring_entries: self.ring_entries,
            nodelay: self.nodelay,
        };
        let mailboxes: Arc<[Arc<Mailbox>]> = (0..self.io_threads)
            .map(|_| Mailbox::new(engine == EngineKind::Epoll).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()
            .map_err(Error::Thread)?
            .into();
        let control = ServerHandle {
            mailboxes: Arc::clone(&mailboxes),
            stopping: Arc::new(AtomicBool::new(false)),
            next_connect: Arc::new(AtomicUsize::new(0)),
            accepting: listener.is_some(),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut listener = listener;
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for index in 0..self.io_threads {
            let thread_stats = Arc::new(ThreadStats::default());
            stats.push(Arc::clone(&thread_stats));
            let ctx = ThreadCtx {
                index,
                handler: Arc::clone(&handler),
                pool: pool.clone(),
                mailboxes: Arc::clone(&mailboxes),
                listener: if index == 0 { listener.take() } else { None },
                config: config.clone(),
                stats: thread_stats,
            };
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("berth-io-{index}"))
                .spawn(move || run_thread(engine, ctx, ready));
            match spawned {
                Ok(t) => threads.push(t),
                Err(err) => {
                    stop_and_join(&control, threads);
                    return Err(Error::Thread(err));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..threads.len() {
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    stop_and_join(&control, threads);
                    return Err(Error::Thread(err));
                }
                Err(_) => {
                    stop_and_join(&control, threads);
                    return Err(Error::Thread(io::Error::other("IO thread did not start")));
                }
            }
        }
        let stopped_handler = Arc::clone(&handler);
        Ok(Runtime {
            on_stopped: Box::new(move || stopped_handler.server_event(ServerEvent::Stopped)),
            handler,
            control,
            threads,
            engine,
            pool,
            stats,
        })
    }
}

fn run_thread<H: Handler>(
    engine: EngineKind,
    ctx: ThreadCtx<H>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let index = ctx.index;
    // Blocks this thread frees and allocates again skip the pool's lock.
    let _cache = ctx.pool.bind_thread_cache(ctx.mailboxes.len());
    let res = match engine {
        EngineKind::Uring => uring::run(ctx, ready),
        EngineKind::Epoll => epoll::run(ctx, ready),
    };
    if let Err(err) = res {
        tracing::error!(thread = index, %err, "IO thread failed");
    }
}

fn stop_and_join(control: &ServerHandle, threads: Vec<JoinHandle<()>>) {
    control.shutdown(Duration::ZERO);
    for t in threads {
        let _ = t.join();
    }
}

/// A `Send + Sync + Clone` handle to control a running server from any thread.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    mailboxes: Arc<[Arc<Mailbox>]>,
    stopping: Arc<AtomicBool>,
    next_connect: Arc<AtomicUsize>,
    /// Thread 0 accepts, and forwards `Stop` to the others once it has
    /// stopped accepting; without a listener every thread is told directly.
    accepting: bool,
}

impl ServerHandle {
    fn acceptor(&self) -> &Mailbox {
        &self.mailboxes[0]
    }

    /// Stop accepting: new connections wait in the kernel backlog.
    pub fn pause_accepting(&self) {
        self.acceptor().push(Command::PauseAccept);
    }

    /// Accept again, starting with the connections that queued meanwhile.
    pub fn resume_accepting(&self) {
        self.acceptor().push(Command::ResumeAccept);
    }

    /// Begin a graceful shutdown: stop accepting, let queued writes finish,
    /// call [`Handler::closing`] for each connection and close it. After
    /// `deadline`, the remaining connections are closed abortively. Returns
    /// at once; [`Server::wait`] waits for the end.
    pub fn shutdown(&self, deadline: Duration) {
        if !self.stopping.swap(true, Ordering::AcqRel) {
            let deadline = Instant::now() + deadline;
            if self.accepting {
                self.acceptor().push(Command::Stop { deadline });
            } else {
                for mb in self.mailboxes.iter() {
                    mb.push(Command::Stop { deadline });
                }
            }
        }
    }

    /// Open an outbound connection to `addr`, driven by the same handler as
    /// accepted ones: [`Handler::connection_established`] when connected,
    /// [`Handler::connect_failed`] if it is refused, unreachable, or not
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
    /// connection is still in `TIME_WAIT`. A local address that cannot be
    /// bound, or a pair of addresses still in use, is reported through
    /// [`Handler::connect_failed`].
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
}

impl ServerStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }
}

/// The server is shutting down and takes no new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is shutting down")]
pub struct ShuttingDown;

/// What a server and a client share: the IO threads and their settings.
struct Runtime<H> {
    handler: Arc<H>,
    /// Sends [`ServerEvent::Stopped`] (kept as a closure so `Drop` needs no bound).
    on_stopped: Box<dyn Fn() + Send + Sync>,
    control: ServerHandle,
    threads: Vec<JoinHandle<()>>,
    engine: EngineKind,
    pool: BufPool,
    stats: Vec<Arc<ThreadStats>>,
}

impl<H> Runtime<H> {
    fn stats(&self) -> ServerStats {
        let mut s = ServerStats::default();
        for t in &self.stats {
            s.accepted += t.accepted.load(Ordering::Relaxed);
            s.closed += t.closed.load(Ordering::Relaxed);
            s.bytes_read += t.bytes_read.load(Ordering::Relaxed);
            s.bytes_written += t.bytes_written.load(Ordering::Relaxed);
            s.reads += t.reads.load(Ordering::Relaxed);
            s.writes += t.writes.load(Ordering::Relaxed);
            s.ring_buffers += t.ring_buffers.load(Ordering::Relaxed);
        }
        s
    }

    fn shutdown(mut self, deadline: Duration) {
        self.control.shutdown(deadline);
        self.join();
    }

    fn join(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (self.on_stopped)();
    }
}

impl<H> Drop for Runtime<H> {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.control.shutdown(Duration::ZERO);
            self.join();
        }
    }
}

/// The accessors a [`Server`] and a [`Client`] share.
macro_rules! runtime_accessors {
    () => {
        /// A handle to control the IO threads (and connect) from any thread.
        pub fn handle(&self) -> ServerHandle {
            self.rt.control.clone()
        }

        /// The engine in use.
        pub fn engine(&self) -> EngineKind {
            self.rt.engine
        }

        /// The handler.
        pub fn handler(&self) -> &H {
            &self.rt.handler
        }

        /// The IO buffer pool (for its counters).
        pub fn buffer_pool(&self) -> &BufPool {
            &self.rt.pool
        }

        /// Counters summed over the IO threads.
        pub fn stats(&self) -> ServerStats {
            self.rt.stats()
        }

        /// Shut down gracefully (see [`ServerHandle::shutdown`]) and wait
        /// for every IO thread to finish.
        pub fn shutdown(self, deadline: Duration) {
            self.rt.shutdown(deadline);
        }

        /// Wait until the IO threads stop (after a [`ServerHandle::shutdown`]).
        pub fn wait(mut self) {
            self.rt.join();
        }
    };
}

/// A running server. Dropping it shuts it down (abortively, at once) and
/// joins its threads.
pub struct Server<H> {
    rt: Runtime<H>,
    local_addr: SocketAddr,
}

impl Server<()> {
    /// A builder with the defaults; [`ServerBuilder::start`] gives the typed server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

impl<H> Server<H> {
    runtime_accessors!();

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// IO threads without a listener, for outbound connections, started with
/// [`ServerBuilder::start_client`]. Dropping it closes every connection.
pub struct Client<H> {
    rt: Runtime<H>,
}

impl<H> Client<H> {
    runtime_accessors!();

    /// Open a connection to `addr` (see [`ServerHandle::connect`]).
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<(), ShuttingDown> {
        self.rt.control.connect(addr, timeout)
    }

    /// Open a connection to `addr` from `local` (see [`ServerHandle::connect_from`]).
    pub fn connect_from(
        &self,
        addr: SocketAddr,
        local: SocketAddr,
        timeout: Duration,
    ) -> Result<(), ShuttingDown> {
        self.rt.control.connect_from(addr, local, timeout)
    }
}

/// Bind `addr` with the default listener settings (used by tools that want
/// to report a bind error before starting anything else).
pub fn bind(addr: SocketAddr, backlog: i32) -> Result<TcpListener, Error> {
    default_listener(addr, backlog).map_err(|source| Error::Bind { addr, source })
}
