//! The metrics themselves: a [`Snapshot`] of the main server's counters and
//! pools, taken at each scrape and encoded by `prometheus-client` in the
//! OpenMetrics text format.
//!
//! The counters are the IO threads' own ([`ServerStats`]): each thread
//! keeps its counters to itself, written by that thread alone without a
//! locked instruction, and [`ServerHandle::stats`] sums them when read. A
//! scrape therefore costs the IO threads nothing; nothing here is updated
//! on the hot path. The registry holds one [`Collector`], which reads the
//! sources afresh each time it is encoded.

use std::fmt;
use std::time::Duration;

use berth::{BufPool, CloseReason, EngineKind, PoolStats, ServerHandle, ServerStats, WorkerPool};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The content type of what [`Metrics::encode`] produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this.
const PREFIX: &str = "berth";

/// What the metrics are read from: the main server and its pools.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The main server.
    pub server: ServerHandle,
    /// The main server's IO buffer pool.
    pub buffers: BufPool,
    /// The subcommand's worker pool, if it has one.
    pub workers: Option<WorkerPool>,
}

/// One reading of every source, taken at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub stats: ServerStats,
    pub buffers: PoolStats,
    /// Jobs waiting in the worker pool (0 without one).
    pub worker_queue: usize,
    pub paused: bool,
    pub uptime: Duration,
    pub io_threads: usize,
    pub engine: EngineKind,
}

/// Something a [`Snapshot`] can be read from, at each scrape.
pub trait Source: fmt::Debug + Send + Sync + 'static {
    /// The values now.
    fn snapshot(&self) -> Snapshot;
}

impl Source for Sources {
    fn snapshot(&self) -> Snapshot {
        let s = &self.server;
        Snapshot {
            stats: s.stats(),
            buffers: self.buffers.stats(),
            worker_queue: self.workers.as_ref().map_or(0, |w| w.stats().queued),
            paused: s.is_paused(),
            uptime: s.uptime(),
            io_threads: s.io_threads(),
            engine: s.engine(),
        }
    }
}

/// A fixed snapshot is its own source (for tests).
impl Source for Snapshot {
    fn snapshot(&self) -> Snapshot {
        *self
    }
}

/// The metrics registry of a server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The registry, reading `source` at each [`Metrics::encode`].
    pub fn new(source: impl Source) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(Scrape(source)));
        Metrics { registry }
    }

    /// Every metric, read now, in the OpenMetrics text format (ending
    /// with `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// The collector: reads the source, then writes every family.
#[derive(Debug)]
struct Scrape<S>(S);

impl<S: Source> Collector for Scrape<S> {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        encode_snapshot(&self.0.snapshot(), &mut enc)
    }
}

/// The families, in a stable order. Names get the `berth_` prefix, units
/// their suffix (`_bytes`, `_seconds`) and counters `_total`.
fn encode_snapshot(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let st = &s.stats;
    gauge(
        enc,
        "connections_active",
        "Connections open now.",
        None,
        st.open(),
    )?;
    counter(
        enc,
        "connections_accepted",
        "Connections accepted, including those then refused at a connection limit.",
        None,
        st.accepted,
    )?;
    let closed: Vec<_> = CloseReason::ALL
        .iter()
        .map(|&r| (r.name(), st.closed_for(r)))
        .collect();
    counter_by(
        enc,
        "connections_closed",
        "Connections closed, by why they closed.",
        &closed,
    )?;
    counter_by(
        enc,
        "connections_refused",
        "Connections refused at accept, by the limit they met.",
        &[
            ("max_connections", st.refused_max_connections),
            ("max_connections_per_ip", st.refused_per_ip),
        ],
    )?;
    counter(
        enc,
        "proxy_header_errors",
        "Connections closed for lack of a valid PROXY protocol header.",
        None,
        st.proxy_header_errors,
    )?;
    counter(
        enc,
        "received",
        "Bytes received and delivered to the handler.",
        Some(Unit::Bytes),
        st.bytes_read,
    )?;
    counter(
        enc,
        "sent",
        "Bytes handed to the kernel for sending.",
        Some(Unit::Bytes),
        st.bytes_written,
    )?;
    let b = &s.buffers;
    gauge(
        enc,
        "buffers_allocated",
        "IO buffers that exist now (pooled plus in use).",
        None,
        b.allocated,
    )?;
    gauge(
        enc,
        "buffers_pooled",
        "IO buffers free in the pool, waiting for reuse.",
        None,
        b.pooled,
    )?;
    gauge(
        enc,
        "buffers_in_use",
        "IO buffers held by connections, write queues or the engine.",
        None,
        b.in_use,
    )?;
    gauge(
        enc,
        "ring_buffers",
        "Receive buffers the io_uring buffer rings hold now (0 on epoll).",
        None,
        st.ring_buffers,
    )?;
    gauge(
        enc,
        "worker_queue_depth",
        "Jobs waiting for a worker thread (0 without a worker pool).",
        None,
        s.worker_queue,
    )?;
    gauge(
        enc,
        "accepting_paused",
        "1 while accepting is paused, else 0.",
        None,
        u64::from(s.paused),
    )?;
    gauge(
        enc,
        "uptime",
        "Seconds since the server started.",
        Some(Unit::Seconds),
        s.uptime.as_secs_f64(),
    )?;
    gauge(enc, "io_threads", "IO threads.", None, s.io_threads)?;
    let info = Info::new([
        ("version", env!("CARGO_PKG_VERSION")),
        ("engine", s.engine.name()),
    ]);
    let m = enc.encode_descriptor(
        "build",
        "The berth version and the IO engine in use.",
        None,
        info.metric_type(),
    )?;
    info.encode(m)
}

/// A counter family without labels.
fn counter<N: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: N,
) -> fmt::Result {
    let metric = ConstCounter::new(value);
    let m = enc.encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?;
    metric.encode(m)
}

/// A counter family with one `reason` label.
fn counter_by(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(&'static str, u64)],
) -> fmt::Result {
    let kind = ConstCounter::new(0u64).metric_type();
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for &(reason, value) in values {
        let labels = [("reason", reason)];
        ConstCounter::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family without labels.
fn gauge<N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: N,
) -> fmt::Result {
    let metric = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?;
    metric.encode(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut stats = ServerStats {
            accepted: 10,
            closed: 7,
            bytes_read: 1234,
            bytes_written: 1200,
            ring_buffers: 8,
            refused_max_connections: 1,
            refused_per_ip: 2,
            proxy_header_errors: 3,
            ..ServerStats::default()
        };
        stats.closed_by_reason[CloseReason::ClientClose as usize] = 5;
        stats.closed_by_reason[CloseReason::Limit as usize] = 2;
        Snapshot {
            stats,
            buffers: PoolStats {
                allocated: 20,
                pooled: 12,
                in_use: 8,
            },
            worker_queue: 4,
            paused: true,
            uptime: Duration::from_millis(2500),
            io_threads: 2,
            engine: EngineKind::Epoll,
        }
    }

    /// The whole exposition, pinned: the names, types, units and labels
    /// are the interface dashboards depend on.
    #[test]
    fn a_snapshot_encodes_to_the_documented_names() {
        let text = Metrics::new(snapshot()).encode();
        let version = env!("CARGO_PKG_VERSION");
        let expected = format!(
            "\
# HELP berth_connections_active Connections open now.
# TYPE berth_connections_active gauge
berth_connections_active 3
# HELP berth_connections_accepted Connections accepted, including those then refused at a connection limit.
# TYPE berth_connections_accepted counter
berth_connections_accepted_total 10
# HELP berth_connections_closed Connections closed, by why they closed.
# TYPE berth_connections_closed counter
berth_connections_closed_total{{reason=\"client_close\"}} 5
berth_connections_closed_total{{reason=\"server_close\"}} 0
berth_connections_closed_total{{reason=\"reset\"}} 0
berth_connections_closed_total{{reason=\"error\"}} 0
berth_connections_closed_total{{reason=\"timeout\"}} 0
berth_connections_closed_total{{reason=\"limit\"}} 2
berth_connections_closed_total{{reason=\"shutdown\"}} 0
# HELP berth_connections_refused Connections refused at accept, by the limit they met.
# TYPE berth_connections_refused counter
berth_connections_refused_total{{reason=\"max_connections\"}} 1
berth_connections_refused_total{{reason=\"max_connections_per_ip\"}} 2
# HELP berth_proxy_header_errors Connections closed for lack of a valid PROXY protocol header.
# TYPE berth_proxy_header_errors counter
berth_proxy_header_errors_total 3
# HELP berth_received_bytes Bytes received and delivered to the handler.
# TYPE berth_received_bytes counter
# UNIT berth_received_bytes bytes
berth_received_bytes_total 1234
# HELP berth_sent_bytes Bytes handed to the kernel for sending.
# TYPE berth_sent_bytes counter
# UNIT berth_sent_bytes bytes
berth_sent_bytes_total 1200
# HELP berth_buffers_allocated IO buffers that exist now (pooled plus in use).
# TYPE berth_buffers_allocated gauge
berth_buffers_allocated 20
# HELP berth_buffers_pooled IO buffers free in the pool, waiting for reuse.
# TYPE berth_buffers_pooled gauge
berth_buffers_pooled 12
# HELP berth_buffers_in_use IO buffers held by connections, write queues or the engine.
# TYPE berth_buffers_in_use gauge
berth_buffers_in_use 8
# HELP berth_ring_buffers Receive buffers the io_uring buffer rings hold now (0 on epoll).
# TYPE berth_ring_buffers gauge
berth_ring_buffers 8
# HELP berth_worker_queue_depth Jobs waiting for a worker thread (0 without a worker pool).
# TYPE berth_worker_queue_depth gauge
berth_worker_queue_depth 4
# HELP berth_accepting_paused 1 while accepting is paused, else 0.
# TYPE berth_accepting_paused gauge
berth_accepting_paused 1
# HELP berth_uptime_seconds Seconds since the server started.
# TYPE berth_uptime_seconds gauge
# UNIT berth_uptime_seconds seconds
berth_uptime_seconds 2.5
# HELP berth_io_threads IO threads.
# TYPE berth_io_threads gauge
berth_io_threads 2
# HELP berth_build The berth version and the IO engine in use.
# TYPE berth_build info
berth_build_info{{version=\"{version}\",engine=\"epoll\"}} 1
# EOF
"
        );
        assert_eq!(text, expected);
    }
}
