//! systemd: the units in `deploy/`, and the binary run the way systemd
//! runs them: the unit's `ExecStart` command, the listening socket
//! inherited as descriptor 3 with `LISTEN_PID`/`LISTEN_FDS`, and
//! `NOTIFY_SOCKET` naming a datagram socket the test reads (`READY=1`,
//! `STOPPING=1`). Each server test runs once per engine.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Command, Stdio};

use support::{BERTH, Running, TIMEOUT, berth, both_engines, clean_env, read_all, run_bounded};

both_engines!(the_service_runs_on_the_socket_systemd_passes_and_reports_readiness);

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");

/// The settings of a unit file: (section, key, value), in order.
fn unit(name: &str) -> Vec<(String, String, String)> {
    let path = Path::new(DEPLOY).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}: not a setting: {line}"));
        settings.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    settings
}

fn setting<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    unit.iter()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .unwrap_or_else(|| panic!("no [{section}] {key}= in {unit:?}"))
}

/// The service's `ExecStart` command, with the binary under test and the
/// runtime directory moved to `runtime`.
fn exec_start(runtime: &Path) -> Vec<String> {
    let service = unit("berth-echo.service");
    let words: Vec<String> = setting(&service, "Service", "ExecStart")
        .split_whitespace()
        .map(|w| w.replace("/run/berth-echo", runtime.to_str().unwrap()))
        .collect();
    assert!(words[0].ends_with("/berth"), "{words:?}");
    std::iter::once(BERTH.to_owned())
        .chain(words.into_iter().skip(1))
        .collect()
}

fn next_notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// As systemd starts `berth-echo.service` when `berth-echo.socket` gets
/// a connection: the command of `ExecStart`, the socket as descriptor 3,
/// `LISTEN_PID` = the service's pid, `LISTEN_FDS=1`, `NOTIFY_SOCKET`.
/// On io_uring the notification socket is a path, on epoll an abstract
/// address (systemd uses either).
fn the_service_runs_on_the_socket_systemd_passes_and_reports_readiness(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (notify, notify_name) = if engine == "uring" {
        let path = dir.path().join("notify");
        (
            UnixDatagram::bind(&path).unwrap(),
            path.to_str().unwrap().to_owned(),
        )
    } else {
        let name = format!("berth-test-notify-{}", std::process::id());
        let abstract_addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        (
            UnixDatagram::bind_addr(&abstract_addr).unwrap(),
            format!("@{name}"),
        )
    };
    notify.set_read_timeout(Some(TIMEOUT)).unwrap();

    let mut args = exec_start(dir.path());
    args.extend([
        "--engine".to_owned(),
        engine.to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
    ]);
    // The shell hands the socket (its standard input) on as descriptor 3
    // and execs the server, which keeps the shell's pid: LISTEN_PID=$$.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec 3<&0 </dev/null; exec "$@""#)
        .arg("sh")
        .args(&args);
    clean_env(&mut cmd);
    cmd.env("NOTIFY_SOCKET", &notify_name);
    let mut srv = Running::spawn_with_stdin(cmd, Stdio::from(OwnedFd::from(listener)));

    assert_eq!(srv.addr, addr, "serves the inherited socket, not --listen");
    assert!(
        srv.log
            .iter()
            .any(|l| l.contains("the socket systemd passed")),
        "{:#?}",
        srv.log
    );
    assert_eq!(next_notification(&notify), "READY=1");
    let mut c = srv.connect();
    c.write_all(b"activated").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"activated");
    // The unit's --control socket is there, in the runtime directory.
    let stats = support::ctl(&dir.path().join("control"), &["stats"]);
    assert!(stats.status.success(), "{stats:?}");

    srv.signal("-TERM");
    assert_eq!(next_notification(&notify), "STOPPING=1");
    let status = srv.wait_exit();
    assert!(status.success(), "{status:?}");
}

/// `LISTEN_PID` naming another process (the variables were inherited from
/// a parent): nothing is adopted and the server binds `--listen`.
#[test]
fn socket_activation_meant_for_another_process_is_ignored() {
    let mut cmd = berth(&["echo", "--listen", "127.0.0.1:0"]);
    cmd.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let srv = Running::spawn(cmd);
    let mut c = srv.connect();
    c.write_all(b"own listener").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"own listener");
}

/// A descriptor 3 that is not a listening TCP socket: one line, exit 1.
#[test]
fn an_inherited_descriptor_that_is_not_a_listener_is_a_clear_error() {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec 3</dev/null; exec "$@""#)
        .arg("sh")
        .args([BERTH, "echo", "--listen", "127.0.0.1:0"]);
    clean_env(&mut cmd);
    let out = run_bounded(cmd);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not a listening TCP socket: not a socket"),
        "{err}"
    );
}

#[test]
fn the_units_say_what_the_binary_expects() {
    let service = unit("berth-echo.service");
    assert_eq!(setting(&service, "Service", "Type"), "notify");
    assert_eq!(setting(&service, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(setting(&service, "Unit", "Requires"), "berth-echo.socket");
    assert_eq!(
        setting(&service, "Service", "RuntimeDirectory"),
        "berth-echo"
    );
    let exec = setting(&service, "Service", "ExecStart");
    assert!(
        exec.contains(" echo ") && exec.contains("--control /run/berth-echo/"),
        "{exec}"
    );
    // systemd's stop timeout outlasts the drain.
    let drain: u64 = exec
        .split_whitespace()
        .skip_while(|w| *w != "--drain-timeout")
        .nth(1)
        .map_or(30, |s| s.parse().unwrap());
    let stop: u64 = setting(&service, "Service", "TimeoutStopSec")
        .parse()
        .unwrap();
    assert!(
        stop > drain,
        "TimeoutStopSec={stop} <= --drain-timeout {drain}"
    );
    let socket = unit("berth-echo.socket");
    assert_eq!(setting(&socket, "Socket", "ListenStream"), "127.0.0.1:5001");
    assert_eq!(
        socket
            .iter()
            .filter(|(s, k, _)| s == "Socket" && k.starts_with("Listen"))
            .count(),
        1,
        "one listener: berth serves one"
    );
    assert_eq!(setting(&socket, "Install", "WantedBy"), "sockets.target");
}

/// Where `systemd-analyze` is installed, it checks the units too (with
/// `ExecStart` pointing at the binary under test, which must exist).
#[test]
fn systemd_analyze_verifies_the_units_where_it_is_installed() {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("systemd-analyze not installed; the units' keys are checked by the test above");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["berth-echo.service", "berth-echo.socket"] {
        let text = std::fs::read_to_string(Path::new(DEPLOY).join(name)).unwrap();
        let text = text.replace("/usr/local/bin/berth", BERTH);
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg(dir.path().join("berth-echo.socket"))
        .arg(dir.path().join("berth-echo.service"));
    let out = run_bounded(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for bad in [
        "Unknown",
        "ignoring",
        "Failed",
        "bad",
        "Refusing",
        "not executable",
    ] {
        assert!(!err.contains(bad), "{err}");
    }
}
