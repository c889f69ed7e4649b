//! `berth bench` against berth's own servers: every mode checks every echoed
//! byte, reports JSON, and fails clearly when nothing answers; its
//! attackers (`--slowloris`, `--never-read`) run beside the load and stop
//! with it.

mod support;

use support::*;

both_engines!(
    bench_ping_pong_and_pipelined_against_echo,
    bench_packet_mode_against_packet_echo,
    bench_churn_and_open_loop,
    bench_churn_moves_past_ports_other_sockets_hold,
    bench_attackers_run_beside_the_load_and_stop_with_it,
    bench_slowloris_shed_by_the_frame_timeout_come_back_with_reconnect,
);

/// Run `berth bench` against `srv` for 0.5 s and return its JSON line.
fn bench(srv: &Running, engine: &str, extra: &[&str]) -> String {
    bench_for(srv, engine, "0.5", extra)
}

/// Run `berth bench` against `srv` for `duration` seconds and return its
/// JSON line.
fn bench_for(srv: &Running, engine: &str, duration: &str, extra: &[&str]) -> String {
    let addr = srv.addr.to_string();
    let mut args = vec![
        "bench",
        "--addr",
        &addr,
        "--engine",
        engine,
        "--duration",
        duration,
        "--warmup",
        "0.2",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = run_bounded(berth(&args));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "bench failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_owned()
}

/// A number field of the bench's one-line JSON.
fn field(json: &str, name: &str) -> f64 {
    let at = json
        .find(&format!("\"{name}\": "))
        .unwrap_or_else(|| panic!("{name} in {json}"));
    let rest = &json[at + name.len() + 4..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim().parse().unwrap()
}

/// The load runs of this file, one at a time: each measures a window of
/// half a second, and the attackers' thousands of sockets or another
/// churn run beside it would make that window say more about the machine
/// than about the bench.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn server(sub: &str, engine: &str) -> Running {
    Running::spawn(berth(&[sub, "--listen", "127.0.0.1:0", "--engine", engine]))
}

fn bench_ping_pong_and_pipelined_against_echo(engine: &str) {
    let _serial = one_at_a_time();
    let srv = server("echo", engine);
    for extra in [
        &["--conns", "10"][..],
        &["--conns", "10", "--depth", "8", "--size", "4096"],
        // A window of 80 KB spans two 64 KiB buffers: a message straddles.
        &["--conns", "4", "--depth", "8", "--size", "10000"],
    ] {
        let json = bench(&srv, engine, extra);
        assert!(field(&json, "messages") > 0.0, "{json}");
        assert_eq!(field(&json, "mismatches"), 0.0, "{json}");
        assert_eq!(field(&json, "connect_errors"), 0.0, "{json}");
        assert!(field(&json, "p99_us") >= field(&json, "p50_us"), "{json}");
    }
}

fn bench_packet_mode_against_packet_echo(engine: &str) {
    let _serial = one_at_a_time();
    let srv = server("packet-echo", engine);
    // 1000-byte messages travel as several packets of at most 255 bytes.
    let json = bench(
        &srv,
        engine,
        &["--mode", "packet", "--size", "1000", "--conns", "4"],
    );
    assert!(field(&json, "messages") > 0.0, "{json}");
    assert_eq!(field(&json, "mismatches"), 0.0, "{json}");
}

fn bench_churn_and_open_loop(engine: &str) {
    let _serial = one_at_a_time();
    let srv = server("echo", engine);
    // Churn against loopback connects from 127.0.0.2-5 by default, with
    // ports chosen in turn; `--source` names the addresses instead.
    for extra in [
        &["--churn", "--conns", "4"][..],
        &["--churn", "--conns", "4", "--source", "127.0.0.6,127.0.0.7"],
    ] {
        let json = bench(&srv, engine, extra);
        assert!(field(&json, "conns_per_sec") > 0.0, "{json}");
        // Not one connect fails, however busy the machine: a chosen port
        // that another socket holds is left for the next one (a retry, see
        // the next test), and a refused or timed-out connect is an error
        // (its kind is in the JSON).
        assert_eq!(field(&json, "connect_errors"), 0.0, "{json}");
        assert_eq!(field(&json, "mismatches"), 0.0, "{json}");
    }
    let json = bench(&srv, engine, &["--conns", "4", "--rate", "2000"]);
    let rate = field(&json, "msgs_per_sec");
    assert!(
        (1000.0..3000.0).contains(&rate),
        "open loop at 2000/s gave {rate}: {json}"
    );
}

/// Ports the churn would connect from, held by sockets that are not the
/// run's: bound there without `SO_REUSEADDR` (or listening there, or on the
/// wildcard address). The connect is dialled again from the next port and
/// counted as a retry, not as a failed connect.
fn bench_churn_moves_past_ports_other_sockets_hold(engine: &str) {
    use socket2::{Domain, Socket, Type};
    let _serial = one_at_a_time();
    let srv = server("echo", engine);
    // Every 32nd port of 127.0.0.8 (those that are free): a run of a
    // thousand connects or more from there meets dozens of them.
    let held: Vec<Socket> = (1024..=u16::MAX)
        .step_by(32)
        .filter_map(|port| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let at = std::net::SocketAddr::from(([127, 0, 0, 8], port));
            s.bind(&at.into()).ok().map(|()| s)
        })
        .collect();
    assert!(held.len() > 1000, "{} ports held", held.len());
    let json = bench(
        &srv,
        engine,
        &["--churn", "--conns", "4", "--source", "127.0.0.8"],
    );
    assert_eq!(field(&json, "connect_errors"), 0.0, "{json}");
    assert_eq!(field(&json, "mismatches"), 0.0, "{json}");
    assert!(field(&json, "connect_retries") > 0.0, "{json}");
    assert!(
        json.contains(r#""connect_retries_by_kind": {"AddrInUse": "#),
        "{json}"
    );
    drop(held);
}

#[test]
fn bench_against_nothing_fails_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let addr = format!("127.0.0.1:{port}");
    // Churn too: from ports it chooses, a refusal is still an error.
    for churn in [&[][..], &["--churn"]] {
        let mut args = vec![
            "bench",
            "--addr",
            &addr,
            "--duration",
            "0.3",
            "--warmup",
            "0",
            "--json",
        ];
        args.extend_from_slice(churn);
        let out = run_bounded(berth(&args));
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("no message was echoed"), "{err}");
        assert!(err.contains("ConnectionRefused"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn bench_source_is_used_and_checked() {
    let srv = server("echo", "epoll");
    let addr = srv.addr.to_string();
    let run = |source: &str| {
        run_bounded(berth(&[
            "bench",
            "--addr",
            &addr,
            "--conns",
            "2",
            "--duration",
            "0.3",
            "--warmup",
            "0",
            "--json",
            "--source",
            source,
        ]))
    };
    // Not an address of this host: every connect fails, so nothing is echoed.
    let out = run("192.0.2.1");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no message was echoed"), "{err}");
    assert!(!err.contains("(0 connect errors)"), "{err}");
    // Another address family than --addr: refused before connecting.
    let out = run("::1");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not of the same address family"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

fn bench_attackers_run_beside_the_load_and_stop_with_it(engine: &str) {
    let _serial = one_at_a_time();
    let srv = server("echo", engine);
    let t0 = std::time::Instant::now();
    let json = bench(
        &srv,
        engine,
        &[
            "--conns",
            "4",
            "--depth",
            "4",
            "--slowloris",
            "50",
            "--slowloris-interval",
            "0.1",
            "--never-read",
            "2",
        ],
    );
    // The run (0.7 s) and its attackers end together, well within bounds.
    assert!(t0.elapsed().as_secs() < 10, "{:?}: {json}", t0.elapsed());
    assert!(field(&json, "messages") > 0.0, "{json}");
    assert_eq!(field(&json, "mismatches"), 0.0, "{json}");
    assert_eq!(field(&json, "connect_errors"), 0.0, "{json}");
    assert_eq!(field(&json, "slowloris_open"), 50.0, "{json}");
    assert_eq!(field(&json, "slowloris_closed"), 0.0, "{json}");
    assert_eq!(field(&json, "slowloris_connect_errors"), 0.0, "{json}");
    // A byte every 0.1 s each, for most of 0.7 s.
    assert!(field(&json, "slowloris_bytes") >= 100.0, "{json}");
    assert_eq!(field(&json, "never_read_open"), 2.0, "{json}");
    assert_eq!(field(&json, "never_read_closed"), 0.0, "{json}");
    // The never-reading clients filled at least their socket buffers.
    assert!(field(&json, "never_read_bytes") > 100_000.0, "{json}");
    assert!(field(&json, "attack_ready_ms") > 0.0, "{json}");
    // The server is still there for everyone else.
    let json = bench(&srv, engine, &["--conns", "2"]);
    assert!(field(&json, "messages") > 0.0, "{json}");
}

fn bench_slowloris_shed_by_the_frame_timeout_come_back_with_reconnect(engine: &str) {
    let _serial = one_at_a_time();
    // packet-echo closes a packet still incomplete a second after its
    // first byte; a slowloris packet takes 255 bytes at 10 a second.
    let srv = Running::spawn(berth(&[
        "packet-echo",
        "--listen",
        "127.0.0.1:0",
        "--engine",
        engine,
        "--frame-timeout",
        "1",
    ]));
    let attack = |reconnect: &[&'static str]| {
        let mut extra = vec![
            "--mode",
            "packet",
            "--conns",
            "2",
            "--slowloris",
            "20",
            "--slowloris-interval",
            "0.1",
        ];
        extra.extend_from_slice(reconnect);
        bench_for(&srv, engine, "2.5", &extra)
    };
    let json = attack(&["--attack-reconnect"]);
    assert_eq!(field(&json, "mismatches"), 0.0, "{json}");
    // The good clients' packets complete at once: none of them is closed.
    assert_eq!(field(&json, "closes"), 0.0, "{json}");
    let closed = field(&json, "slowloris_closed");
    assert!(closed >= 20.0, "{json}");
    assert!(
        field(&json, "slowloris_reconnects") >= closed - 20.0,
        "{json}"
    );
    assert!(field(&json, "slowloris_reconnects") > 0.0, "{json}");
    // Without --attack-reconnect they stay closed.
    let json = attack(&[]);
    let closed = field(&json, "slowloris_closed");
    assert_eq!(closed, 20.0, "{json}");
    assert_eq!(field(&json, "slowloris_reconnects"), 0.0, "{json}");
    assert_eq!(field(&json, "slowloris_open"), 0.0, "{json}");
}
