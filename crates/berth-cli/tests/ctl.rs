//! `--control PATH` and `berth ctl`: pause and resume, stats, the drain,
//! the protocol spoken directly, and the socket's life (mode, stale and
//! live sockets, errors). Each server test runs once per engine.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Running, berth, both_engines, ctl, eventually, read_all};

both_engines!(
    pause_leaves_new_connections_in_the_backlog_until_resume,
    stats_has_the_documented_keys_and_counts_the_traffic,
    ctl_shutdown_drains_and_the_server_exits_cleanly,
    the_protocol_is_newline_delimited_json,
    a_stale_socket_is_replaced_and_a_live_one_is_an_error,
    pop3_stats_report_the_worker_queue,
);

/// A temporary directory for the control socket (`control` in it),
/// removed on drop.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> TempDir {
        TempDir(tempfile::tempdir().unwrap())
    }

    fn socket(&self) -> PathBuf {
        self.0.path().join("control")
    }
}

/// `berth echo` on `engine` with its control socket at `control`.
fn echo_command(engine: &str, control: &Path, extra: &[&str]) -> Command {
    let mut args = vec![
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--engine",
        engine,
        "--control",
        control.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    berth(&args)
}

fn server(engine: &str, control: &Path, extra: &[&str]) -> Running {
    Running::spawn(echo_command(engine, control, extra))
}

/// `berth ctl ... ARGS`: its stdout, after checking it succeeded.
fn ctl_ok(control: &Path, args: &[&str]) -> String {
    let out = ctl(control, args);
    assert!(out.status.success(), "ctl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn stats(control: &Path) -> Value {
    let out = ctl_ok(control, &["stats"]);
    assert_eq!(out.lines().count(), 1, "one JSON object on one line: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Whether `c` gets its byte echoed within `window`.
fn echoed_within(c: &mut TcpStream, window: Duration) -> bool {
    c.set_read_timeout(Some(window)).unwrap();
    let got = c.read(&mut [0u8; 1]);
    c.set_read_timeout(Some(support::TIMEOUT)).unwrap();
    matches!(got, Ok(1))
}

fn pause_leaves_new_connections_in_the_backlog_until_resume(engine: &str) {
    let dir = TempDir::new();
    let mut srv = server(engine, &dir.socket(), &[]);
    let mut before = srv.connect();
    before.write_all(b"a").unwrap();
    before.read_exact(&mut [0u8; 1]).unwrap();

    assert_eq!(ctl_ok(&dir.socket(), &["pause"]).trim(), "accepting paused");
    srv.wait_for("accepting paused");
    assert_eq!(stats(&dir.socket())["paused"], true);
    // On io_uring an accept already armed may still take a connection
    // that races the pause; a probe that is not answered shows the pause
    // is in force.
    let mut waiting = None;
    for _ in 0..3 {
        let mut probe = srv.connect();
        probe.write_all(b"p").unwrap();
        if !echoed_within(&mut probe, Duration::from_millis(300)) {
            waiting = Some(probe);
            break;
        }
    }
    let mut waiting = waiting.expect("a connection made while paused is not served");
    // Connections already accepted are still served.
    before.write_all(b"b").unwrap();
    before.read_exact(&mut [0u8; 1]).unwrap();

    assert_eq!(
        ctl_ok(&dir.socket(), &["resume"]).trim(),
        "accepting resumed"
    );
    let mut b = [0u8; 1];
    waiting.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"p", "served after resume");
    assert_eq!(stats(&dir.socket())["paused"], false);
}

fn stats_has_the_documented_keys_and_counts_the_traffic(engine: &str) {
    let dir = TempDir::new();
    let srv = server(engine, &dir.socket(), &["--io-threads", "2"]);
    // The fields come in the documented order, for people reading it.
    let line = ctl_ok(&dir.socket(), &["stats"]);
    assert!(line.starts_with(r#"{"engine":"#), "{line}");
    assert!(
        line.contains(r#""closed_by_reason":{"client_close":0,"server_close":0,"reset":0,"#),
        "{line}"
    );
    let s = stats(&dir.socket());
    assert_eq!(
        keys(&s),
        BTreeSet::from([
            "engine",
            "io_threads",
            "paused",
            "draining",
            "uptime_secs",
            "connections",
            "bytes_in",
            "bytes_out",
            "buffers",
            "worker_queue_depth",
        ])
    );
    assert_eq!(
        keys(&s["connections"]),
        BTreeSet::from([
            "active",
            "accepted",
            "closed",
            "closed_by_reason",
            "refused_max_connections",
            "refused_per_ip",
        ])
    );
    assert_eq!(
        keys(&s["connections"]["closed_by_reason"]),
        BTreeSet::from(support::CLOSE_REASONS)
    );
    assert_eq!(
        keys(&s["buffers"]),
        BTreeSet::from(["allocated", "pooled", "in_use"])
    );
    assert_eq!(s["engine"], support::engine_name(engine));
    assert_eq!(s["io_threads"], 2);
    assert_eq!(s["paused"], false);
    assert_eq!(s["draining"], false);
    assert!(s["uptime_secs"].is_u64());
    assert_eq!(s["worker_queue_depth"], 0);
    assert_eq!(s["bytes_in"], 0);
    assert_eq!(s["connections"]["accepted"], 0);

    // Three clients echo; two of them end their stream and close.
    let mut echoed = 0u64;
    let mut clients: Vec<_> = (0..3).map(|_| srv.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let data = vec![b'a' + i as u8; 1000 * (i + 1)];
        c.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
        echoed += data.len() as u64;
    }
    let open = clients.pop().unwrap();
    for mut c in clients {
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c), b"");
    }
    // The counters move on the IO threads just after the client sees the
    // bytes: wait until they settle.
    let mut last = Value::Null;
    let settled = eventually(|| {
        last = stats(&dir.socket());
        last["connections"]["closed"] == 2 && last["bytes_out"] == echoed
    });
    assert!(settled, "stats never settled: {last}");
    let c = &last["connections"];
    assert_eq!(last["bytes_in"], echoed, "{last}");
    assert_eq!(last["bytes_out"], echoed, "{last}");
    assert_eq!(c["accepted"], 3);
    assert_eq!(c["active"], 1);
    assert_eq!(c["closed_by_reason"]["client_close"], 2);
    let b = &last["buffers"];
    assert_eq!(
        b["allocated"].as_u64().unwrap(),
        b["pooled"].as_u64().unwrap() + b["in_use"].as_u64().unwrap(),
        "{b}"
    );
    assert!(b["allocated"].as_u64().unwrap() >= 1, "{b}");
    drop(open);
}

fn ctl_shutdown_drains_and_the_server_exits_cleanly(engine: &str) {
    let dir = TempDir::new();
    let mut srv = server(engine, &dir.socket(), &[]);
    let mut clients: Vec<_> = (0..4).map(|_| srv.connect()).collect();
    for c in &mut clients {
        c.write_all(b"ping").unwrap();
        c.read_exact(&mut [0u8; 4]).unwrap();
    }
    let said = ctl_ok(&dir.socket(), &["shutdown", "--deadline", "5"]);
    assert!(said.contains("draining") && said.contains("5 s"), "{said}");
    for c in &mut clients {
        assert_eq!(read_all(c), b"", "clean end-of-file on drain");
    }
    let status = srv.wait_exit();
    assert!(status.success(), "{status:?}");
    srv.read_log_to_end();
    let log = &srv.log;
    assert!(
        log.iter()
            .any(|l| l.contains("draining connections (berth ctl shutdown)")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:#?}");
    assert!(
        !dir.socket().exists(),
        "the control socket is removed at exit"
    );
}

/// A client speaking the protocol without `berth ctl`, as a script with
/// socat would: one line per request, several on one connection.
fn the_protocol_is_newline_delimited_json(engine: &str) {
    let dir = TempDir::new();
    let _srv = server(engine, &dir.socket(), &[]);
    let mode = std::fs::metadata(dir.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    let stream = UnixStream::connect(dir.socket()).unwrap();
    stream.set_read_timeout(Some(support::TIMEOUT)).unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
    let mut ask = |request: &str| -> Value {
        (&stream).write_all(request.as_bytes()).unwrap();
        (&stream).write_all(b"\n").unwrap();
        let line = lines.next().expect("an answer").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let v = ask(r#"{"cmd":"stats"}"#);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["stats"]["connections"]["closed_by_reason"].is_object());
    let v = ask(r#"{"cmd":"pause"}"#);
    assert_eq!(
        (v["ok"].clone(), v["paused"].clone()),
        (true.into(), true.into())
    );
    let v = ask(r#"{"cmd":"resume"}"#);
    assert_eq!(
        (v["ok"].clone(), v["paused"].clone()),
        (true.into(), false.into())
    );
    let v = ask(r#"{"cmd":"reboot"}"#);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("reboot"), "{v}");
    let v = ask("not json");
    assert_eq!(v["ok"], false);
    // The connection is still usable after a bad request.
    assert_eq!(ask(r#"{"cmd":"stats"}"#)["ok"], true);

    // A request without the final newline, then end of stream.
    let mut one = UnixStream::connect(dir.socket()).unwrap();
    one.set_read_timeout(Some(support::TIMEOUT)).unwrap();
    one.write_all(br#"{"cmd":"stats"}"#).unwrap();
    one.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    one.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.lines().count(), 1, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["ok"], true);
}

fn a_stale_socket_is_replaced_and_a_live_one_is_an_error(engine: &str) {
    let dir = TempDir::new();
    // A socket file whose process is gone: nothing listens on it.
    drop(UnixListener::bind(dir.socket()).unwrap());
    assert!(dir.socket().exists());
    let mut srv = server(engine, &dir.socket(), &[]);
    assert!(
        srv.log
            .iter()
            .any(|l| l.contains("replaced a stale control socket")),
        "{:#?}",
        srv.log
    );
    assert_eq!(stats(&dir.socket())["connections"]["accepted"], 0);

    // A second server on the same control socket refuses to start.
    let second = support::run_bounded(echo_command(engine, &dir.socket(), &[]));
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let err = String::from_utf8(second.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "another server is running on {}",
            dir.socket().display()
        )),
        "{err}"
    );
    // The first one still answers.
    assert_eq!(stats(&dir.socket())["paused"], false);
    srv.signal("-TERM");
    assert!(srv.wait_exit().success());
}

fn pop3_stats_report_the_worker_queue(engine: &str) {
    let dir = TempDir::new();
    let demo = support::run_bounded(berth(&["pop3-demo", dir.0.path().to_str().unwrap()]));
    assert!(demo.status.success(), "{demo:?}");
    let (maildir, users) = (dir.0.path().join("maildir"), dir.0.path().join("users"));
    let control = dir.socket();
    let _srv = Running::spawn(berth(&[
        "pop3",
        "--listen",
        "127.0.0.1:0",
        "--engine",
        engine,
        "--maildir",
        maildir.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
    ]));
    let s = stats(&control);
    assert_eq!(s["worker_queue_depth"], 0, "{s}");
    assert!(s["buffers"]["allocated"].as_u64().is_some(), "{s}");
}

#[test]
fn a_missing_or_dead_socket_is_one_line_and_a_failure() {
    let dir = TempDir::new();
    let out = ctl(&dir.socket(), &["stats"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no control socket at"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A socket file that nothing listens on any more.
    drop(UnixListener::bind(dir.socket()).unwrap());
    let out = ctl(&dir.socket(), &["pause"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nothing answers on"), "{err}");
}

#[test]
fn a_control_path_that_is_not_a_socket_is_left_alone() {
    let dir = TempDir::new();
    std::fs::write(dir.socket(), b"precious").unwrap();
    let out = support::run_bounded(berth(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--control",
        dir.socket().to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read(dir.socket()).unwrap(), b"precious");
}

#[test]
fn ctl_without_control_is_a_usage_error() {
    let out = support::run_bounded(berth(&["ctl", "stats"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--control"), "{err}");
}
