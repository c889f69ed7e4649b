//! Test support shared by the integration tests of the `berth` executable:
//! one test per engine, a spawned server process with its log, and bounded
//! waits. Each test file uses it with `mod support;`.

// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `berth` executable under test.
pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// The bound on every wait: log lines, connections, reads, process exit.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Define one `#[test]` per engine for each named function taking the
/// engine name: `uring::NAME` calls `NAME("uring")`, `epoll::NAME` calls
/// `NAME("epoll")`. Attributes may follow a name, for both tests
/// (`NAME #[ignore = "why"]`) or for one engine's
/// (`NAME uring #[ignore = "why"]`).
macro_rules! both_engines {
    ($( $name:ident $(#[$both:meta])* $(uring #[$uring:meta])* $(epoll #[$epoll:meta])* ),* $(,)?) => {
        mod uring {
            $( #[test] $(#[$both])* $(#[$uring])* fn $name() { super::$name("uring") } )*
        }
        mod epoll {
            $( #[test] $(#[$both])* $(#[$epoll])* fn $name() { super::$name("epoll") } )*
        }
    };
}
pub(crate) use both_engines;

/// A `berth` server process; killed on drop.
pub struct Running {
    pub child: Child,
    /// The address from the `listening addr=...` log line.
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// The log lines read so far.
    pub log: Vec<String>,
}

impl Running {
    /// Spawn `cmd` with its stderr captured, and wait until it logs the
    /// address it listens on.
    pub fn spawn(cmd: Command) -> Running {
        Running::spawn_with_stdin(cmd, Stdio::null())
    }

    /// [`Running::spawn`], with `stdin` as the process's standard input
    /// (a way to hand it a socket without unsafe code).
    pub fn spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> Running {
        cmd.stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn berth");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut r = Running {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
            log: Vec::new(),
        };
        let line = r.wait_for("listening");
        r.addr = listening_addr(&line);
        r
    }

    /// Wait for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let end = Instant::now() + TIMEOUT;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}; log so far: {:#?}", self.log);
    }

    /// Collect the log lines that have arrived, without waiting.
    pub fn collect_log(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// The log lines written so far (without waiting) that contain `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.collect_log()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Read the log to its end (the server has exited).
    pub fn read_log_to_end(&mut self) {
        let end = Instant::now() + TIMEOUT;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        panic!("the log did not end; log so far: {:#?}", self.log);
    }

    /// A connection to the server, with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, TIMEOUT).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
        s
    }

    /// Send a signal (`"-TERM"`, ...) to the server with `kill`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// The log lines not read yet, up to the end of the server's stderr
    /// (call after it exited).
    pub fn rest_of_log(&mut self) -> Vec<String> {
        let read = self.log.len();
        self.read_log_to_end();
        self.log[read..].to_vec()
    }

    /// Wait for the server to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < end, "berth did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// After the process has exited: read the rest of its log (until its
    /// stderr closes) into `log`, and return the last line.
    pub fn last_log_line(&mut self) -> String {
        self.read_log_to_end();
        self.log.last().cloned().unwrap_or_default()
    }

    /// Descriptors the process has open now (entries of `/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// CPU time (user + system) the process has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime), counted from after the comm.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a `listening` log line, text (`addr=...`) or JSON.
pub fn listening_addr(line: &str) -> SocketAddr {
    let addr = if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        v["addr"]
            .as_str()
            .expect("a JSON listening line has addr")
            .to_owned()
    } else {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .expect("listening line names the address")
            .to_owned()
    };
    addr.parse().unwrap()
}

/// The engine's name in logs, stats and metrics, for an `--engine` value.
pub fn engine_name(engine: &str) -> &str {
    if engine == "uring" {
        "io_uring"
    } else {
        engine
    }
}

/// Every `CloseReason` name, in the server's order.
pub const CLOSE_REASONS: [&str; 7] = [
    "client_close",
    "server_close",
    "reset",
    "error",
    "timeout",
    "limit",
    "shutdown",
];

/// The environment the tests control: the engine, the log filter, and
/// what systemd would set.
const CONTROLLED_ENV: [&str; 7] = [
    "BERTH_ENGINE",
    "BERTH_LOG",
    "RUST_LOG",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// `berth ARGS...`, with the engine and log level left to the flags.
pub fn berth(args: &[&str]) -> Command {
    let mut c = Command::new(BERTH);
    c.args(args);
    clean_env(&mut c);
    c
}

/// Remove what the tests control from `cmd`'s environment: the engine,
/// the log filter, and what systemd would set.
pub fn clean_env(cmd: &mut Command) {
    for name in CONTROLLED_ENV {
        cmd.env_remove(name);
    }
}

/// `berth ctl --control PATH ARGS...`, run to completion.
pub fn ctl(control: &Path, args: &[&str]) -> Output {
    let mut all = vec!["ctl", "--control", control.to_str().unwrap()];
    all.extend_from_slice(args);
    run_bounded(berth(&all))
}

/// Poll `cond` every few milliseconds until it holds; false after `TIMEOUT`.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + TIMEOUT;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run `cmd` to completion, killing it if it takes longer than `TIMEOUT`.
pub fn run_bounded(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Read `s` to end of stream.
pub fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}
