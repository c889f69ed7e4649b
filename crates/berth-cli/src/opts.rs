//! Flags every server subcommand shares, and how errors are reported.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth::{EngineChoice, Handler, ServerBuilder};
use clap::Args;

use crate::logging::LogFormat;
use crate::serve::{self, Startup, Workers};

/// Options common to the server subcommands.
#[derive(Debug, Args)]
pub struct ServerOpts {
    /// Address to listen on (unless systemd passed a listening socket).
    #[arg(long, value_name = "ADDR:PORT", default_value = berth::DEFAULT_ADDR)]
    pub listen: SocketAddr,
    /// Unix socket for `berth ctl` (created mode 0600; a stale one is replaced).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Number of IO threads (default: number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub io_threads: Option<u8>,
    /// IO engine: auto (io_uring, else epoll), uring or epoll. Default: $BERTH_ENGINE, else auto.
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<EngineChoice>,
    /// Size of each IO buffer in bytes [default: 65536 for echo and
    /// packet-echo, 16384 otherwise].
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(64..=(64 * 1024 * 1024)))]
    pub buffer_size: Option<u32>,
    /// Most free IO buffers kept pooled.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_pooled_buffers: usize,
    /// Most connection objects kept pooled.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_pooled_connections: usize,
    /// Listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: i32,
    /// Seconds to drain connections on SIGTERM/SIGINT (or `berth ctl
    /// shutdown`) before resetting the rest; a second signal resets them at once.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub drain_timeout: u64,
    /// Above this many queued outgoing bytes a connection is not writable,
    /// and its reads are held back until it is.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub write_high_water: usize,
    /// At or below this many queued bytes a connection is writable again.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024)]
    pub write_low_water: usize,
    /// Most bytes one connection may have queued; a write past it resets the connection.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_write_queue: usize,
    /// Most outgoing bytes queued across all connections.
    #[arg(long, value_name = "BYTES", default_value_t = berth::DEFAULT_MAX_BUFFERED)]
    pub max_buffered: usize,
    /// Most connections at once; more are closed at accept [default: the
    /// open-files limit less a reserve of 256 descriptors].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Most connections at once from one client address [default: no limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: Option<u32>,
    /// Close a connection after this many seconds with no byte either way
    /// [default: 300; pop3: 600, RFC 1939's autologout minimum].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: Option<u64>,
    /// Require a PROXY protocol (v1 or v2) header on every connection, as
    /// HAProxy's send-proxy / send-proxy-v2 sends it; the client's address
    /// in it becomes the connection's peer. Only behind such a proxy.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Framed protocols (packet-echo, pop3): close a connection whose
    /// packet or line is not complete this many seconds after its first byte.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub frame_timeout: u64,
    /// Log connection events (debug); RUST_LOG or BERTH_LOG set a filter instead.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsOpts,
    /// Share the address with a newer berth (SO_REUSEPORT) for restarts that
    /// refuse nothing: start the new one with --reuse-port too, then stop
    /// this one; it steers new connections to the new one and serves what
    /// is still queued to it before closing.
    #[arg(long)]
    pub reuse_port: bool,
}

impl ServerOpts {
    /// The idle timeout: `--idle-timeout`, else the subcommand's default.
    pub fn idle_timeout_or(&self, default_secs: u64) -> Duration {
        Duration::from_secs(self.idle_timeout.unwrap_or(default_secs))
    }

    fn builder(&self, default_buffer_size: u32) -> ServerBuilder {
        let buffer_size = self.buffer_size.unwrap_or(default_buffer_size);
        let mut b = berth::Server::builder()
            .listen(self.listen)
            .buffer_size(buffer_size as usize)
            .max_pooled_buffers(self.max_pooled_buffers)
            .max_pooled_connections(self.max_pooled_connections)
            .backlog(self.backlog)
            .write_high_water(self.write_high_water)
            .write_low_water(self.write_low_water)
            .max_write_queue(self.max_write_queue)
            .max_buffered(self.max_buffered)
            .frame_timeout(Duration::from_secs(self.frame_timeout))
            .proxy_protocol(self.proxy_protocol)
            .reuse_port(self.reuse_port);
        if let Some(n) = self.max_connections {
            b = b.max_connections(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(n) = self.max_connections_per_ip {
            b = b.max_connections_per_ip(n);
        }
        if let Some(n) = self.io_threads {
            b = b.io_threads(n as usize);
        }
        if let Some(engine) = self.engine {
            b = b.engine(engine);
        }
        b
    }

    /// What must happen before any thread starts (see [`Startup::begin`]):
    /// the first call of a server subcommand.
    pub fn startup(&self, log: LogFormat) -> Result<Startup, String> {
        Startup::begin(log, self.verbose, self.control.as_deref())
    }

    /// Start `handler`, serve until SIGTERM/SIGINT or `berth ctl shutdown`,
    /// then drain. `default_buffer_size` applies unless `--buffer-size` is
    /// given; `configure` adds the subcommand's own settings to the
    /// server built from the flags (its idle timeout, say); `workers` is
    /// the handler's worker pool, if any (for stats, and shut down after
    /// the drain).
    pub fn serve<H: Handler>(
        &self,
        mut startup: Startup,
        handler: H,
        default_buffer_size: u32,
        configure: impl FnOnce(ServerBuilder, &H) -> ServerBuilder,
        workers: Option<Workers>,
    ) -> Result<(), String> {
        let mut builder = configure(self.builder(default_buffer_size), &handler);
        if let Some(listener) = startup.inherited.take() {
            builder = builder.listener(listener);
        }
        let server = builder.start(handler).map_err(|e| e.to_string())?;
        let metrics = self
            .metrics
            .start(&server, workers.as_ref().map(|w| w.pool.clone()))?;
        serve::run(
            server,
            startup,
            Duration::from_secs(self.drain_timeout),
            workers,
            metrics,
        )
    }
}

/// Report a command-line error in one line (help and version print as usual).
pub fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            // The first paragraph, on one line (a missing argument is
            // named on the line after "...not provided:").
            let text = err.to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!(
                "berth: {} (try --help)",
                if first.is_empty() {
                    "invalid arguments"
                } else {
                    first
                }
            );
            ExitCode::from(2)
        }
    }
}
