//! `berth bench`: a load generator built on berth's outbound connections.
//!
//! Every message carries its sequence number and the time it was meant to
//! be sent; the echo is checked byte for byte against what was sent, and
//! latency is measured from the intended send time, so an open-loop run
//! (`--rate`) does not hide queueing (coordinated omission).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth::{
    Conn, ConnHandle, EngineChoice, Handler, IoBuf, IoBufMut, Lifecycle, ServerEvent, ServerHandle,
};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;

/// How messages are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A plain byte stream (for `berth echo`).
    Echo,
    /// 1-byte-header packets of at most 255 bytes (for `berth packet-echo`);
    /// a message of `--size` bytes is sent as consecutive packets.
    Packet,
}

/// Flags of `berth bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server to load.
    #[arg(long, default_value = berth::DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    conns: u32,
    /// Message size in bytes (packet headers included in packet mode).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=(16 << 20)))]
    size: u32,
    /// Messages in flight per connection (1 = ping-pong).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    depth: u32,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop: send this many messages per second in total, whatever
    /// the replies do (latency counts from the intended send time).
    #[arg(long)]
    rate: Option<f64>,
    /// Message framing.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// IO threads of the load generator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    threads: u8,
    /// Engine of the load generator.
    #[arg(long)]
    engine: Option<EngineChoice>,
    /// Churn: each connection sends one message, waits for the echo,
    /// closes, and a new connection takes its place. Reports connections/s.
    #[arg(long)]
    churn: bool,
    /// Local addresses to connect from, in turn (comma-separated or
    /// repeated); each connection binds its own port from the kernel's
    /// ephemeral range. Default: 127.0.0.2 to 127.0.0.5 for `--churn`
    /// against an IPv4 loopback address (letting the kernel pick a port
    /// means searching past every port still in TIME_WAIT, which caps a
    /// churn run at the load generator; 127.0.0.1 is left out because
    /// ordinary sockets hold ports there), otherwise none (the kernel picks).
    #[arg(long, value_delimiter = ',')]
    source: Vec<IpAddr>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Bytes of the variable fields in every message.
const FIELDS: usize = 12;

/// The bytes of message `seq`: a deterministic pattern, with the sequence
/// number and the intended send time (ns since the run began) written in.
struct Template {
    bytes: Vec<u8>,
    /// Offset of the variable fields: a 4-byte sequence number, then an
    /// 8-byte timestamp.
    fields_at: usize,
}

impl Template {
    fn new(size: usize, mode: Mode) -> Self {
        let mut bytes: Vec<u8> = (0..size).map(|i| (i * 7 + 13) as u8).collect();
        if mode == Mode::Packet {
            let mut at = 0;
            while at < size {
                let len = (size - at).min(255);
                let len = if size - at - len == 1 { len - 1 } else { len }; // no 1-byte tail
                bytes[at] = len as u8;
                at += len;
            }
        }
        // Fields go after the first packet header (offset 1) in both modes.
        Template {
            bytes,
            fields_at: 1,
        }
    }

    fn fill(&self, out: &mut Vec<u8>, seq: u32, ts: u64) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        self.stamp(out, seq, ts);
    }

    /// The variable fields of message `seq`, stamped `ts`.
    fn fields(seq: u32, ts: u64) -> [u8; FIELDS] {
        let mut f = [0u8; FIELDS];
        f[..4].copy_from_slice(&seq.to_le_bytes());
        f[4..].copy_from_slice(&ts.to_le_bytes());
        f
    }

    /// Write the variable fields into `msg`, a copy of the template.
    fn stamp(&self, msg: &mut [u8], seq: u32, ts: u64) {
        msg[self.fields_at..self.fields_at + FIELDS].copy_from_slice(&Self::fields(seq, ts));
    }

    /// Check `chunk`, the bytes of a message from offset `at` on, against
    /// the template: whether every fixed byte matches. The bytes of the
    /// variable fields are copied into `fields` instead.
    fn check(&self, at: usize, chunk: &[u8], fields: &mut [u8; FIELDS]) -> bool {
        let end = at + chunk.len();
        let (f0, f1) = (self.fields_at, self.fields_at + FIELDS);
        let part = |from: usize, to: usize| &chunk[from - at..to - at];
        let mut ok = true;
        if at < f0 {
            let to = end.min(f0);
            ok &= part(at, to) == &self.bytes[at..to];
        }
        let (from, to) = (at.max(f0), end.min(f1));
        if from < to {
            fields[from - f0..to - f0].copy_from_slice(part(from, to));
        }
        if end > f1 {
            let from = at.max(f1);
            ok &= part(from, end) == &self.bytes[from..end];
        }
        ok
    }
}

/// Fills pooled buffers with outgoing bytes and queues each one as it
/// fills up, so a message is copied once, from the template.
struct Filler<'c, 'a> {
    conn: &'c mut Conn<'a>,
    buf: Option<IoBufMut>,
}

impl<'c, 'a> Filler<'c, 'a> {
    fn new(conn: &'c mut Conn<'a>) -> Self {
        Filler { conn, buf: None }
    }

    /// The buffer being filled (a new one if none is).
    fn buf(&mut self) -> &mut IoBufMut {
        self.buf.get_or_insert_with(|| self.conn.pool().alloc())
    }

    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let buf = self.buf();
            let took = buf.extend_from_slice(bytes);
            bytes = &bytes[took..];
            if buf.remaining() == 0 {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if let Some(buf) = self.buf.take().filter(|b| !b.is_empty()) {
            let _ = self.conn.write_buf(buf.freeze());
        }
    }

    fn finish(mut self) {
        self.flush();
    }
}

/// Counters of one IO thread (sharded by the thread that owns a connection).
struct Shard {
    hist: Histogram<u64>,
    messages: u64,
}

struct Shared {
    template: Template,
    size: usize,
    depth: u32,
    open_loop: bool,
    churn: bool,
    start: Instant,
    measure_from: Instant,
    measure_to: Instant,
    stop: AtomicBool,
    shards: Vec<Mutex<Shard>>,
    mismatches: AtomicU64,
    connect_errors: AtomicU64,
    closes: AtomicU64,
    completed_conns: AtomicU64,
    established: AtomicU64,
    total_messages: AtomicU64,
    handles: Mutex<Vec<ConnHandle>>,
    control: OnceLock<ServerHandle>,
    addr: SocketAddr,
    sources: Option<Sources>,
}

/// Local addresses and ports to connect from, in turn: every address with
/// one port, then every address with the next port, over the kernel's
/// ephemeral range. A pair comes round again only after all the others,
/// by when its last connection's TIME_WAIT may be reused (on loopback,
/// after a second).
struct Sources {
    ips: Vec<IpAddr>,
    first_port: u16,
    ports: u64,
    next: AtomicU64,
}

impl Sources {
    fn new(ips: Vec<IpAddr>, (first, last): (u16, u16), start: u64) -> Self {
        Sources {
            ips,
            first_port: first,
            ports: u64::from(last.saturating_sub(first)) + 1,
            next: AtomicU64::new(start),
        }
    }

    fn next(&self) -> SocketAddr {
        let n = self.next.fetch_add(1, Relaxed);
        let k = self.ips.len() as u64;
        let port = self.first_port + ((n / k) % self.ports) as u16;
        SocketAddr::new(self.ips[(n % k) as usize], port)
    }
}

/// The kernel's ephemeral port range (where the kernel itself would pick).
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(lo, hi)| 0 < *lo && lo <= hi)
        .unwrap_or((32768, 60999))
}

/// The addresses `--source` names, or the default for this run.
fn source_ips(args: &BenchArgs) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = args
        .source
        .iter()
        .find(|ip| ip.is_ipv4() != args.addr.is_ipv4())
    {
        return Err(format!(
            "--source {ip} is not of the same address family as --addr {}",
            args.addr
        ));
    }
    if !args.source.is_empty() {
        return Ok(args.source.clone());
    }
    Ok(match args.addr.ip() {
        IpAddr::V4(ip) if args.churn && ip.is_loopback() => (2..=5)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        _ => Vec::new(),
    })
}

/// Per-connection state: where we are in the echoed stream.
#[derive(Default)]
struct ConnBench {
    next_send: u32,
    next_recv: u32,
    /// Bytes of the current message received so far.
    recv_off: usize,
    /// The current message's fields as received.
    fields: [u8; FIELDS],
    broken: bool,
}

struct Bench(Arc<Shared>);

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Send the connection's next `n` messages, stamped `ts`, written
    /// straight into pooled buffers (as many messages per buffer as fit).
    fn send_many(&self, conn: &mut Conn<'_>, st: &mut ConnBench, n: u32, ts: u64) {
        let t = &self.template;
        let size = t.bytes.len();
        let mut left = n as usize;
        let mut out = Filler::new(conn);
        while left > 0 {
            // As many whole messages as fit, written in place in one go.
            let buf = out.buf();
            let k = (buf.remaining() / size).min(left);
            if k > 0 {
                let spare = &mut buf.spare_mut()[..k * size];
                for msg in spare.chunks_exact_mut(size) {
                    msg.copy_from_slice(&t.bytes);
                    t.stamp(msg, st.next_send, ts);
                    st.next_send = st.next_send.wrapping_add(1);
                }
                buf.advance(k * size);
                left -= k;
                if buf.remaining() == 0 {
                    out.flush();
                }
                continue;
            }
            // A message that straddles two buffers goes in pieces.
            let fields = Template::fields(st.next_send, ts);
            st.next_send = st.next_send.wrapping_add(1);
            out.put(&t.bytes[..t.fields_at]);
            out.put(&fields);
            out.put(&t.bytes[t.fields_at + FIELDS..]);
            left -= 1;
        }
        out.finish();
    }

    /// Open one more connection, from the next source address if any.
    fn connect(&self, control: &ServerHandle, timeout: Duration) -> Result<(), String> {
        match &self.sources {
            Some(sources) => control.connect_from(self.addr, sources.next(), timeout),
            None => control.connect(self.addr, timeout),
        }
        .map_err(|e| e.to_string())
    }

    /// The histogram shard of connection `conn`.
    fn shard(&self, conn: &Conn<'_>) -> std::sync::MutexGuard<'_, Shard> {
        let shard = (conn.id().as_u64() & 0xff) as usize % self.shards.len();
        self.shards[shard].lock().unwrap()
    }
}

impl Lifecycle for Bench {
    type State = ConnBench;

    fn connect_failed(&self, _: SocketAddr, _: &std::io::Error) {
        // Connects still pending when the run ends fail as it stops.
        if !self.0.stop.load(Relaxed) {
            self.0.connect_errors.fetch_add(1, Relaxed);
        }
        self.reconnect();
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        if let ServerEvent::ConnectionClosed { .. } = event {
            let b = &self.0;
            if !b.churn && !b.stop.load(Relaxed) {
                b.closes.fetch_add(1, Relaxed);
            }
            self.reconnect();
        }
    }
}

impl Handler for Bench {
    fn connection_established(&self, conn: &mut Conn<'_>, st: &mut ConnBench, _: SocketAddr) {
        let b = &self.0;
        b.established.fetch_add(1, Relaxed);
        if b.open_loop {
            b.handles.lock().unwrap().push(conn.handle());
        } else {
            // The whole first window in one write (it may span buffers).
            let n = if b.churn { 1 } else { b.depth };
            b.send_many(conn, st, n, b.now_ns());
        }
    }

    fn read_completed(&self, conn: &mut Conn<'_>, st: &mut ConnBench, buf: IoBuf) {
        let b = &self.0;
        if st.broken {
            return;
        }
        // One clock reading for the whole buffer: its messages arrived
        // together, and the replies they trigger leave together.
        let now = Instant::now();
        let now_ns = now.saturating_duration_since(b.start).as_nanos() as u64;
        let measuring = now >= b.measure_from && now <= b.measure_to;
        let mut shard = None;
        let mut echoed = 0u32;
        let mut data = &buf[..];
        while !data.is_empty() {
            let take = data.len().min(b.size - st.recv_off);
            if !b.template.check(st.recv_off, &data[..take], &mut st.fields) {
                st.broken = true;
            }
            st.recv_off += take;
            data = &data[take..];
            if st.recv_off < b.size {
                break;
            }
            // A whole message came back.
            st.recv_off = 0;
            let seq = u32::from_le_bytes(st.fields[..4].try_into().unwrap());
            let sent = u64::from_le_bytes(st.fields[4..].try_into().unwrap());
            if seq != st.next_recv || sent > now_ns {
                st.broken = true;
            }
            if st.broken {
                b.mismatches.fetch_add(1, Relaxed);
                conn.abort();
                return;
            }
            st.next_recv = st.next_recv.wrapping_add(1);
            echoed += 1;
            if measuring {
                let s = shard.get_or_insert_with(|| b.shard(conn));
                let _ = s.hist.record((now_ns.saturating_sub(sent) / 1000).max(1));
                s.messages += 1;
            }
            if b.churn {
                if measuring {
                    b.completed_conns.fetch_add(1, Relaxed);
                }
                conn.close();
                break;
            }
        }
        drop(shard);
        b.total_messages.fetch_add(u64::from(echoed), Relaxed);
        if echoed > 0 && !b.churn && !b.open_loop && !b.stop.load(Relaxed) {
            b.send_many(conn, st, echoed, now_ns);
        }
    }
}

impl Bench {
    /// In churn mode, replace a finished connection while the run lasts.
    fn reconnect(&self) {
        let b = &self.0;
        if b.churn
            && !b.stop.load(Relaxed)
            && let Some(control) = b.control.get()
        {
            let _ = b.connect(control, Duration::from_secs(5));
        }
    }
}

/// Results of a run.
struct Report {
    messages: u64,
    secs: f64,
    size: usize,
    hist: Histogram<u64>,
    mismatches: u64,
    connect_errors: u64,
    closes: u64,
    conns_per_sec: Option<f64>,
}

impl Report {
    /// Every figure the report prints: JSON key, table label, value.
    fn fields(&self) -> Vec<(&'static str, &'static str, String)> {
        let msgs_per_sec = self.messages as f64 / self.secs;
        let q = |p: f64| self.hist.value_at_quantile(p).to_string();
        let mut fields = vec![
            ("messages", "messages", self.messages.to_string()),
            ("msgs_per_sec", "messages/s", format!("{msgs_per_sec:.1}")),
            (
                "mb_per_sec",
                "MB/s",
                format!("{:.3}", msgs_per_sec * self.size as f64 / 1e6),
            ),
            ("p50_us", "latency p50 (µs)", q(0.5)),
            ("p99_us", "latency p99 (µs)", q(0.99)),
            ("p999_us", "latency p99.9 (µs)", q(0.999)),
            ("max_us", "latency max (µs)", self.hist.max().to_string()),
            ("mismatches", "mismatches", self.mismatches.to_string()),
            (
                "connect_errors",
                "connect errors",
                self.connect_errors.to_string(),
            ),
            ("closes", "unexpected closes", self.closes.to_string()),
        ];
        if let Some(c) = self.conns_per_sec {
            fields.push(("conns_per_sec", "connections/s", format!("{c:.1}")));
        }
        fields
    }

    /// One JSON object on one line (numbers only, so no escaping).
    fn json(&self) -> String {
        let body: Vec<String> = self
            .fields()
            .iter()
            .map(|(key, _, value)| format!("\"{key}\": {value}"))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    fn table(&self) -> String {
        self.fields()
            .iter()
            .map(|(_, label, value)| format!("{label:<20} {value}\n"))
            .collect()
    }
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err("--rate must be a positive number of messages per second".into());
    }
    let sources = source_ips(&args)?;
    let start = Instant::now();
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let shared = Arc::new(Shared {
        template: Template::new(args.size as usize, args.mode),
        size: args.size as usize,
        depth: args.depth,
        open_loop: args.rate.is_some(),
        churn: args.churn,
        start,
        measure_from: start + warmup,
        measure_to: start + warmup + duration,
        stop: AtomicBool::new(false),
        shards: (0..256)
            .map(|_| {
                Mutex::new(Shard {
                    hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
                    messages: 0,
                })
            })
            .collect(),
        mismatches: AtomicU64::new(0),
        connect_errors: AtomicU64::new(0),
        closes: AtomicU64::new(0),
        completed_conns: AtomicU64::new(0),
        established: AtomicU64::new(0),
        total_messages: AtomicU64::new(0),
        handles: Mutex::new(Vec::new()),
        control: OnceLock::new(),
        addr: args.addr,
        sources: (!sources.is_empty()).then(|| {
            // Start somewhere new each run, away from the pairs a run just
            // before may have left in TIME_WAIT.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mixed = (nanos ^ u64::from(std::process::id())).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            Sources::new(sources, ephemeral_ports(), mixed >> 16)
        }),
    });
    let mut builder = berth::Server::builder()
        .io_threads(args.threads as usize)
        .buffer_size(64 * 1024)
        .ring_buffers(512);
    if let Some(engine) = args.engine {
        builder = builder.engine(engine);
    }
    let client = builder
        .start_client(Bench(Arc::clone(&shared)))
        .map_err(|e| e.to_string())?;
    let _ = shared.control.set(client.handle());
    for _ in 0..args.conns {
        shared.connect(&client.handle(), Duration::from_secs(10))?;
    }

    let progress = (!args.json && std::io::stdout().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let pacer = args.rate.map(|rate| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || pace(&shared, rate))
    });
    let end = shared.measure_to;
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
        if let Some(bar) = &progress {
            let total = shared.total_messages.load(Relaxed);
            let now = Instant::now();
            let rate = (total - last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, total);
            let phase = if now < shared.measure_from {
                "warmup"
            } else {
                "measuring"
            };
            bar.set_message(format!(
                "{phase}: {:.0} msg/s, {} conns, {} errors",
                rate,
                shared.established.load(Relaxed),
                shared.connect_errors.load(Relaxed) + shared.mismatches.load(Relaxed)
            ));
        }
    }
    shared.stop.store(true, Relaxed);
    if let Some(p) = pacer {
        let _ = p.join();
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    shared.handles.lock().unwrap().clear();
    client.shutdown(Duration::from_millis(200));

    let mut hist = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut messages = 0;
    for s in &shared.shards {
        let s = s.lock().unwrap();
        let _ = hist.add(&s.hist);
        messages += s.messages;
    }
    let secs = duration.as_secs_f64();
    let report = Report {
        messages,
        secs,
        size: shared.size,
        hist,
        mismatches: shared.mismatches.load(Relaxed),
        connect_errors: shared.connect_errors.load(Relaxed),
        closes: shared.closes.load(Relaxed),
        conns_per_sec: args
            .churn
            .then(|| shared.completed_conns.load(Relaxed) as f64 / secs),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if report.mismatches > 0 {
        return Err(format!(
            "{} echoed messages did not match",
            report.mismatches
        ));
    }
    if report.messages == 0 && report.conns_per_sec.is_none_or(|c| c == 0.0) {
        return Err(format!(
            "no message was echoed by {} ({} connect errors)",
            args.addr, report.connect_errors
        ));
    }
    Ok(())
}

/// Open loop: send messages at a fixed total rate, spread over the
/// connections, each stamped with its intended send time.
fn pace(b: &Shared, rate: f64) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    let mut turn = 0usize;
    let mut seqs: Vec<u32> = Vec::new();
    let mut msg = Vec::with_capacity(b.size);
    while !b.stop.load(Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(1)));
            continue;
        }
        let handles = b.handles.lock().unwrap();
        if handles.is_empty() {
            next = Instant::now();
            continue;
        }
        seqs.resize(handles.len(), 0);
        // Catch up on every message that is due, each with its own time.
        while next <= Instant::now() {
            let i = turn % handles.len();
            turn += 1;
            let intended = next.saturating_duration_since(b.start).as_nanos() as u64;
            b.template.fill(&mut msg, seqs[i], intended);
            seqs[i] = seqs[i].wrapping_add(1);
            let _ = handles[i].write(&msg);
            next += interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FIELDS, Mode, Sources, Template};
    use std::net::SocketAddr;

    #[test]
    fn sources_take_every_address_with_one_port_then_the_next_port_and_wrap() {
        let ips = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        let s = Sources::new(ips, (40000, 40002), 0);
        let got: Vec<SocketAddr> = (0..8).map(|_| s.next()).collect();
        let want: Vec<SocketAddr> = [
            "127.0.0.1:40000",
            "127.0.0.2:40000",
            "127.0.0.1:40001",
            "127.0.0.2:40001",
            "127.0.0.1:40002",
            "127.0.0.2:40002",
            "127.0.0.1:40000",
            "127.0.0.2:40000",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }

    /// Check `msg` in chunks that end at `cuts`; the fields as read, and
    /// whether every fixed byte matched.
    fn check_in_chunks(t: &Template, msg: &[u8], cuts: &[usize]) -> ([u8; FIELDS], bool) {
        let mut fields = [0u8; FIELDS];
        let mut ok = true;
        let mut at = 0;
        for &cut in cuts.iter().chain([&msg.len()]) {
            ok &= t.check(at, &msg[at..cut], &mut fields);
            at = cut;
        }
        (fields, ok)
    }

    #[test]
    fn check_reads_the_fields_and_accepts_an_exact_echo_however_it_is_split() {
        for mode in [Mode::Echo, Mode::Packet] {
            let t = Template::new(300, mode);
            let mut msg = Vec::new();
            t.fill(&mut msg, 0xa1b2_c3d4, 0x0102_0304_0506_0708);
            let mut want = [0u8; 12];
            want[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
            want[4..].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
            for a in 0..=msg.len() {
                for b in (a..=msg.len()).step_by(7) {
                    let (fields, ok) = check_in_chunks(&t, &msg, &[a, b]);
                    assert!(ok, "{mode:?}: split at {a} and {b}");
                    assert_eq!(fields, want, "{mode:?}: split at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn check_finds_a_wrong_byte_anywhere_outside_the_fields() {
        let t = Template::new(64, Mode::Echo);
        let mut msg = Vec::new();
        t.fill(&mut msg, 7, 9);
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x40;
            for cut in [0, 1, 5, 13, 14, 40, 64] {
                let (_, ok) = check_in_chunks(&t, &bad, &[cut]);
                let in_fields = (t.fields_at..t.fields_at + FIELDS).contains(&i);
                assert_eq!(ok, in_fields, "byte {i} changed, split at {cut}");
            }
        }
    }
}
