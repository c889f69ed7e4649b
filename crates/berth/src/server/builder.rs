//! [`ServerBuilder`]: every setting of a server, with safe defaults.

use std::net::{SocketAddr, TcpListener};

use crate::buffer::BufPool;

use crate::driver::door;
use crate::driver::event_loop::ThreadConfig;
use crate::engine::{EngineChoice, EngineKind, probe_uring, sys};
use crate::error::Error;
use crate::handler::Handler;
use crate::lifecycle::ServerEvent;
use crate::listener::{ListenerSource, default_listener};
use crate::server::runtime::{Client, Runtime, Server};

/// The seed's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5001";

/// The default size of each IO buffer, in bytes.
pub const DEFAULT_BUFFER_SIZE: usize = 16 * 1024;

impl Server<()> {
    /// A builder with the defaults; [`ServerBuilder::start`] gives the typed server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

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
        let config = self.thread_config();
        let rt = Runtime::launch(
            engine,
            handler,
            Some(listener),
            self.io_threads,
            BufPool::new(self.buffer_size, self.max_pooled_buffers),
            config,
        )?;
        tracing::info!(addr = %local_addr, %engine, io_threads = rt.threads.len(), buffer_size, "listening");
        door::server_event(
            &*rt.handler,
            ServerEvent::Started {
                addr: local_addr,
                engine,
            },
        );
        Ok(Server::new(rt, local_addr))
    }

    /// Start the IO threads without a listener, for outbound connections
    /// only ([`Client::connect`]). The listening settings are ignored.
    pub fn start_client<H: Handler>(self, handler: H) -> Result<Client<H>, Error> {
        sys::ignore_sigpipe();
        let engine = self.resolve_engine()?;
        let config = self.thread_config();
        let rt = Runtime::launch(
            engine,
            handler,
            None,
            self.io_threads,
            BufPool::new(self.buffer_size, self.max_pooled_buffers),
            config,
        )?;
        tracing::debug!(%engine, io_threads = rt.threads.len(), "client started");
        Ok(Client::new(rt))
    }

    /// The settings every IO thread is started with.
    fn thread_config(&self) -> ThreadConfig {
        ThreadConfig {
            max_pooled_conns: self.max_pooled_connections,
            ring_buffers: self
                .ring_buffers
                .unwrap_or_else(|| default_ring_buffers(self.buffer_size)),
            ring_entries: self.ring_entries,
            nodelay: self.nodelay,
        }
    }
}

/// Bind `addr` with the default listener settings (used by tools that want
/// to report a bind error before starting anything else).
pub fn bind(addr: SocketAddr, backlog: i32) -> Result<TcpListener, Error> {
    default_listener(addr, backlog).map_err(|source| Error::Bind { addr, source })
}
