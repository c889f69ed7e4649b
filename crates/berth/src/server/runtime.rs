//! The IO threads of a [`Server`] or a [`Client`]: starting them, counting,
//! stopping and joining them.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::buffer::BufPool;
use crate::driver::admission::Admission;
use crate::driver::door;
use crate::driver::event_loop::{ThreadConfig, ThreadCtx};
use crate::driver::mailbox::Mailbox;
use crate::driver::stats::ThreadStats;
use crate::engine::{EngineKind, epoll, uring};
use crate::error::Error;
use crate::handler::Handler;
use crate::lifecycle::ServerEvent;
use crate::server::handle::{ServerHandle, ServerStats, ShuttingDown};

/// What a server and a client share: the IO threads and their settings.
pub(super) struct Runtime<H> {
    pub(super) handler: Arc<H>,
    /// Sends [`ServerEvent::Stopped`] (kept as a closure so `Drop` needs no bound).
    on_stopped: Box<dyn Fn() + Send + Sync>,
    control: ServerHandle,
    pub(super) threads: Vec<JoinHandle<()>>,
    engine: EngineKind,
    pool: BufPool,
}

impl<H: Handler> Runtime<H> {
    /// Start `io_threads` IO threads on `engine`, thread 0 accepting from
    /// `listener` if there is one, and wait until each is ready.
    pub(super) fn launch(
        engine: EngineKind,
        handler: H,
        listener: Option<TcpListener>,
        io_threads: usize,
        pool: BufPool,
        config: ThreadConfig,
        admission: Arc<Admission>,
    ) -> Result<Runtime<H>, Error> {
        let handler = Arc::new(handler);
        let mailboxes: Arc<[Arc<Mailbox>]> = (0..io_threads)
            .map(|_| Mailbox::new(engine == EngineKind::Epoll).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()
            .map_err(Error::Thread)?
            .into();
        let stats: Arc<[Arc<ThreadStats>]> = (0..io_threads)
            .map(|_| Arc::new(ThreadStats::default()))
            .collect();
        let control = ServerHandle::new(
            Arc::clone(&mailboxes),
            listener.is_some(),
            Arc::clone(&stats),
            engine,
        );
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut listener = listener;
        let mut threads = Vec::new();
        for (index, thread_stats) in stats.iter().enumerate() {
            let thread_stats = Arc::clone(thread_stats);
            let ctx = ThreadCtx {
                index,
                handler: Arc::clone(&handler),
                pool: pool.clone(),
                mailboxes: Arc::clone(&mailboxes),
                listener: if index == 0 { listener.take() } else { None },
                config: config.clone(),
                stats: thread_stats,
                admission: Arc::clone(&admission),
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
            on_stopped: Box::new(move || {
                door::server_event(&*stopped_handler, ServerEvent::Stopped)
            }),
            handler,
            control,
            threads,
            engine,
            pool,
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

impl<H> Runtime<H> {
    fn stats(&self) -> ServerStats {
        self.control.stats()
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

impl<H> Server<H> {
    pub(super) fn new(rt: Runtime<H>, local_addr: SocketAddr) -> Self {
        Server { rt, local_addr }
    }

    runtime_accessors!();

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// IO threads without a listener, for outbound connections, started with
/// [`ServerBuilder::start_client`](crate::ServerBuilder::start_client). Dropping it closes every connection.
pub struct Client<H> {
    rt: Runtime<H>,
}

impl<H> Client<H> {
    pub(super) fn new(rt: Runtime<H>) -> Self {
        Client { rt }
    }

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
