//! `--metrics ADDR:PORT`: Prometheus metrics of a server, served over HTTP
//! by a second, small berth server in the same process (one IO thread, on
//! the main server's engine): berth serving a second protocol.
//!
//! | file | what it holds |
//! |---|---|
//! | `registry.rs` | the metric families, read from the main server at each scrape and encoded by `prometheus-client` |
//! | `http.rs` | the HTTP handler (a `FrameHandler` on the line codec) |
//! | `request.rs` | the request head, parsed line by line (sans IO) |
//! | `response.rs` | statuses and response bytes (sans IO) |

mod http;
mod registry;
mod request;
mod response;

use std::net::SocketAddr;
use std::time::Duration;

use berth::{EngineChoice, EngineKind, Framed, Server, WorkerPool};
use clap::Args;

use self::http::{METRICS_PATH, MetricsHttp};
use self::registry::{Metrics, Sources};

/// How long a scrape in progress may take to finish when the server stops.
const STOP_DEADLINE: Duration = Duration::from_secs(1);

/// The metrics server's limits: a scraper or two, and a person with curl.
const MAX_CONNECTIONS: usize = 64;
/// Large enough for a request head in one read; responses take a few.
const BUFFER_SIZE: usize = 4096;

/// The `--metrics` flag, and what else the metrics report.
#[derive(Debug, Default, Args)]
pub struct MetricsOpts {
    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR:PORT/metrics.
    #[arg(long = "metrics", value_name = "ADDR:PORT")]
    pub addr: Option<SocketAddr>,
}

impl MetricsOpts {
    /// With `--metrics`, start serving the metrics of `main` (and the queue
    /// depth of its worker pool, if it has one); the returned guard stops
    /// that server when it is stopped or dropped.
    pub fn start<H>(
        &self,
        main: &Server<H>,
        workers: Option<WorkerPool>,
    ) -> Result<MetricsServer, String> {
        let Some(addr) = self.addr else {
            return Ok(MetricsServer(None));
        };
        let sources = Sources {
            server: main.handle(),
            buffers: main.buffer_pool().clone(),
            workers,
        };
        let handler = Framed::new(MetricsHttp::new(Metrics::new(sources)));
        // The library's own `listening` line, inside this span, reads as
        // the metrics server's.
        let span = tracing::info_span!("metrics").entered();
        let server = Server::builder()
            .listen(addr)
            .io_threads(1)
            .engine(match main.engine() {
                EngineKind::Uring => EngineChoice::Uring,
                EngineKind::Epoll => EngineChoice::Epoll,
            })
            .buffer_size(BUFFER_SIZE)
            .max_pooled_buffers(64)
            .max_pooled_connections(MAX_CONNECTIONS)
            .max_connections(MAX_CONNECTIONS)
            .backlog(64)
            .start(handler)
            .map_err(|e| format!("metrics: {e}"))?;
        drop(span);
        tracing::info!(addr = %server.local_addr(), path = %METRICS_PATH, "metrics listening");
        Ok(MetricsServer(Some(server)))
    }
}

/// The running metrics server, if any: stopped by [`MetricsServer::stop`]
/// or when dropped.
pub struct MetricsServer(Option<Server<Framed<MetricsHttp>>>);

impl MetricsServer {
    /// Stop serving metrics (a scrape in progress gets a moment to finish).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(server) = self.0.take() {
            server.shutdown(STOP_DEADLINE);
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
