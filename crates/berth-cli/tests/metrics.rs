//! `--metrics`: the Prometheus endpoint of the `berth` servers, scraped over
//! loopback with plain HTTP/1.0 requests and read with a strict OpenMetrics
//! reader (`metrics/openmetrics.rs`). Each server test runs once per engine.

#[path = "metrics/openmetrics.rs"]
mod openmetrics;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use openmetrics::Exposition;
use support::{
    CLOSE_REASONS, Running, TIMEOUT, berth, both_engines, eventually, read_all, run_bounded,
};

both_engines!(
    a_scrape_is_strict_openmetrics_and_counts_echo_traffic_exactly,
    other_paths_methods_and_garbage_get_their_status,
    refusals_are_counted_by_limit,
    pop3_reports_its_worker_queue,
);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `berth SUB --metrics 127.0.0.1:0 ...`, and the metrics address it logs.
fn serve(sub: &str, engine: &str, extra: &[&str]) -> (Running, SocketAddr) {
    let mut args = vec![
        sub,
        "--listen",
        "127.0.0.1:0",
        "--engine",
        engine,
        "--metrics",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut srv = Running::spawn(berth(&args));
    let line = srv.wait_for("metrics listening");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("the metrics line names the address");
    (srv, addr.parse().unwrap())
}

/// A response: status code, header fields, body.
struct Reply {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn field(&self, name: &str) -> Option<&str> {
        let mut found = self
            .fields
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let (_, value) = found.next()?;
        assert!(found.next().is_none(), "{name} twice");
        Some(value)
    }
}

/// Send `request`, read to end of stream, and check the response's framing:
/// an HTTP/1.1 status line, CRLF field lines, `Connection: close`, a
/// `Date`, and a `Content-Length` equal to the body (0 for `head_only`).
fn http(addr: SocketAddr, request: &[u8], head_only: bool) -> Reply {
    exchange(addr, request, false, head_only)
}

/// Like [`http`]; with `half_close` the client ends its stream after the
/// request.
fn exchange(addr: SocketAddr, request: &[u8], half_close: bool, head_only: bool) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    if half_close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let raw = read_all(&mut s);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(&raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("an ASCII head");
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().unwrap();
    assert!(parts.next().is_some_and(|r| !r.is_empty()), "{status_line}");
    let fields = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("field {l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let reply = Reply {
        status,
        fields,
        body,
    };
    assert_eq!(reply.field("Connection"), Some("close"));
    assert!(reply.field("Date").is_some_and(|d| d.ends_with(" GMT")));
    let length: usize = reply.field("Content-Length").unwrap().parse().unwrap();
    if head_only {
        assert!(reply.body.is_empty() && length > 0);
    } else {
        assert_eq!(length, reply.body.len());
    }
    reply
}

/// `GET /metrics`, checked and parsed strictly.
fn scrape(addr: SocketAddr) -> Exposition {
    let reply = http(addr, b"GET /metrics HTTP/1.0\r\n\r\n", false);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.field("Content-Type"), Some(CONTENT_TYPE));
    let text = String::from_utf8(reply.body).expect("UTF-8");
    openmetrics::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn value(e: &Exposition, name: &str) -> f64 {
    value_for(e, name, &[])
}

fn value_for(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.get(name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

fn closed(e: &Exposition, reason: &str) -> f64 {
    value_for(e, "berth_connections_closed_total", &[("reason", reason)])
}

/// Every metric the README documents, with its type, and the values a
/// server at rest must show.
fn check_families(e: &Exposition, engine: &str, io_threads: f64) {
    for (name, kind) in [
        ("berth_connections_active", "gauge"),
        ("berth_connections_accepted", "counter"),
        ("berth_connections_closed", "counter"),
        ("berth_connections_refused", "counter"),
        ("berth_proxy_header_errors", "counter"),
        ("berth_received_bytes", "counter"),
        ("berth_sent_bytes", "counter"),
        ("berth_buffers_allocated", "gauge"),
        ("berth_buffers_pooled", "gauge"),
        ("berth_buffers_in_use", "gauge"),
        ("berth_ring_buffers", "gauge"),
        ("berth_worker_queue_depth", "gauge"),
        ("berth_accepting_paused", "gauge"),
        ("berth_uptime_seconds", "gauge"),
        ("berth_io_threads", "gauge"),
        ("berth_build", "info"),
    ] {
        let family = e.family(name).unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(family.kind, kind, "{name}");
        assert!(
            family.help.as_ref().is_some_and(|h| !h.is_empty()),
            "{name}"
        );
    }
    assert_eq!(
        e.family("berth_received_bytes").unwrap().unit.as_deref(),
        Some("bytes")
    );
    assert_eq!(
        e.family("berth_uptime_seconds").unwrap().unit.as_deref(),
        Some("seconds")
    );
    for reason in CLOSE_REASONS {
        closed(e, reason);
    }
    assert_eq!(
        e.family("berth_connections_closed").unwrap().samples.len(),
        7
    );
    for reason in ["max_connections", "max_connections_per_ip"] {
        let refused = value_for(e, "berth_connections_refused_total", &[("reason", reason)]);
        assert_eq!(refused, 0.0);
    }
    let engine = support::engine_name(engine);
    let version = env!("CARGO_PKG_VERSION");
    let info = [("version", version), ("engine", engine)];
    assert_eq!(value_for(e, "berth_build_info", &info), 1.0);
    assert_eq!(value(e, "berth_io_threads"), io_threads);
    assert_eq!(value(e, "berth_accepting_paused"), 0.0);
    assert_eq!(value(e, "berth_proxy_header_errors_total"), 0.0);
    let (alloc, pooled, in_use) = (
        value(e, "berth_buffers_allocated"),
        value(e, "berth_buffers_pooled"),
        value(e, "berth_buffers_in_use"),
    );
    assert_eq!(alloc, pooled + in_use);
    if engine == "epoll" {
        assert_eq!(value(e, "berth_ring_buffers"), 0.0);
    }
    assert!(value(e, "berth_uptime_seconds") > 0.0);
}

/// Scrape until `done` holds (the server counts a close a moment after the
/// client sees it), bounded by `TIMEOUT`.
fn scrape_until(addr: SocketAddr, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let mut last = None;
    let got = eventually(|| done(last.insert(scrape(addr))));
    let e = last.expect("scraped at least once");
    assert!(got, "metrics never got there: {e:#?}");
    e
}

fn a_scrape_is_strict_openmetrics_and_counts_echo_traffic_exactly(engine: &str) {
    let (srv, metrics) = serve("echo", engine, &["--io-threads", "2"]);
    let before = scrape(metrics);
    check_families(&before, engine, 2.0);
    assert_eq!(value(&before, "berth_connections_active"), 0.0);
    assert_eq!(value(&before, "berth_connections_accepted_total"), 0.0);

    // Three connections, one larger than a 64 KiB receive buffer.
    let sizes = [1_000usize, 20_000, 150_000];
    let total: usize = sizes.iter().sum();
    let mut conns = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
        let mut s = srv.connect();
        let mut reader = s.try_clone().unwrap();
        let echo = std::thread::spawn(move || {
            let mut got = vec![0; n];
            reader.read_exact(&mut got).unwrap();
            got
        });
        s.write_all(&data).unwrap();
        assert!(echo.join().unwrap() == data, "echo differs");
        conns.push(s);
    }
    let during = scrape(metrics);
    let grew = |e: &Exposition, name: &str| value(e, name) - value(&before, name);
    assert_eq!(value(&during, "berth_connections_active"), 3.0);
    assert_eq!(grew(&during, "berth_connections_accepted_total"), 3.0);
    assert_eq!(grew(&during, "berth_received_bytes_total"), total as f64);
    assert_eq!(grew(&during, "berth_sent_bytes_total"), total as f64);
    for reason in CLOSE_REASONS {
        assert_eq!(closed(&during, reason), 0.0, "{reason}");
    }

    // The clients end their streams first: closes for client_close.
    for mut s in conns {
        s.shutdown(Shutdown::Write).unwrap();
        assert!(read_all(&mut s).is_empty());
    }
    let after = scrape_until(metrics, |e| closed(e, "client_close") == 3.0);
    check_families(&after, engine, 2.0);
    assert_eq!(value(&after, "berth_connections_active"), 0.0);
    assert_eq!(grew(&after, "berth_connections_accepted_total"), 3.0);
    assert_eq!(grew(&after, "berth_received_bytes_total"), total as f64);
    assert_eq!(grew(&after, "berth_sent_bytes_total"), total as f64);
    for reason in &CLOSE_REASONS[1..] {
        assert_eq!(closed(&after, reason), 0.0, "{reason}");
    }
    assert!(value(&after, "berth_uptime_seconds") >= value(&before, "berth_uptime_seconds"));
}

fn other_paths_methods_and_garbage_get_their_status(engine: &str) {
    let (mut srv, metrics) = serve("echo", engine, &[]);
    let status = |request: &[u8]| http(metrics, request, false).status;
    assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), 404);
    assert_eq!(status(b"GET /metrics/x HTTP/1.0\r\n\r\n"), 404);
    let post = http(
        metrics,
        b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.field("Allow"), Some("GET, HEAD"));
    assert_eq!(status(b"hello\r\n\r\n"), 400);
    assert_eq!(status(b"GET /metrics HTTP/1.1\r\n\r\n"), 400); // no Host
    assert_eq!(status(b"GET /metrics HTTP/1.0\r\nBad Name: x\r\n\r\n"), 400);
    assert_eq!(status(b"GET /metrics HTTP/2.0\r\n\r\n"), 505);
    let huge = format!("GET /metrics HTTP/1.0\r\nX: {}\r\n\r\n", "y".repeat(9000));
    assert_eq!(status(huge.as_bytes()), 431);
    let long_target = format!("GET /{} HTTP/1.0\r\n\r\n", "m".repeat(9000));
    assert_eq!(status(long_target.as_bytes()), 414);
    // A head the client ends before its empty line, or inside a line.
    for partial in [&b"GET /metrics HTTP/1.0\r\n"[..], b"GET /metrics HT"] {
        assert_eq!(exchange(metrics, partial, true, false).status, 400);
    }
    // A whole request, then the end of the client's stream: answered.
    let whole = exchange(metrics, b"GET /metrics HTTP/1.0\r\n\r\n", true, false);
    assert_eq!(whole.status, 200);
    // HTTP/1.1 with its Host, a bare-LF head, and HEAD.
    let ok = |r: Reply| r.status == 200 && r.field("Content-Type") == Some(CONTENT_TYPE);
    assert!(ok(http(
        metrics,
        b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        false
    )));
    assert!(ok(http(metrics, b"GET /metrics HTTP/1.0\n\n", false)));
    assert!(ok(http(metrics, b"HEAD /metrics HTTP/1.0\r\n\r\n", true)));
    // None of it touched the main server, which still echoes.
    let e = scrape(metrics);
    assert_eq!(value(&e, "berth_connections_accepted_total"), 0.0);
    let mut s = srv.connect();
    s.write_all(b"ping").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut s), b"ping");
    // SIGTERM stops both servers.
    srv.signal("-TERM");
    assert!(srv.wait_exit().success());
    assert!(TcpStream::connect(metrics).is_err(), "metrics still served");
}

fn refusals_are_counted_by_limit(engine: &str) {
    let (srv, metrics) = serve("echo", engine, &["--max-connections", "1"]);
    let mut first = srv.connect();
    first.write_all(b"x").unwrap();
    let mut got = [0u8; 1];
    first.read_exact(&mut got).unwrap();
    // Over the limit: accepted, then closed at once (an EOF or a reset).
    let mut second = srv.connect();
    let _ = second.read(&mut [0u8; 16]);
    let refused = |e: &Exposition, reason| {
        value_for(e, "berth_connections_refused_total", &[("reason", reason)])
    };
    let e = scrape_until(metrics, |e| refused(e, "max_connections") == 1.0);
    assert_eq!(refused(&e, "max_connections_per_ip"), 0.0);
    assert_eq!(closed(&e, "limit"), 1.0);
    assert_eq!(value(&e, "berth_connections_accepted_total"), 2.0);
    assert_eq!(value(&e, "berth_connections_active"), 1.0);
}

fn pop3_reports_its_worker_queue(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let demo = run_bounded(berth(&["pop3-demo", dir.path().to_str().unwrap()]));
    assert!(demo.status.success());
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let (maildir, users) = (path("maildir"), path("users"));
    let (_srv, metrics) = serve(
        "pop3",
        engine,
        &[
            "--maildir",
            &maildir,
            "--users",
            &users,
            "--io-threads",
            "1",
        ],
    );
    let e = scrape(metrics);
    check_families(&e, engine, 1.0);
    assert_eq!(value(&e, "berth_worker_queue_depth"), 0.0);
}

/// A metrics address in use: one line naming it, and a failure exit.
#[test]
fn a_metrics_address_in_use_is_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = [
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--engine",
        "epoll",
        "--metrics",
        &addr,
    ];
    let out = run_bounded(berth(&args));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("berth:")).collect();
    assert_eq!(
        errors,
        [format!(
            "berth: metrics: cannot listen on {addr}: Address already in use (os error 98)"
        )],
        "{stderr}"
    );
}
