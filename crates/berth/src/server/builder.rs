//! [`ServerBuilder`]: every setting of a server, with safe defaults.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::BufPool;

use crate::driver::admission::{Admission, default_max_connections};
use crate::driver::door;
use crate::driver::event_loop::ThreadConfig;
use crate::driver::handover::DEFAULT_HANDOVER_GRACE;
use crate::driver::limits::{Limits, OverflowPolicy};
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

/// The default cap on outgoing bytes queued across all of a server's
/// connections ([`ServerBuilder::max_buffered`]): 512 MiB.
pub const DEFAULT_MAX_BUFFERED: usize = 512 << 20;

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
    limits: Limits,
    max_buffered: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<u32>,
    proxy_protocol: bool,
    reuse_port: bool,
    handover_grace: Duration,
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
            limits: Limits::unlimited(),
            max_buffered: None,
            max_connections: None,
            max_connections_per_ip: None,
            proxy_protocol: false,
            reuse_port: false,
            handover_grace: DEFAULT_HANDOVER_GRACE,
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

    /// Above this many queued outgoing bytes a connection is not writable
    /// ([`Conn::is_writable`](crate::Conn::is_writable),
    /// [`Lifecycle::writability_changed`](crate::Lifecycle::writability_changed));
    /// by default its reads are held back meanwhile. Default 64 KiB.
    pub fn write_high_water(mut self, bytes: usize) -> Self {
        self.limits.high_water = bytes;
        self
    }

    /// At or below this many queued bytes a connection that was not
    /// writable is writable again. Default 32 KiB.
    pub fn write_low_water(mut self, bytes: usize) -> Self {
        self.limits.low_water = bytes;
        self
    }

    /// The most bytes one connection may have queued for writing; a write
    /// past it is refused and, with the default [`OverflowPolicy::Close`],
    /// the connection reset. Default 4 MiB.
    pub fn max_write_queue(mut self, bytes: usize) -> Self {
        self.limits.max_write_queue = bytes;
        self
    }

    /// What happens to a write past [`ServerBuilder::max_write_queue`] or
    /// [`ServerBuilder::max_buffered`]. Default [`OverflowPolicy::Close`].
    pub fn write_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.limits.policy = policy;
        self
    }

    /// The most outgoing bytes queued across every connection; each IO
    /// thread holds an equal share. Default [`DEFAULT_MAX_BUFFERED`].
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = Some(bytes);
        self
    }

    /// The most connections open at once; one more is closed at accept
    /// (after [`Lifecycle::refusal`](crate::Lifecycle::refusal)). Default:
    /// the process's open-files limit less a reserve
    /// ([`default_max_connections`](crate::default_max_connections)).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// The most connections open at once from one client address. Default:
    /// no such limit.
    pub fn max_connections_per_ip(mut self, n: u32) -> Self {
        self.max_connections_per_ip = Some(n);
        self
    }

    /// Close a connection on which no byte moved either way for `after`
    /// ([`Lifecycle::timed_out`](crate::Lifecycle::timed_out) with
    /// [`Timeout::Idle`](crate::Timeout::Idle)). Default: none.
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.limits.idle_timeout = Some(after);
        self
    }

    /// For framed servers ([`Framed`](crate::Framed)): close a connection
    /// whose frame (or line) is not complete `after` its first byte
    /// arrived ([`Timeout::Frame`](crate::Timeout::Frame)), so a peer
    /// dribbling bytes cannot hold a connection. Default: none.
    pub fn frame_timeout(mut self, after: Duration) -> Self {
        self.limits.frame_timeout = Some(after);
        self
    }

    /// Require a PROXY protocol header (v1 or v2, never guessed) at the
    /// start of every accepted connection, as sent by a load balancer such
    /// as HAProxy (`send-proxy`, `send-proxy-v2`): the handler then sees
    /// the client's own address as the peer. A connection without a valid
    /// header within the frame timeout is closed and counted
    /// ([`ServerStats::proxy_header_errors`](crate::ServerStats::proxy_header_errors)).
    /// Only turn it on behind a proxy that sends the header: anyone who
    /// can reach the server directly could claim any address. Default off.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Share the listening address with a newer process, for restarts
    /// that refuse nothing (default off). The default listener is bound
    /// with `SO_REUSEPORT`, so a new server can start on the same address
    /// beside this one (as the same user). When this server then shuts
    /// down gracefully, it hands over instead of closing its listener at
    /// once: it steers new connections to the newer listener with a
    /// reuseport BPF program, accepts and serves what is still queued in
    /// its own backlog for the grace period
    /// ([`ServerBuilder::handover_grace`]), and only then closes the
    /// listener and drains its connections — so no connection queued to
    /// it is reset, with or without `net.ipv4.tcp_migrate_req`.
    ///
    /// It is meant for one old and one new server at a time: the steering
    /// sends new connections to the listener that joined the address
    /// second. Servers sharing an address for load sharing should not use
    /// it. A [`listener`](ServerBuilder::listener) supplied by the user is
    /// handed over the same way if it was bound with `SO_REUSEPORT`.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// How long a [`reuse_port`](ServerBuilder::reuse_port) server, once
    /// told to shut down, keeps accepting what still reaches its listener
    /// (handshakes begun before the steering end one round trip later),
    /// and how long each connection it accepted is served before the drain
    /// closes it. Default [`DEFAULT_HANDOVER_GRACE`] (250 ms); the shutdown
    /// deadline bounds it.
    pub fn handover_grace(mut self, grace: Duration) -> Self {
        self.handover_grace = grace;
        self
    }

    fn check_limits(&self) -> Result<(), Error> {
        let l = &self.limits;
        if l.low_water > l.high_water {
            return Err(Error::Limits("the low watermark is above the high one"));
        }
        if l.high_water > l.max_write_queue {
            return Err(Error::Limits("the high watermark is above max_write_queue"));
        }
        if self.max_connections == Some(0) || self.max_connections_per_ip == Some(0) {
            return Err(Error::Limits("a connection limit of 0 admits nothing"));
        }
        if [l.idle_timeout, l.frame_timeout].contains(&Some(Duration::ZERO)) {
            return Err(Error::Limits("a timeout of 0"));
        }
        Ok(())
    }

    /// The server's connection limits.
    fn admission(&self) -> Arc<Admission> {
        let total = self.max_connections.unwrap_or_else(default_max_connections);
        Arc::new(Admission::new(total, self.max_connections_per_ip))
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
        self.check_limits()?;
        let engine = self.resolve_engine()?;
        let listener =
            match self.listener.take() {
                Some(source) => source
                    .into_listener(self.backlog)
                    .map_err(Error::Listener)?,
                None => default_listener(self.addr, self.backlog, self.reuse_port).map_err(
                    |source| Error::Bind {
                        addr: self.addr,
                        source,
                    },
                )?,
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
            self.admission(),
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
        self.check_limits()?;
        let engine = self.resolve_engine()?;
        let config = self.thread_config();
        let rt = Runtime::launch(
            engine,
            handler,
            None,
            self.io_threads,
            BufPool::new(self.buffer_size, self.max_pooled_buffers),
            config,
            self.admission(),
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
            proxy_protocol: self.proxy_protocol,
            handover: self.reuse_port.then_some(self.handover_grace),
            limits: Limits {
                thread_buffered: self
                    .max_buffered
                    .unwrap_or(DEFAULT_MAX_BUFFERED)
                    .div_ceil(self.io_threads.max(1)),
                ..self.limits
            },
        }
    }
}

/// Bind `addr` with the default listener settings (used by tools that want
/// to report a bind error before starting anything else).
pub fn bind(addr: SocketAddr, backlog: i32) -> Result<TcpListener, Error> {
    default_listener(addr, backlog, false).map_err(|source| Error::Bind { addr, source })
}
