//! The callback rules of the core, over real loopback sockets, on both engines.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use berth::{
    Closing, Conn, ConnError, EngineChoice, Handler, IoBuf, Lifecycle, ServerEvent, Shutdown,
};
use common::*;

both_engines!(
    split_message_arrives_whole_and_in_order,
    one_mib_echo_is_byte_exact,
    client_half_close_notified_once_and_server_keeps_writing,
    shutdown_write_after_large_write_delivers_every_byte,
    abortive_close_resets_peer,
    handler_takes_over_closing_for_a_lingering_close,
    handed_off_connection_without_handle_is_aborted,
    writes_from_eight_threads_keep_each_writers_order,
    thousand_concurrent_connections,
    pause_and_resume_accepting,
    shutdown_notifies_closing_for_each_live_connection,
    a_second_shutdown_with_an_earlier_deadline_cuts_the_drain_short,
    pause_and_resume_reading_accumulates_partial_messages,
    operations_on_a_closed_connection_fail,
    peer_reset_is_reported_and_only_that_connection_closes,
    panicking_callback_aborts_only_its_connection,
    dropping_a_server_without_shutdown_does_not_hang,
    tiny_ring_and_scarce_buffers_lose_nothing,
    end_of_stream_arriving_with_the_data_is_seen,
    a_closed_connection_releases_its_descriptor,
    connections_know_their_peers_address,
);

/// An echo handler that counts the callbacks.
#[derive(Default)]
struct Echo {
    established: AtomicUsize,
    client_closed: AtomicUsize,
    closing: AtomicUsize,
    resets: AtomicUsize,
    errors: AtomicUsize,
    empty_reads: AtomicUsize,
    opened: AtomicUsize,
    closed: AtomicUsize,
}

impl Lifecycle for Echo {
    type State = ();

    fn closing(&self, _: &mut Conn<'_>, _: &mut ()) -> Closing {
        self.closing.fetch_add(1, SeqCst);
        Closing::Default
    }

    fn connection_reset(&self, _: &mut Conn<'_>, _: &mut (), _: &io::Error) {
        self.resets.fetch_add(1, SeqCst);
    }

    fn connection_error(&self, _: &mut Conn<'_>, _: &mut (), _: &io::Error) {
        self.errors.fetch_add(1, SeqCst);
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        match event {
            ServerEvent::ConnectionOpened { .. } => self.opened.fetch_add(1, SeqCst),
            ServerEvent::ConnectionClosed { .. } => self.closed.fetch_add(1, SeqCst),
            _ => 0,
        };
    }
}

impl Handler for Echo {
    fn connection_established(&self, _: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        self.established.fetch_add(1, SeqCst);
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        if buf.is_empty() {
            self.empty_reads.fetch_add(1, SeqCst);
        }
        if &buf[..] == b"ABORT" {
            conn.abort();
            return;
        }
        conn.write_buf(buf).unwrap();
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut ()) {
        self.client_closed.fetch_add(1, SeqCst);
        conn.shutdown(Shutdown::Write).unwrap();
    }
}

/// Records the peer address each connection was established with.
#[derive(Default)]
struct Peers {
    seen: Mutex<Vec<SocketAddr>>,
}

impl Lifecycle for Peers {
    type State = ();
}

impl Handler for Peers {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), peer: SocketAddr) {
        self.seen.lock().unwrap().push(peer);
        conn.write(b"!").unwrap();
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

/// Every connection learns its peer's address, over IPv4 and IPv6 (where
/// the machine has `::1`), with many connections arriving together.
fn connections_know_their_peers_address(engine: EngineChoice) {
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    for listen in ["127.0.0.1:0", "[::1]:0"] {
        if listen.starts_with('[') && !ipv6 {
            continue;
        }
        let t = start_with(
            builder(engine).listen(listen.parse().unwrap()),
            Peers::default(),
        );
        let mut clients: Vec<_> = (0..40).map(|_| t.connect()).collect();
        for c in &mut clients {
            let mut hello = [0u8; 1];
            c.read_exact(&mut hello).unwrap();
        }
        let mut want: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        let mut seen = t.handler().seen.lock().unwrap().clone();
        want.sort();
        seen.sort();
        assert_eq!(seen, want, "listening on {listen}");
        drop(clients);
        t.finish();
    }
}

/// The inode of this process's TCP socket from `local` to `peer` (IPv4),
/// from `/proc/net/tcp`; `None` once no socket has that pair or it has no
/// descriptor left (a closed socket lingers there with inode 0).
fn tcp_socket_inode(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => {
            let ip = u32::from_ne_bytes(v4.ip().octets());
            format!("{ip:08X}:{:04X}", v4.port())
        }
        SocketAddr::V6(_) => unreachable!("the test listens on IPv4"),
    };
    let (local, peer) = (hex(local), hex(peer));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == local && f[2] == peer)
            .then(|| f[9].parse().ok())
            .flatten()
            .filter(|&inode| inode != 0)
    })
}

/// Whether this process holds a descriptor for socket `inode`.
fn holds_socket(inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(want.as_str())))
}

/// The server's descriptor for a connection is closed once the connection
/// is (the io_uring engine closes it through the ring, not at once).
fn a_closed_connection_releases_its_descriptor(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let mut s = t.connect();
    s.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    let server_side = tcp_socket_inode(t.addr, s.local_addr().unwrap())
        .expect("the server's socket for the connection");
    assert!(
        holds_socket(server_side),
        "the open connection has a descriptor"
    );
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s).unwrap(), b"");
    assert!(
        eventually(IO_TIMEOUT, || !holds_socket(server_side)),
        "the server kept the descriptor of a closed connection"
    );
    t.finish();
}

fn split_message_arrives_whole_and_in_order(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let mut s = t.connect();
    let data = pattern(20_000, 7);
    let mut reader = s.try_clone().unwrap();
    let rd = std::thread::spawn(move || read_to_end(&mut reader).unwrap());
    // Many small writes of varying size, with pauses so they travel apart.
    let mut off = 0;
    let mut n = 1;
    while off < data.len() {
        let end = (off + n).min(data.len());
        s.write_all(&data[off..end]).unwrap();
        off = end;
        n = n % 37 + 1;
        if off % 500 < 37 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(rd.join().unwrap(), data);
    t.finish();
}

fn one_mib_echo_is_byte_exact(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let data = pattern(1 << 20, 3);
    let got = exchange(t.connect(), &data, true).unwrap();
    assert!(got == data, "echo differs ({} bytes back)", got.len());
    assert_eq!(t.handler().empty_reads.load(SeqCst), 0);
    t.finish();
}

/// On client close, write a trailer (the server may keep writing), then shut down.
#[derive(Default)]
struct Trailer {
    client_closed: AtomicUsize,
    empty_reads: AtomicUsize,
}

impl Lifecycle for Trailer {
    type State = usize;
}

impl Handler for Trailer {
    fn read_completed(&self, conn: &mut Conn<'_>, received: &mut usize, buf: IoBuf) {
        if buf.is_empty() {
            self.empty_reads.fetch_add(1, SeqCst);
        }
        *received += buf.len();
        conn.write_buf(buf).unwrap();
    }

    fn client_closed(&self, conn: &mut Conn<'_>, received: &mut usize) {
        self.client_closed.fetch_add(1, SeqCst);
        conn.write(format!("|got {received} bytes|").as_bytes())
            .unwrap();
        conn.write(b"bye").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        assert_eq!(conn.write(b"late"), Err(ConnError::WriteShutdown));
    }
}

fn client_half_close_notified_once_and_server_keeps_writing(engine: EngineChoice) {
    let t = start(engine, Trailer::default());
    let data = pattern(100_000, 1);
    let got = exchange(t.connect(), &data, true).unwrap();
    let mut want = data.clone();
    want.extend_from_slice(b"|got 100000 bytes|bye");
    assert!(got == want, "reply differs: {} bytes", got.len());
    assert!(eventually(IO_TIMEOUT, || t.server().stats().open() == 0));
    assert_eq!(t.handler().client_closed.load(SeqCst), 1);
    assert_eq!(t.handler().empty_reads.load(SeqCst), 0);
    t.finish();
}

/// Writes a large response then shuts down its send side at once.
struct BigThenShutdown(Vec<u8>);

impl Lifecycle for BigThenShutdown {
    type State = ();
}

impl Handler for BigThenShutdown {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        conn.write(&self.0).unwrap();
        conn.write_buf(IoBuf::from(self.0.clone())).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

fn shutdown_write_after_large_write_delivers_every_byte(engine: EngineChoice) {
    let data = pattern(4 << 20, 9);
    // 8 MiB queued at once: above the default 4 MiB cap per connection.
    let t = start_with(
        builder(engine).max_write_queue(16 << 20),
        BigThenShutdown(data.clone()),
    );
    let mut s = t.connect();
    // Read slowly at first so the server's writes back up.
    std::thread::sleep(Duration::from_millis(200));
    let got = read_to_end(&mut s).unwrap();
    assert_eq!(got.len(), data.len() * 2);
    assert!(got[..data.len()] == data[..] && got[data.len()..] == data[..]);
    drop(s);
    t.finish();
}

fn abortive_close_resets_peer(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let mut s = t.connect();
    s.write_all(b"ABORT").unwrap();
    let mut buf = [0u8; 16];
    let err = s
        .read(&mut buf)
        .expect_err("the peer sees a reset, not EOF");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    t.finish();
}

/// Takes over closing: keeps a handle and, from another thread, writes a
/// last message and closes after a delay (a lingering close).
#[derive(Default)]
struct Lingering {
    closing: AtomicUsize,
    taken: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Lifecycle for Lingering {
    type State = ();

    fn closing(&self, conn: &mut Conn<'_>, _: &mut ()) -> Closing {
        self.closing.fetch_add(1, SeqCst);
        let handle = conn.handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            handle.write(b"+linger").unwrap();
            handle.close().unwrap();
        });
        self.taken.lock().unwrap().push(t);
        Closing::Handled
    }
}

impl Handler for Lingering {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        conn.write_buf(buf).unwrap();
    }
}

fn handler_takes_over_closing_for_a_lingering_close(engine: EngineChoice) {
    let t = start(engine, Lingering::default());
    let got = exchange(t.connect(), b"request", true).unwrap();
    assert_eq!(
        got, b"request+linger",
        "clean end-of-file after the handler's close"
    );
    for th in t.handler().taken.lock().unwrap().drain(..) {
        th.join().unwrap();
    }
    assert_eq!(t.handler().closing.load(SeqCst), 1);
    t.finish();
}

/// Claims to handle closing but keeps no handle: the server must abort.
struct ForgetfulCloser;

impl Lifecycle for ForgetfulCloser {
    type State = ();
    fn closing(&self, _: &mut Conn<'_>, _: &mut ()) -> Closing {
        Closing::Handled
    }
}

impl Handler for ForgetfulCloser {
    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

fn handed_off_connection_without_handle_is_aborted(engine: EngineChoice) {
    let t = start(engine, ForgetfulCloser);
    let mut s = t.connect();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut buf = [0u8; 4];
    let err = s.read(&mut buf).expect_err("abortive close");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    t.finish();
}

fn writes_from_eight_threads_keep_each_writers_order(engine: EngineChoice) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 2000;
    let (t, rx) = hand_out(engine);
    let s = t.connect();
    let handle = rx.recv_timeout(IO_TIMEOUT).unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(s).lines() {
            lines.push(line.unwrap());
        }
        lines
    });
    let writers: Vec<_> = (0..THREADS)
        .map(|w| {
            let h = handle.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    h.write(format!("{w} {i}\n").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    handle.close().unwrap();
    drop(handle);
    let lines = reader.join().unwrap();
    assert_eq!(lines.len(), THREADS * PER_THREAD);
    let mut next = [0usize; THREADS];
    for line in lines {
        let (w, i) = line.split_once(' ').unwrap();
        let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[w], "writer {w} out of order");
        next[w] += 1;
    }
    t.finish();
}

fn thousand_concurrent_connections(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let mut clients: Vec<_> = (0..1000).map(|_| t.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("client {i:04}").as_bytes()).unwrap();
    }
    assert!(eventually(IO_TIMEOUT, || t.server().stats().open() == 1000));
    for (i, c) in clients.iter_mut().enumerate() {
        let mut buf = [0u8; 11];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, format!("client {i:04}").as_bytes());
    }
    drop(clients);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().open() == 0));
    assert_eq!(t.handler().closed.load(SeqCst), 1000);
    t.finish();
}

fn pause_and_resume_accepting(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let control = t.server().handle();
    let mut first = t.connect();
    first.write_all(b"x").unwrap();
    first.read_exact(&mut [0u8; 1]).unwrap();
    control.pause_accepting();
    // Once paused, the accept that was armed may still take one connection;
    // make sure the pause took effect with a probe connection.
    std::thread::sleep(Duration::from_millis(100));
    let accepted = t.server().stats().accepted;
    let mut queued: Vec<_> = (0..20).map(|_| t.connect()).collect();
    for (i, c) in queued.iter_mut().enumerate() {
        c.write_all(&[i as u8]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        t.server().stats().accepted,
        accepted,
        "accepted while paused"
    );
    // Existing connections are still served while paused.
    first.write_all(b"y").unwrap();
    first.read_exact(&mut [0u8; 1]).unwrap();
    control.resume_accepting();
    for (i, c) in queued.iter_mut().enumerate() {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i as u8);
    }
    assert_eq!(t.server().stats().accepted, accepted + 20);
    drop((first, queued));
    t.finish();
}

fn shutdown_notifies_closing_for_each_live_connection(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let mut clients: Vec<_> = (0..10).map(|_| t.connect()).collect();
    for c in &mut clients {
        c.write_all(b"hi").unwrap();
        c.read_exact(&mut [0u8; 2]).unwrap();
    }
    let server = t.server.as_ref().unwrap();
    let pool = server.buffer_pool().clone();
    let mut t = t;
    let server = t.server.take().unwrap();
    let echo_closing = {
        let started = std::time::Instant::now();
        server.handle().shutdown(Duration::from_secs(5));
        // Every client sees a clean end-of-file.
        for c in &mut clients {
            assert_eq!(read_to_end(c).unwrap(), b"");
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        server.handler().closing.load(SeqCst)
    };
    assert_eq!(echo_closing, 10);
    // ConnectionClosed is emitted just after the socket is closed, so a
    // client may see end-of-file a moment before it is counted.
    assert!(eventually(IO_TIMEOUT, || server
        .handler()
        .closed
        .load(SeqCst)
        == 10));
    server.wait();
    assert_eq!(pool.stats().in_use, 0);
}

/// Takes over closing and keeps the handle without ever closing: a drain
/// waits for these connections until its deadline.
#[derive(Default)]
struct NeverCloses {
    kept: std::sync::Arc<Mutex<Vec<berth::ConnHandle>>>,
}

impl Lifecycle for NeverCloses {
    type State = ();
    fn closing(&self, conn: &mut Conn<'_>, _: &mut ()) -> Closing {
        self.kept.lock().unwrap().push(conn.handle());
        Closing::Handled
    }
}

impl Handler for NeverCloses {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }
}

fn a_second_shutdown_with_an_earlier_deadline_cuts_the_drain_short(engine: EngineChoice) {
    let handler = NeverCloses::default();
    let kept = std::sync::Arc::clone(&handler.kept);
    let mut t = start(engine, handler);
    let mut c = t.connect();
    c.write_all(b"hi").unwrap();
    c.read_exact(&mut [0u8; 2]).unwrap();
    let server = t.server.take().unwrap();
    let handle = server.handle();
    let pool = server.buffer_pool().clone();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        server.wait();
        let _ = done_tx.send(());
    });
    handle.shutdown(Duration::from_secs(600));
    // The handler took the connection over; the drain waits for it.
    assert!(eventually(IO_TIMEOUT, || !kept.lock().unwrap().is_empty()));
    assert!(done.try_recv().is_err(), "the drain does not end by itself");
    handle.shutdown(Duration::from_secs(900));
    handle.shutdown(Duration::ZERO);
    done.recv_timeout(IO_TIMEOUT)
        .expect("the earlier deadline ends the drain at once");
    let err = c.read(&mut [0u8; 1]).expect_err("closed abortively");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(handle.stats().closed_for(berth::CloseReason::Shutdown), 1);
    assert_eq!(pool.stats().in_use, 0);
}

/// Accumulates bytes until a full 8-byte message is in, pausing reads for
/// a moment after each message (as a slow consumer would).
#[derive(Default)]
struct Accumulate {
    messages: Mutex<Vec<Vec<u8>>>,
}

impl Lifecycle for Accumulate {
    type State = Vec<u8>;
}

impl Handler for Accumulate {
    fn read_completed(&self, conn: &mut Conn<'_>, partial: &mut Vec<u8>, buf: IoBuf) {
        partial.extend_from_slice(&buf);
        while partial.len() >= 8 {
            let msg: Vec<u8> = partial.drain(..8).collect();
            conn.write(&msg).unwrap();
            self.messages.lock().unwrap().push(msg);
            conn.pause_reading();
            let h = conn.handle();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                let _ = h.resume_reading();
            });
        }
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut Vec<u8>) {
        conn.close();
    }
}

fn pause_and_resume_reading_accumulates_partial_messages(engine: EngineChoice) {
    let t = start(engine, Accumulate::default());
    let data: Vec<u8> = (0..200u32)
        .flat_map(|i| format!("{i:08}").into_bytes())
        .collect();
    let mut s = t.connect();
    let mut reader = s.try_clone().unwrap();
    let rd = std::thread::spawn(move || read_to_end(&mut reader).unwrap());
    for chunk in data.chunks(5) {
        s.write_all(chunk).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(rd.join().unwrap(), data);
    assert_eq!(t.handler().messages.lock().unwrap().len(), 200);
    t.finish();
}

fn operations_on_a_closed_connection_fail(engine: EngineChoice) {
    let (t, rx) = hand_out(engine);
    let s = t.connect();
    let h = rx.recv_timeout(IO_TIMEOUT).unwrap();
    let other = t.connect();
    let h2 = rx.recv_timeout(IO_TIMEOUT).unwrap();
    h.abort().unwrap();
    assert!(eventually(IO_TIMEOUT, || !h.is_open()));
    assert_eq!(h.write(b"x"), Err(ConnError::Closed));
    assert_eq!(h.close(), Err(ConnError::Closed));
    // The other connection is untouched.
    h2.write(b"still here").unwrap();
    let mut other_r = other.try_clone().unwrap();
    let mut buf = [0u8; 10];
    other_r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    drop((h, h2, s, other, other_r));
    t.finish();
}

fn peer_reset_is_reported_and_only_that_connection_closes(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    let mut bystander = t.connect();
    let victim = t.connect();
    socket2::SockRef::from(&victim)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    let mut v = victim;
    v.write_all(b"hello").unwrap();
    v.read_exact(&mut [0u8; 5]).unwrap();
    drop(v); // RST
    assert!(eventually(IO_TIMEOUT, || t.handler().closed.load(SeqCst) == 1));
    let h = t.handler();
    assert_eq!(h.resets.load(SeqCst) + h.client_closed.load(SeqCst), 1);
    bystander.write_all(b"ok?").unwrap();
    let mut buf = [0u8; 3];
    bystander.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok?");
    drop(bystander);
    t.finish();
}

struct Panicky;

impl Lifecycle for Panicky {
    type State = ();
}

impl Handler for Panicky {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        assert!(&buf[..] != b"panic", "handler bug triggered on purpose");
        conn.write_buf(buf).unwrap();
    }
}

fn panicking_callback_aborts_only_its_connection(engine: EngineChoice) {
    let t = start(engine, Panicky);
    let mut good = t.connect();
    let mut bad = t.connect();
    bad.write_all(b"panic").unwrap();
    let err = bad.read(&mut [0u8; 4]).expect_err("aborted");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    good.write_all(b"fine").unwrap();
    let mut buf = [0u8; 4];
    good.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"fine");
    drop(good);
    t.finish();
}

fn dropping_a_server_without_shutdown_does_not_hang(engine: EngineChoice) {
    let mut t = start(engine, Echo::default());
    let mut clients: Vec<_> = (0..5).map(|_| t.connect()).collect();
    for c in &mut clients {
        c.write_all(b"x").unwrap();
        c.read_exact(&mut [0u8; 1]).unwrap();
    }
    let server = t.server.take().unwrap();
    let pool = server.buffer_pool().clone();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("drop returns");
    for c in &mut clients {
        // Closed by the server: EOF or reset, never a hang.
        let _ = c.read(&mut [0u8; 1]);
    }
    assert_eq!(pool.stats().in_use, 0);
}

/// A ring of 8 submission entries (64 completions) and 2 receive buffers,
/// under 100 connections echoing at once: the submission queue fills, the
/// completion queue overflows, the buffer ring runs dry (ENOBUFS) — and
/// every byte still comes back. (epoll ignores the ring settings.)
fn tiny_ring_and_scarce_buffers_lose_nothing(engine: EngineChoice) {
    let t = start_with(
        builder(engine).ring_entries(8).ring_buffers(2),
        Echo::default(),
    );
    let clients: Vec<_> = (0..100u8)
        .map(|i| {
            let s = t.connect();
            std::thread::spawn(move || {
                let data = pattern(64 * 1024, i);
                let got = exchange(s, &data, true).unwrap();
                assert!(got == data, "client {i}: {} bytes back", got.len());
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client got its echo");
    }
    t.finish();
}

/// Regression (epoll): a short read was taken to mean "nothing more to
/// read", but a FIN that arrived with the data brings no further edge, so
/// end-of-stream was never seen and the connection hung.
fn end_of_stream_arriving_with_the_data_is_seen(engine: EngineChoice) {
    let t = start(engine, Echo::default());
    for i in 0..50u8 {
        let got = exchange(t.connect(), &[i; 7], true).unwrap();
        assert_eq!(got, [i; 7]);
    }
    assert!(eventually(IO_TIMEOUT, || t
        .handler()
        .client_closed
        .load(SeqCst)
        == 50));
    t.finish();
}
