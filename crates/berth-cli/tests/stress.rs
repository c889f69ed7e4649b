//! The stress suite: the `berth` servers under load and abuse, each
//! scenario a fresh server process per engine, bounded in time. The test
//! process holds the client sockets; the server is a child process, so its
//! descriptors (`/proc/PID/fd`), memory (`/proc/PID/status`), CPU time
//! (`/proc/PID/stat`) and last log line are observed from outside. After
//! each scenario the server's descriptor count is back to what it was
//! when it started. (The buffer pool, which a separate process does not
//! show, is checked by the in-process variants in `berth`'s
//! `tests/stress.rs`.)
//!
//! Scenarios take thousands of descriptors and most of the machine, so
//! they run one at a time, whatever the test harness's thread count.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{BERTH, Running, TIMEOUT, berth, both_engines};

both_engines!(
    ten_thousand_concurrent_connections_echo_sequence_numbered_data,
    slowloris_connections_do_not_take_service_from_normal_clients,
    a_client_that_never_reads_leaves_server_memory_bounded,
    a_reset_in_the_middle_of_a_large_write_is_cleaned_up,
    half_close_while_the_server_keeps_writing,
    sigterm_under_load_drains_with_a_lingering_close,
    last_log_line_gives_the_totals,
    descriptor_exhaustion_does_not_spin_and_recovers,
);

/// One scenario at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A server process and the descriptors it held when it started.
struct Srv {
    run: Running,
    base_fds: usize,
    base_list: Vec<String>,
}

fn fd_list(run: &Running) -> Vec<String> {
    let dir = format!("/proc/{}/fd", run.child.id());
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!("{}->{}", e.file_name().to_str()?, target.display()))
        })
        .collect();
    v.sort();
    v
}

fn serve(sub: &str, engine: &str, extra: &[&str]) -> Srv {
    let mut args = vec![sub, "--listen", "127.0.0.1:0", "--engine", engine];
    args.extend_from_slice(extra);
    Srv::new(Running::spawn(berth(&args)))
}

impl Srv {
    /// The server and its descriptors once started up: the accepting
    /// thread takes a duplicate of the listener and the original is closed
    /// a moment after the `listening` line, so the count is taken once no
    /// socket is open twice.
    fn new(run: Running) -> Srv {
        let end = Instant::now() + TIMEOUT;
        loop {
            let list = fd_list(&run);
            let mut sockets: Vec<&str> = list
                .iter()
                .filter_map(|l| l.split_once("->socket:").map(|(_, s)| s))
                .collect();
            let n = sockets.len();
            sockets.sort();
            sockets.dedup();
            if sockets.len() == n {
                return Srv {
                    base_fds: list.len(),
                    base_list: list,
                    run,
                };
            }
            assert!(
                Instant::now() < end,
                "the listener stays duplicated: {list:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn addr(&self) -> SocketAddr {
        self.run.addr
    }

    /// Wait until the server holds exactly the descriptors it started with.
    fn settle_fds(&self) {
        let end = Instant::now() + TIMEOUT;
        loop {
            let n = self.run.open_fds();
            if n == self.base_fds {
                return;
            }
            assert!(
                Instant::now() < end,
                "the server holds {n} descriptors, {} at start: {:?} now, {:?} at start",
                self.base_fds,
                fd_list(&self.run),
                self.base_list
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Check the descriptors, send SIGTERM, wait for a clean exit, and
    /// return the totals of the last log line (`bytes_in`, `bytes_out`).
    fn end(mut self) -> (u64, u64) {
        self.settle_fds();
        self.run.signal("-TERM");
        assert!(self.run.wait_exit().success(), "{:#?}", self.run.log);
        let last = self.run.last_log_line();
        assert!(
            !self.run.log.iter().any(|l| l.contains("panicked")),
            "{:#?}",
            self.run.log
        );
        totals(&last)
    }
}

/// `bytes_in=N` and `bytes_out=M` from a log line.
fn totals(line: &str) -> (u64, u64) {
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the last log line: {line:?}"))
    };
    (field("bytes_in="), field("bytes_out="))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Deterministic bytes for stream `id` from byte `offset` on.
fn stream_bytes(id: usize, offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|k| (k.wrapping_mul(31) ^ id.wrapping_mul(131) ^ (k >> 11)) as u8)
        .collect()
}

/// Send `data` and half-close on one thread, read the reply to end of
/// stream on another; returns the reply.
fn exchange(s: TcpStream, data: Vec<u8>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut r = s;
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    })
}

/// `n` clients at once each echo `len` bytes of their own stream
/// (half-closing after them) and check the reply; returns the bytes sent.
fn echo_clients(addr: SocketAddr, n: usize, len: usize) -> u64 {
    let clients: Vec<_> = (0..n)
        .map(|i| (i, exchange(connect(addr), stream_bytes(i, 0, len))))
        .collect();
    for (i, c) in clients {
        let got = c.join().unwrap();
        assert!(got == stream_bytes(i, 0, len), "client {i}: echo differs");
    }
    (n * len) as u64
}

// ---------------------------------------------------------------------------

const CONNS: usize = 10_000;
const CONNECTORS: usize = 4;
const ROUNDS: u32 = 3;

/// Message `round` of connection `conn`: its number, the round and the
/// length, then bytes that depend on all three (12 to 211 bytes).
fn message(conn: u32, round: u32) -> Vec<u8> {
    let len = 12 + ((conn * 7 + round * 13) % 200) as usize;
    let mut m = Vec::with_capacity(len);
    m.extend(conn.to_le_bytes());
    m.extend(round.to_le_bytes());
    m.extend((len as u32).to_le_bytes());
    m.extend((12..len).map(|k| (conn as usize * 31 + round as usize * 17 + k) as u8));
    m
}

/// 10,000 connections open at once (the server holds them all), each
/// echoing three sequence-numbered messages byte-exact; then every
/// descriptor is given back and the last log line counts every byte.
fn ten_thousand_concurrent_connections_echo_sequence_numbered_data(engine: &str) {
    let _one = one_at_a_time();
    let srv = serve("echo", engine, &["--io-threads", "2"]);
    let addr = srv.addr();
    let per = CONNS / CONNECTORS;
    let groups: Vec<Vec<TcpStream>> = (0..CONNECTORS)
        .map(|_| std::thread::spawn(move || (0..per).map(|_| connect(addr)).collect()))
        .collect::<Vec<JoinHandle<Vec<TcpStream>>>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let end = Instant::now() + TIMEOUT;
    while srv.run.open_fds() < srv.base_fds + CONNS {
        assert!(
            Instant::now() < end,
            "the server never held every connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Each thread writes a message on each of its connections, then reads
    // every reply, round after round.
    let rounds: Vec<JoinHandle<(Vec<TcpStream>, u64)>> = groups
        .into_iter()
        .enumerate()
        .map(|(g, mut group)| {
            std::thread::spawn(move || {
                let mut bytes = 0u64;
                for round in 0..ROUNDS {
                    let msgs: Vec<Vec<u8>> = (0..group.len())
                        .map(|k| message((g * per + k) as u32, round))
                        .collect();
                    for (s, m) in group.iter_mut().zip(&msgs) {
                        s.write_all(m).unwrap();
                    }
                    for (s, m) in group.iter_mut().zip(&msgs) {
                        let mut back = vec![0u8; m.len()];
                        s.read_exact(&mut back).unwrap();
                        assert!(back == *m, "echo differs");
                        bytes += m.len() as u64;
                    }
                }
                (group, bytes)
            })
        })
        .collect();
    let mut sent = 0;
    let mut all = Vec::new();
    for r in rounds {
        let (group, bytes) = r.join().unwrap();
        sent += bytes;
        all.push(group);
    }
    drop(all);
    assert_eq!(srv.end(), (sent, sent));
}

// ---------------------------------------------------------------------------

const SLOWLORIS: usize = 2_000;
const NORMAL: usize = 100;

/// A packet of the packet-echo protocol: the length byte (header
/// included), then bytes from `seed`.
fn packet(len: u8, seed: usize) -> Vec<u8> {
    let mut p = vec![len];
    p.extend(stream_bytes(seed, 0, len as usize - 1));
    p
}

/// A packet-echo server with a 1 s frame timeout: 2,000 connections each
/// send a packet header and then a byte every 200 ms (slowloris), while
/// 100 clients send a packet every 20 ms. Every slowloris connection is
/// closed by the server soon after its packet's first byte plus the
/// timeout; every normal request is answered byte-exact, promptly.
fn slowloris_connections_do_not_take_service_from_normal_clients(engine: &str) {
    let _one = one_at_a_time();
    let srv = serve("packet-echo", engine, &["--frame-timeout", "1"]);
    let addr = srv.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let normal: Vec<JoinHandle<(usize, Duration)>> = (0..NORMAL)
        .map(|i| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let (mut n, mut worst) = (0, Duration::ZERO);
                while !stop.load(SeqCst) {
                    let p = packet(2 + ((i + n) % 200) as u8, i * 1000 + n);
                    let t0 = Instant::now();
                    s.write_all(&p).unwrap();
                    let mut back = vec![0u8; p.len()];
                    s.read_exact(&mut back).unwrap();
                    worst = worst.max(t0.elapsed());
                    assert_eq!(back, p, "client {i}, packet {n}");
                    n += 1;
                    std::thread::sleep(Duration::from_millis(20)); // the client's pace
                }
                (n, worst)
            })
        })
        .collect();

    let mut slow: Vec<(TcpStream, Instant)> = (0..SLOWLORIS)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&[200]).unwrap();
            let first = Instant::now();
            s.set_nonblocking(true).unwrap();
            (s, first)
        })
        .collect();
    let mut closed_after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slow.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200)); // the dribble's pace
        slow.retain_mut(|(s, first)| match s.read(&mut [0u8; 64]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = s.write(&[0x55]);
                true
            }
            Ok(0) | Err(_) => {
                closed_after.push(first.elapsed());
                false
            }
            Ok(n) => panic!("a slowloris connection got {n} bytes back"),
        });
    }
    stop.store(true, SeqCst);
    let mut served = Vec::new();
    for c in normal {
        served.push(c.join().unwrap());
    }
    assert!(
        slow.is_empty(),
        "{} slowloris connections still open after 10 s",
        slow.len()
    );
    let latest = closed_after.iter().max().unwrap();
    assert!(
        *latest < Duration::from_secs(4),
        "a slowloris connection was closed only {latest:?} after its first byte"
    );
    // Timers count from the start of the loop pass that read the byte
    // (rounded down to the wheel's 10 ms tick); under this load a pass of
    // the debug server takes a few milliseconds.
    let earliest = closed_after.iter().min().unwrap();
    assert!(
        *earliest >= Duration::from_millis(900),
        "a slowloris connection was closed {earliest:?} after its first byte"
    );
    let fewest = served.iter().map(|s| s.0).min().unwrap();
    let worst = served.iter().map(|s| s.1).max().unwrap();
    assert!(
        fewest >= 10,
        "a normal client was served only {fewest} times"
    );
    assert!(
        worst < Duration::from_secs(1),
        "a normal request took {worst:?}"
    );
    srv.end();
}

// ---------------------------------------------------------------------------

const FLOODERS: usize = 20;
const FLOOD_MAX: usize = 64 << 20;
/// What the server's memory may grow by while the flooders push at it.
const MEMORY_BOUND_KIB: u64 = 32 * 1024;

/// 20 clients send to the echo server and never read: each is stopped
/// (its writes block) long before 64 MiB, the server's resident memory
/// (VmRSS, VmHWM) grows by less than 32 MiB while they push far more than
/// that, and other clients are served byte-exact meanwhile. When the
/// flooders go (resetting, with unread data), everything is given back.
fn a_client_that_never_reads_leaves_server_memory_bounded(engine: &str) {
    let _one = one_at_a_time();
    let srv = serve("echo", engine, &["--io-threads", "2"]);
    let addr = srv.addr();
    // Warm up: pools and rings reach their working size.
    echo_clients(addr, 10, 1 << 20);
    let before = srv.run.status_kib("VmRSS");

    let flooders: Vec<JoinHandle<(TcpStream, usize)>> = (0..FLOODERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                // Blocked: a second without progress.
                s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
                let chunk = vec![0xabu8; 256 << 10];
                let mut sent = 0;
                while sent < FLOOD_MAX {
                    match s.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            break;
                        }
                        Err(e) => panic!("flooder: {e}"),
                    }
                }
                (s, sent)
            })
        })
        .collect();
    let flooders: Vec<(TcpStream, usize)> =
        flooders.into_iter().map(|f| f.join().unwrap()).collect();
    let pushed: usize = flooders.iter().map(|f| f.1).sum();
    assert!(
        flooders.iter().all(|f| f.1 < FLOOD_MAX),
        "a flooder was never stopped"
    );
    // Others are served while the flooders hang on.
    echo_clients(addr, 10, 1 << 20);
    let (rss, hwm) = (srv.run.status_kib("VmRSS"), srv.run.status_kib("VmHWM"));
    eprintln!(
        "{engine}: flooders pushed {} MiB; server VmRSS {before} -> {rss} KiB, VmHWM {hwm} KiB",
        pushed >> 20
    );
    assert!(
        hwm.saturating_sub(before) < MEMORY_BOUND_KIB,
        "server memory grew from {before} KiB to a peak of {hwm} KiB"
    );
    assert!(
        pushed as u64 > 2 * MEMORY_BOUND_KIB * 1024,
        "the flooders pushed only {pushed} bytes: the bound proves nothing"
    );
    drop(flooders);
    srv.end();
}

// ---------------------------------------------------------------------------

const RESETTERS: usize = 20;

/// Write `data` until done or `stop`, one write at a time (a timed-out
/// write wrote nothing; the socket's write timeout is short).
fn write_until_stopped(mut s: TcpStream, data: &[u8], stop: &AtomicBool) {
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut off = 0;
    while off < data.len() && !stop.load(SeqCst) {
        match s.write(&data[off..]) {
            Ok(n) => off += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("writer: {e}"),
        }
    }
}

/// One client: send up to 4 MiB to the echo server while reading 1 MiB of
/// the echo, then stop and close with unread echo in its receive buffer,
/// which resets the connection while the server is writing to it.
fn reset_mid_write(addr: SocketAddr, id: usize) {
    let s = connect(addr);
    let data = Arc::new(stream_bytes(id, 0, 4 << 20));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (w, stop, data) = (s.try_clone().unwrap(), Arc::clone(&stop), Arc::clone(&data));
        std::thread::spawn(move || write_until_stopped(w, &data, &stop))
    };
    let mut r = s;
    let mut got = vec![0u8; 1 << 20];
    r.read_exact(&mut got).unwrap();
    assert!(got[..] == data[..got.len()], "echo differs");
    stop.store(true, SeqCst);
    writer.join().unwrap();
    let mut more = [0u8; 1];
    r.read_exact(&mut more).unwrap(); // the server is still writing
    drop(r); // unread bytes: a reset
}

/// 20 clients reset their connections while the echo server is in the
/// middle of large writes to them: each reset is reported (`-v` logs
/// "reason=reset"), every descriptor is given back, and the server
/// goes on serving.
fn a_reset_in_the_middle_of_a_large_write_is_cleaned_up(engine: &str) {
    let _one = one_at_a_time();
    let mut srv = serve("echo", engine, &["--io-threads", "2", "-v"]);
    let addr = srv.addr();
    let clients: Vec<_> = (0..RESETTERS)
        .map(|i| std::thread::spawn(move || reset_mid_write(addr, i)))
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    srv.settle_fds();
    echo_clients(addr, 4, 256 << 10);
    for _ in 0..RESETTERS {
        srv.run.wait_for("reason=reset");
    }
    srv.end();
}

// ---------------------------------------------------------------------------

/// 32 clients each send 2 MiB and half-close at once, long before the echo
/// server has written it back: the server keeps writing after the client's
/// end of stream, every byte arrives in order, then end-of-file; the last
/// log line counts 64 MiB each way.
fn half_close_while_the_server_keeps_writing(engine: &str) {
    let _one = one_at_a_time();
    let srv = serve("echo", engine, &[]);
    let sent = echo_clients(srv.addr(), 32, 2 << 20);
    assert_eq!(srv.end(), (sent, sent));
}

// ---------------------------------------------------------------------------

const DRAINERS: usize = 20;
/// A client's stream repeats this many bytes (odd, so that its pieces
/// fall differently each time round).
const PERIOD: usize = (1 << 20) + 7;

/// How one drained client's connection went.
struct Drained {
    echoed: u64,
    sent: u64,
    /// How the reads ended: `Ok` for end-of-file.
    end: io::Result<()>,
    /// A write that failed (the connection was reset or closed under the
    /// writer). A reset's error goes to whichever call comes first; the
    /// other then sees an ordinary end, so both are checked.
    write_error: Option<io::Error>,
}

/// A client under load: a writer sends its stream in 16 KiB pieces until
/// the reader has seen the end of the echo; the reader checks that the echo
/// is the stream's prefix, and says when `ready` bytes have come back.
fn drain_client(
    addr: SocketAddr,
    id: usize,
    ready: usize,
    tx: std::sync::mpsc::Sender<()>,
) -> JoinHandle<Drained> {
    std::thread::spawn(move || {
        let s = connect(addr);
        let stream = Arc::new(stream_bytes(id, 0, PERIOD));
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (mut w, stream, done) = (
                s.try_clone().unwrap(),
                Arc::clone(&stream),
                Arc::clone(&done),
            );
            w.set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            std::thread::spawn(move || {
                let mut off = 0usize;
                let mut error = None;
                while !done.load(SeqCst) {
                    let at = off % PERIOD;
                    let piece = &stream[at..(at + (16 << 10)).min(PERIOD)];
                    match w.write(piece) {
                        Ok(n) => off += n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                (off as u64, error)
            })
        };
        let mut r = s;
        let mut buf = vec![0u8; 64 << 10];
        let mut echoed = 0usize;
        let mut told = false;
        let end = loop {
            match r.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    for (k, &b) in buf[..n].iter().enumerate() {
                        assert_eq!(
                            b,
                            stream[(echoed + k) % PERIOD],
                            "client {id}: echo differs at {}",
                            echoed + k
                        );
                    }
                    echoed += n;
                    if !told && echoed >= ready {
                        told = true;
                        let _ = tx.send(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        done.store(true, SeqCst);
        let (sent, write_error) = writer.join().unwrap();
        if !told {
            let _ = tx.send(());
        }
        Drained {
            echoed: echoed as u64,
            sent,
            end,
            write_error,
        }
    })
}

/// 20 clients keep sending to the echo server and reading its echo; the
/// server gets SIGTERM. Each connection ends with end-of-file, not a reset,
/// although its client is still sending (the server lingers: after its
/// FIN it reads and discards until the client closes), after every byte
/// the server took in was echoed: the echo is a prefix of what the client
/// sent, and the last log line's `bytes_in` and `bytes_out` both equal the
/// bytes the clients got back.
fn sigterm_under_load_drains_with_a_lingering_close(engine: &str) {
    let _one = one_at_a_time();
    let mut srv = serve(
        "echo",
        engine,
        &["--io-threads", "2", "--drain-timeout", "5"],
    );
    let (tx, ready) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..DRAINERS)
        .map(|i| drain_client(srv.addr(), i, 256 << 10, tx.clone()))
        .collect();
    for _ in 0..DRAINERS {
        ready.recv_timeout(TIMEOUT).expect("load is flowing");
    }
    srv.run.signal("-TERM");
    let drained: Vec<Drained> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let resets = drained
        .iter()
        .filter(|d| d.end.is_err() || d.write_error.is_some())
        .count();
    let echoed: u64 = drained.iter().map(|d| d.echoed).sum();
    assert!(
        drained.iter().all(|d| d.echoed <= d.sent),
        "more echoed than sent"
    );
    assert_eq!(
        resets,
        0,
        "{resets} of {DRAINERS} connections ended with an error: {:?}",
        drained
            .iter()
            .find_map(|d| d.end.as_ref().err().or(d.write_error.as_ref()))
    );
    assert!(srv.run.wait_exit().success(), "{:#?}", srv.run.log);
    let last = srv.run.last_log_line();
    assert_eq!(totals(&last), (echoed, echoed), "{last}");
}

// ---------------------------------------------------------------------------

/// Clients of `berth echo` and `berth packet-echo` exchange known amounts
/// (different per client); after SIGTERM the last log line gives
/// `bytes_in` and `bytes_out`, both equal to what the clients sent and got
/// back.
fn last_log_line_gives_the_totals(engine: &str) {
    let _one = one_at_a_time();
    let srv = serve("echo", engine, &[]);
    let addr = srv.addr();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let data = stream_bytes(i, 0, 1 + i * 100_003);
            (data.clone(), exchange(connect(addr), data))
        })
        .collect();
    let mut total = 0u64;
    for (data, c) in clients {
        assert!(c.join().unwrap() == data, "echo differs");
        total += data.len() as u64;
    }
    assert_eq!(srv.end(), (total, total));

    let srv = serve("packet-echo", engine, &[]);
    let addr = srv.addr();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let data: Vec<u8> = (0..1000 + i * 37)
                .flat_map(|k| packet(2 + ((i * 7 + k) % 254) as u8, k))
                .collect();
            (data.clone(), exchange(connect(addr), data))
        })
        .collect();
    let mut total = 0u64;
    for (data, c) in clients {
        assert!(c.join().unwrap() == data, "packet echo differs");
        total += data.len() as u64;
    }
    assert_eq!(srv.end(), (total, total));
}

// ---------------------------------------------------------------------------

/// How many of the process's descriptors are numbered below `limit`.
fn fds_below(run: &Running, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", run.child.id()))
        .expect("read /proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < limit)
        .count()
}

/// The server's open-files limit in this scenario.
const NOFILE: usize = 64;

/// A child shell lowers the open-files limit to 64 and becomes the echo
/// server; more clients connect than it has descriptors for. While out of
/// descriptors it backs off without spinning (CPU time measured over a
/// second), serves the connections it has, and once descriptors are free
/// it accepts the waiting clients within the longest back-off (500 ms) and
/// serves them all.
fn descriptor_exhaustion_does_not_spin_and_recovers(engine: &str) {
    let _one = one_at_a_time();
    let script = format!(
        "ulimit -n {NOFILE} && exec {BERTH} echo --listen 127.0.0.1:0 --io-threads 1 \
         --engine {engine} --max-connections 1000"
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).env_remove("BERTH_ENGINE");
    let run = Running::spawn(cmd);
    let mut srv = Srv::new(run);
    // Descriptors inherited with numbers at or above the limit do not
    // count against it.
    let room = NOFILE - fds_below(&srv.run, NOFILE);
    const WAITING: usize = 30;

    let mut clients: Vec<TcpStream> = (0..room + WAITING).map(|_| connect(srv.addr())).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&[i as u8]).unwrap();
    }
    srv.run.wait_for("backing off");
    let before = srv.run.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1)); // the window measured
    let used = srv.run.cpu_ticks() - before;
    eprintln!("{engine}: {used} ticks of CPU in 1 s out of descriptors");
    assert!(
        used < 10,
        "the server used {used} ticks of CPU in 1 s while out of descriptors"
    );
    assert_eq!(
        fds_below(&srv.run, NOFILE),
        NOFILE,
        "the server is out of descriptors"
    );
    // The connections it has are served.
    clients[0].read_exact(&mut [0u8; 1]).unwrap();
    clients[0].write_all(b"x").unwrap();
    clients[0].read_exact(&mut [0u8; 1]).unwrap();

    // Free descriptors: the waiting clients are accepted and served.
    let waiting = clients.split_off(room);
    drop(clients);
    let freed = Instant::now();
    for (i, mut c) in waiting.into_iter().enumerate() {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], (room + i) as u8);
        if i == 0 {
            let took = freed.elapsed();
            assert!(
                took < Duration::from_millis(1500),
                "recovered only {took:?} after descriptors were freed"
            );
        }
    }
    srv.end();
}
