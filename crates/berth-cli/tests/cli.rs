//! The `berth` executable: flags, errors, signals, descriptor exhaustion and
//! the engine fallback. Each server test runs once per engine.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::{BERTH, Running, TIMEOUT, berth, both_engines, read_all, run_bounded};

both_engines!(
    echo_binary_echoes_with_welcome_and_half_close,
    packet_echo_binary_echoes_packets,
    sigterm_drains_and_exits_cleanly,
    a_second_signal_cuts_the_drain_short,
    json_logs_one_object_per_line_with_connection_events_at_debug,
    buffer_size_defaults_per_server_and_a_tiny_one_still_echoes_exactly,
    running_out_of_descriptors_backs_off_without_spinning_and_recovers,
);

fn server(sub: &str, engine: &str, extra: &[&str]) -> Running {
    let mut args = vec![sub, "--listen", "127.0.0.1:0", "--engine", engine];
    args.extend_from_slice(extra);
    Running::spawn(berth(&args))
}

fn echo_binary_echoes_with_welcome_and_half_close(engine: &str) {
    let srv = server("echo", engine, &["--welcome", "hello\r\n", "-v"]);
    let mut s = srv.connect();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let mut reader = s.try_clone().unwrap();
    let rd = std::thread::spawn(move || read_all(&mut reader));
    s.write_all(&data).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let got = rd.join().unwrap();
    assert_eq!(&got[..7], b"hello\r\n");
    assert!(got[7..] == data[..], "echo differs");
    let engine = format!("engine={}", support::engine_name(engine));
    assert!(srv.log.iter().any(|l| l.contains(&engine)));
}

fn packet_echo_binary_echoes_packets(engine: &str) {
    let srv = server("packet-echo", engine, &[]);
    let mut s = srv.connect();
    let packets: Vec<u8> = [2u8, 255, 7, 1]
        .iter()
        .flat_map(|&n| std::iter::once(n).chain((1..n).map(|i| i ^ 0x5a)))
        .collect();
    for chunk in packets.chunks(3) {
        s.write_all(chunk).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut s), packets);
}

/// The echo servers default to 64 KiB buffers, pop3 to 16 KiB; a 64-byte
/// buffer (every receive a fraction of a message) still echoes exactly.
fn buffer_size_defaults_per_server_and_a_tiny_one_still_echoes_exactly(engine: &str) {
    let logged = |srv: &Running, size: &str| {
        srv.log
            .iter()
            .any(|l| l.contains("listening") && l.contains(&format!("buffer_size={size}")))
    };
    for (sub, size) in [("echo", "65536"), ("packet-echo", "65536")] {
        let srv = server(sub, engine, &[]);
        assert!(logged(&srv, size), "{sub}: {:?}", srv.log);
    }
    let dir = std::env::temp_dir().join(format!("berth-bufsize-{}-{engine}", std::process::id()));
    let demo = run_bounded(berth(&["pop3-demo", dir.to_str().unwrap()]));
    assert!(demo.status.success(), "{demo:?}");
    let (maildir, users) = (dir.join("maildir"), dir.join("users"));
    let srv = server(
        "pop3",
        engine,
        &[
            "--maildir",
            maildir.to_str().unwrap(),
            "--users",
            users.to_str().unwrap(),
        ],
    );
    assert!(logged(&srv, "16384"), "pop3: {:?}", srv.log);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);

    let srv = server("echo", engine, &["--buffer-size", "64"]);
    assert!(logged(&srv, "64"), "{:?}", srv.log);
    let mut s = srv.connect();
    let data: Vec<u8> = (0..(256u32 << 10)).map(|i| (i % 253) as u8).collect();
    let mut reader = s.try_clone().unwrap();
    let rd = std::thread::spawn(move || read_all(&mut reader));
    s.write_all(&data).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        rd.join().unwrap() == data,
        "echo through 64-byte buffers differs"
    );
}

fn sigterm_drains_and_exits_cleanly(engine: &str) {
    let mut srv = server("echo", engine, &["--drain-timeout", "5"]);
    let mut clients: Vec<_> = (0..5).map(|_| srv.connect()).collect();
    for c in &mut clients {
        c.write_all(b"ping").unwrap();
        c.read_exact(&mut [0u8; 4]).unwrap();
    }
    srv.signal("-TERM");
    for c in &mut clients {
        assert_eq!(read_all(c), b"", "clean end-of-file on drain");
    }
    assert!(srv.wait_exit().success());
    srv.wait_for("stopped");
}

/// A client that sends and never reads holds the drain up (its echo
/// cannot be written); a second SIGINT resets it at once and the server
/// exits with an error.
fn a_second_signal_cuts_the_drain_short(engine: &str) {
    let control = std::env::temp_dir().join(format!(
        "berth-second-signal-{engine}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&control);
    let mut srv = server(
        "echo",
        engine,
        &[
            "--drain-timeout",
            "600",
            "--control",
            control.to_str().unwrap(),
        ],
    );
    // A small receive buffer, so that the echo backs up quickly.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect_timeout(&srv.addr.into(), TIMEOUT).unwrap();
    let stuck = TcpStream::from(socket);
    let mut writer = stuck.try_clone().unwrap();
    // The client sends and never reads. Its writes block once the server
    // stops reading: the server holds reads back while it cannot send the
    // echo (above the write watermark), and it cannot send while the
    // client does not read. A write blocked for a second says so.
    writer
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (blocked_tx, blocked) = std::sync::mpsc::channel();
    let flood = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..4096 {
            if let Err(e) = writer.write_all(&chunk) {
                let _ = blocked_tx.send(e.kind());
                return;
            }
        }
    });
    let kind = blocked
        .recv_timeout(TIMEOUT)
        .expect("the client's writes block");
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{kind:?}"
    );
    flood.join().unwrap();
    // The server holds echo it cannot send (more than the low watermark).
    let out = support::ctl(&control, &["stats"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let held = s["bytes_in"].as_u64().unwrap() - s["bytes_out"].as_u64().unwrap();
    assert!(held > 32 * 1024, "{s}");
    let mut open = srv.connect();
    open.write_all(b"x").unwrap();
    open.read_exact(&mut [0u8; 1]).unwrap();
    srv.signal("-INT");
    srv.wait_for("draining connections");
    // The idle connection drains at once; the stuck one cannot.
    assert_eq!(read_all(&mut open), b"");
    srv.signal("-INT");
    let status = srv.wait_exit();
    let log = srv.rest_of_log();
    assert_eq!(status.code(), Some(1), "{status:?} {log:#?}");
    assert!(log.iter().any(|l| l.contains("second signal")), "{log:#?}");
    let last = log.last().unwrap();
    assert!(
        last.contains("drain cut short by a second signal"),
        "{last}"
    );
    drop(stuck);
}

/// `--log-format json`: every line is one JSON object; server events at
/// info, connection events (with the close reason) at debug with `-v`.
fn json_logs_one_object_per_line_with_connection_events_at_debug(engine: &str) {
    let mut srv = server("echo", engine, &["--log-format", "json", "-v"]);
    let mut c = srv.connect();
    c.write_all(b"hello").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"hello");
    srv.wait_for("connection closed");
    srv.signal("-TERM");
    assert!(srv.wait_exit().success());
    srv.rest_of_log();
    let events: Vec<serde_json::Value> = srv
        .log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in {events:#?}"))
    };
    let listening = find("listening");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["addr"], srv.addr.to_string());
    let opened = find("connection opened");
    assert_eq!(opened["level"], "DEBUG");
    assert!(opened["peer"].is_string());
    let closed = find("connection closed");
    assert_eq!(closed["level"], "DEBUG");
    assert_eq!(closed["reason"], "client_close");
    assert_eq!(find("draining connections")["level"], "INFO");
    let stopped = find("stopped");
    assert_eq!(
        (stopped["bytes_in"].as_u64(), stopped["bytes_out"].as_u64()),
        (Some(5), Some(5))
    );
    // Nothing per message: one connection, two connection lines.
    let per_conn = events.iter().filter(|e| e["level"] == "DEBUG").count();
    assert_eq!(per_conn, 2, "{events:#?}");
}

/// RUST_LOG sets the filter, BERTH_LOG still works, and RUST_LOG wins
/// when both are set.
#[test]
fn rust_log_sets_the_filter_before_berth_log() {
    let run = |env: &[(&str, &str)]| {
        let mut cmd = berth(&["echo", "--listen", "127.0.0.1:0"]);
        cmd.envs(env.iter().copied());
        let mut srv = Running::spawn(cmd);
        let mut c = srv.connect();
        c.write_all(b"x").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c), b"x");
        srv.signal("-TERM");
        assert!(srv.wait_exit().success());
        srv.rest_of_log();
        srv.log.iter().any(|l| l.contains("connection closed"))
    };
    assert!(run(&[("RUST_LOG", "debug")]), "RUST_LOG=debug");
    assert!(run(&[("BERTH_LOG", "debug")]), "BERTH_LOG=debug");
    assert!(
        !run(&[("RUST_LOG", "info"), ("BERTH_LOG", "debug")]),
        "RUST_LOG first"
    );
}

#[test]
fn drain_timeout_defaults_to_thirty_seconds() {
    let out = berth(&["echo", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--drain-timeout"))
        .take(4)
        .collect::<String>();
    assert!(line.contains("[default: 30]"), "{line}");
    for flag in ["--control <PATH>", "--log-format <FORMAT>"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

fn running_out_of_descriptors_backs_off_without_spinning_and_recovers(engine: &str) {
    // A child shell lowers the descriptor limit, then becomes the server.
    let script = format!(
        "ulimit -n 40 && exec {BERTH} echo --listen 127.0.0.1:0 --io-threads 1 --engine {engine} \
         --max-connections 1000"
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).env_remove("BERTH_ENGINE");
    let mut srv = Running::spawn(cmd);
    // More connections than the server has descriptors for; the rest wait
    // in the kernel backlog.
    let mut clients: Vec<_> = (0..60).map(|_| srv.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&[i as u8]).unwrap();
    }
    srv.wait_for("backing off");
    // While out of descriptors, the server does not spin.
    let before = srv.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = srv.cpu_ticks() - before;
    assert!(
        used < 25,
        "server used {used} ticks of CPU in 1 s while out of descriptors"
    );
    // Connections already accepted are still served.
    clients[0].read_exact(&mut [0u8; 1]).unwrap();
    clients[0].write_all(b"x").unwrap();
    clients[0].read_exact(&mut [0u8; 1]).unwrap();
    // Free descriptors: the waiting connections are accepted and served.
    let waiting = clients.split_off(20);
    drop(clients);
    for (i, mut c) in waiting.into_iter().enumerate() {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], (i + 20) as u8);
    }
}

#[test]
fn bad_flag_prints_one_line_and_fails() {
    let out = berth(&["echo", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    let out = berth(&["echo", "--io-threads", "zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}

#[test]
fn address_in_use_prints_one_line_and_fails() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = berth(&["echo", "--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap();
    assert!(
        last.contains("cannot listen on") && last.contains("in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn engine_is_chosen_by_environment_variable() {
    let mut cmd = berth(&["echo", "--listen", "127.0.0.1:0"]);
    cmd.env("BERTH_ENGINE", "epoll");
    let srv = Running::spawn(cmd);
    assert!(
        srv.log.iter().any(|l| l.contains("engine=epoll")),
        "{:?}",
        srv.log
    );
}

fn no_uring(args: &[&str]) -> Command {
    let wrapper = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/no_uring.py");
    let mut c = Command::new("python3");
    c.arg(wrapper)
        .arg(BERTH)
        .args(args)
        .env_remove("BERTH_ENGINE");
    c
}

#[test]
fn auto_falls_back_to_epoll_when_seccomp_denies_io_uring() {
    let mut srv = Running::spawn(no_uring(&["echo", "--listen", "127.0.0.1:0"]));
    let warning = srv
        .log
        .iter()
        .find(|l| l.contains("falling back to epoll"))
        .cloned()
        .unwrap_or_else(|| srv.wait_for("falling back"));
    assert!(
        warning.contains("EPERM") && warning.contains("seccomp"),
        "{warning}"
    );
    assert!(srv.log.iter().any(|l| l.contains("engine=epoll")));
    let mut s = srv.connect();
    s.write_all(b"served by epoll").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut s), b"served by epoll");
}

#[test]
fn forcing_uring_where_it_is_denied_is_a_clear_error() {
    let out = no_uring(&["echo", "--listen", "127.0.0.1:0", "--engine", "uring"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("io_uring engine is unavailable") && err.contains("EPERM"),
        "{err}"
    );
}
