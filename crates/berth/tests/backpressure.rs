//! Write backpressure over loopback, on both engines: the watermarks and
//! `writability_changed`, reads held back while a connection is not
//! writable, the per-connection hard cap with each overflow policy, and the
//! server-wide cap on queued bytes.
//!
//! The server's accepted sockets get a small fixed send buffer and the
//! clients a small receive buffer, so bytes a client does not read stay in
//! the server's write queue (where the limits apply) rather than in the
//! kernel's buffers.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use berth::{
    CloseReason, Conn, ConnError, ConnHandle, EngineChoice, Handler, IoBuf, Lifecycle,
    OverflowPolicy,
};
use common::*;

both_engines!(
    writability_flips_above_the_high_watermark_and_back_at_the_low_one,
    reads_are_held_back_while_unwritable_and_resume,
    a_handler_that_opts_out_keeps_reading_while_unwritable,
    a_write_past_max_write_queue_resets_the_connection_by_default,
    a_write_past_max_write_queue_is_refused_and_the_connection_stays_usable,
    max_buffered_caps_the_bytes_queued_across_connections,
    a_handle_write_refused_past_the_cap_is_not_lost_silently,
);

/// The default watermarks.
const HIGH: usize = 64 * 1024;
const LOW: usize = 32 * 1024;

/// What a handler saw when `writability_changed` was called.
#[derive(Debug, Clone, Copy)]
struct Flip {
    writable: bool,
    /// `Conn::queued_bytes` in the callback.
    queued: usize,
    /// `Conn::is_writable` in the callback.
    conn_says: bool,
}

/// Writes `data` when a connection opens: exactly the high watermark, one
/// byte more, then the rest; reports each writability change.
struct Burst {
    data: Vec<u8>,
    flips: Mutex<mpsc::Sender<Flip>>,
    handles: Mutex<mpsc::Sender<ConnHandle>>,
    /// `Conn::is_writable` with exactly `HIGH` bytes queued, then with one more.
    boundary: Mutex<Vec<bool>>,
}

impl Lifecycle for Burst {
    type State = ();

    fn writability_changed(&self, conn: &mut Conn<'_>, _: &mut (), writable: bool) {
        let flip = Flip {
            writable,
            queued: conn.queued_bytes(),
            conn_says: conn.is_writable(),
        };
        let _ = self.flips.lock().unwrap().send(flip);
    }
}

impl Handler for Burst {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        let _ = self.handles.lock().unwrap().send(conn.handle());
        conn.write(&self.data[..HIGH]).unwrap();
        let at_high = conn.is_writable();
        conn.write(&self.data[HIGH..HIGH + 1]).unwrap();
        let above_high = conn.is_writable();
        *self.boundary.lock().unwrap() = vec![at_high, above_high];
        for chunk in self.data[HIGH + 1..].chunks(16 * 1024) {
            conn.write(chunk).unwrap();
        }
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

/// The client reads part of a 1 MiB reply in small reads (the queue stays
/// far above the low watermark), then the rest at once: writability goes
/// false once the queue is above 64 KiB (not at it), and true again only
/// at or below 32 KiB, seen alike by the callback, `Conn::is_writable` and
/// `ConnHandle::is_writable`.
fn writability_flips_above_the_high_watermark_and_back_at_the_low_one(engine: EngineChoice) {
    const TOTAL: usize = 1 << 20;
    let (flips_tx, flips) = mpsc::channel();
    let (handles_tx, handles) = mpsc::channel();
    let handler = Burst {
        data: pattern(TOTAL, 3),
        flips: Mutex::new(flips_tx),
        handles: Mutex::new(handles_tx),
        boundary: Mutex::new(Vec::new()),
    };
    let t = start_with(builder(engine).listener(small_sndbuf_listener()), handler);
    let mut c = connect_small_rcvbuf(t.addr);
    let handle = handles.recv_timeout(IO_TIMEOUT).expect("connection handle");

    let first = flips
        .recv_timeout(IO_TIMEOUT)
        .expect("a writability change");
    assert!(
        !first.writable && !first.conn_says && first.queued > HIGH,
        "{first:?}"
    );
    assert_eq!(
        *t.handler().boundary.lock().unwrap(),
        [true, false],
        "writable with exactly the high watermark queued, not with one byte more"
    );
    assert!(!handle.is_writable(), "the handle sees it too");

    // A quarter of the reply, in small reads: still far above the low mark.
    let mut got = vec![0u8; TOTAL];
    for piece in got[..TOTAL / 4].chunks_mut(4096) {
        c.read_exact(piece).unwrap();
    }
    assert!(
        flips.try_recv().is_err(),
        "writable again with most of the reply still queued"
    );
    assert!(!handle.is_writable());

    // The rest at once: the queue empties.
    c.read_exact(&mut got[TOTAL / 4..]).unwrap();
    assert!(got == t.handler().data, "reply differs");
    let back = flips.recv_timeout(IO_TIMEOUT).expect("writable again");
    assert!(
        back.writable && back.conn_says && back.queued <= LOW,
        "{back:?}"
    );
    assert!(handle.is_writable());
    assert!(flips.try_recv().is_err(), "one change each way");
    drop(handle);
    drop(c);
    t.finish();
}

/// Echoes, counting bytes delivered and deliveries made while the
/// connection was not writable; reports each writability change.
/// `PAUSE`: the handler's `PAUSE_READ_WHEN_UNWRITABLE`.
struct CountingEcho<const PAUSE: bool> {
    delivered: AtomicUsize,
    delivered_unwritable: AtomicUsize,
    flips: Mutex<mpsc::Sender<bool>>,
}

impl<const PAUSE: bool> CountingEcho<PAUSE> {
    fn new(flips: mpsc::Sender<bool>) -> Self {
        CountingEcho {
            delivered: AtomicUsize::new(0),
            delivered_unwritable: AtomicUsize::new(0),
            flips: Mutex::new(flips),
        }
    }
}

impl<const PAUSE: bool> Lifecycle for CountingEcho<PAUSE> {
    type State = ();

    fn writability_changed(&self, _: &mut Conn<'_>, _: &mut (), writable: bool) {
        let _ = self.flips.lock().unwrap().send(writable);
    }

    const PAUSE_READ_WHEN_UNWRITABLE: bool = PAUSE;
}

impl<const PAUSE: bool> Handler for CountingEcho<PAUSE> {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        if !conn.is_writable() {
            self.delivered_unwritable.fetch_add(1, SeqCst);
        }
        self.delivered.fetch_add(buf.len(), SeqCst);
        conn.write_buf(buf).unwrap();
    }
}

/// Send `data` from a second thread of the client.
fn send_in_background(c: &std::net::TcpStream, data: &[u8]) -> std::thread::JoinHandle<()> {
    let mut w = c.try_clone().unwrap();
    let data = data.to_vec();
    std::thread::spawn(move || w.write_all(&data).unwrap())
}

/// A client sends 2 MiB to an echo server without reading: once the
/// server's queue is above the high watermark, `read_completed` is not
/// called (over a measured window, with input pending); when the client
/// reads, reads resume, every byte comes back, and no delivery ever
/// happened while the connection was unwritable.
fn reads_are_held_back_while_unwritable_and_resume(engine: EngineChoice) {
    let (tx, flips) = mpsc::channel();
    let t = start_with(
        builder(engine).listener(small_sndbuf_listener()),
        CountingEcho::<true>::new(tx),
    );
    let mut c = connect_small_rcvbuf(t.addr);
    let data = pattern(2 << 20, 7);
    let writer = send_in_background(&c, &data);
    assert_eq!(flips.recv_timeout(IO_TIMEOUT), Ok(false), "unwritable");

    let h = t.handler();
    let before = h.delivered.load(SeqCst);
    std::thread::sleep(Duration::from_millis(300)); // the window observed
    assert_eq!(
        h.delivered.load(SeqCst),
        before,
        "bytes delivered while unwritable"
    );
    assert!(before < data.len(), "input is pending");

    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == data, "echo differs");
    assert_eq!(h.delivered_unwritable.load(SeqCst), 0);
    // Changes alternate, from unwritable to writable, and end writable.
    let mut seen = vec![false];
    while seen.last() == Some(&false) {
        seen.push(flips.recv_timeout(IO_TIMEOUT).expect("writable again"));
    }
    seen.extend(flips.try_iter());
    assert!(
        seen.iter().enumerate().all(|(i, &w)| w == (i % 2 == 1)) && seen.len() % 2 == 0,
        "{seen:?}"
    );
    drop(c);
    t.finish();
}

/// With `PAUSE_READ_WHEN_UNWRITABLE = false` the same flood is delivered
/// while the connection is unwritable (the writes are still accepted up to
/// the hard cap), and still echoed exactly.
fn a_handler_that_opts_out_keeps_reading_while_unwritable(engine: EngineChoice) {
    let (tx, flips) = mpsc::channel();
    let t = start_with(
        builder(engine).listener(small_sndbuf_listener()),
        CountingEcho::<false>::new(tx),
    );
    let mut c = connect_small_rcvbuf(t.addr);
    let data = pattern(2 << 20, 9);
    let writer = send_in_background(&c, &data);
    assert_eq!(flips.recv_timeout(IO_TIMEOUT), Ok(false), "unwritable");
    writer.join().unwrap();
    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    assert!(got == data, "echo differs");
    assert!(
        t.handler().delivered_unwritable.load(SeqCst) > 0,
        "reads went on while unwritable"
    );
    drop(c);
    t.finish();
}

/// What one fill did.
#[derive(Debug, Clone, Copy)]
struct Filled {
    accepted: usize,
    error: Option<ConnError>,
    /// A one-byte write after the refusal.
    after: Result<(), ConnError>,
    write_open: bool,
}

/// On each byte received, writes 16 KiB chunks of `data` until a write is
/// refused, then tries one byte more, and reports what happened.
struct Fill {
    data: Vec<u8>,
    results: Mutex<mpsc::Sender<Filled>>,
}

impl Fill {
    fn new(results: mpsc::Sender<Filled>) -> Self {
        Fill {
            data: pattern(1 << 20, 11),
            results: Mutex::new(results),
        }
    }
}

impl Lifecycle for Fill {
    type State = ();
}

impl Handler for Fill {
    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        for _ in buf.iter() {
            let mut accepted = 0;
            let mut error = None;
            for chunk in self.data.chunks(16 * 1024) {
                match conn.write(chunk) {
                    Ok(()) => accepted += chunk.len(),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            let after = conn.write(b"!");
            let filled = Filled {
                accepted,
                error,
                after,
                write_open: conn.is_write_open(),
            };
            let _ = self.results.lock().unwrap().send(filled);
        }
    }
}

const CAP: usize = 256 * 1024;

/// A write that would take the queue past `max_write_queue` is refused
/// with `WriteQueueFull`, and with the default policy the connection is
/// reset (the client sees ECONNRESET) and counted as closed for `Limit`.
fn a_write_past_max_write_queue_resets_the_connection_by_default(engine: EngineChoice) {
    let (tx, results) = mpsc::channel();
    let t = start_with(
        builder(engine)
            .listener(small_sndbuf_listener())
            .max_write_queue(CAP),
        Fill::new(tx),
    );
    let mut c = connect_small_rcvbuf(t.addr);
    c.write_all(b"f").unwrap();
    let r = results.recv_timeout(IO_TIMEOUT).expect("a fill");
    assert_eq!(r.accepted, CAP, "{r:?}");
    assert_eq!(r.error, Some(ConnError::WriteQueueFull), "{r:?}");
    assert_eq!(r.after, Err(ConnError::Closed), "{r:?}");
    assert!(!r.write_open);

    let (got, end) = read_until_closed(&mut c);
    let err = end.expect_err("the connection is reset, not closed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(got[..] == t.handler().data[..got.len()], "reply differs");
    assert!(eventually(IO_TIMEOUT, || {
        let s = t.server().stats();
        s.closed == 1 && s.closed_for(CloseReason::Limit) == 1
    }));
    t.finish();
}

/// With `OverflowPolicy::Refuse` the write past the cap is refused, the
/// connection stays open, everything accepted arrives, and once the queue
/// has drained the same connection takes a full queue again.
fn a_write_past_max_write_queue_is_refused_and_the_connection_stays_usable(engine: EngineChoice) {
    let (tx, results) = mpsc::channel();
    let t = start_with(
        builder(engine)
            .listener(small_sndbuf_listener())
            .max_write_queue(CAP)
            .write_overflow(OverflowPolicy::Refuse),
        Fill::new(tx),
    );
    let mut c = connect_small_rcvbuf(t.addr);
    for _ in 0..2 {
        c.write_all(b"f").unwrap();
        let r = results.recv_timeout(IO_TIMEOUT).expect("a fill");
        assert_eq!(r.accepted, CAP, "{r:?}");
        assert_eq!(r.error, Some(ConnError::WriteQueueFull), "{r:?}");
        assert_eq!(r.after, Err(ConnError::WriteQueueFull), "{r:?}");
        assert!(r.write_open);
        let mut got = vec![0u8; CAP];
        c.read_exact(&mut got).unwrap();
        assert!(got[..] == t.handler().data[..CAP], "reply differs");
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (rest, end) = read_until_closed(&mut c);
    assert!(
        end.is_ok() && rest.is_empty(),
        "{end:?}, {} bytes",
        rest.len()
    );
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 1));
    assert_eq!(t.server().stats().closed_for(CloseReason::Limit), 0);
    t.finish();
}

/// One IO thread, `max_buffered` 256 KiB, 192 KiB per connection: a first
/// connection queues its 192 KiB; a second is refused once the two
/// together hold the server's 256 KiB (its own cap is not reached). When
/// the first has drained and gone, the second takes its full 192 KiB: the
/// shared budget came back.
fn max_buffered_caps_the_bytes_queued_across_connections(engine: EngineChoice) {
    const PER_CONN: usize = 192 * 1024;
    let (tx, results) = mpsc::channel();
    let t = start_with(
        builder(engine)
            .io_threads(1)
            .listener(small_sndbuf_listener())
            .max_buffered(CAP)
            .max_write_queue(PER_CONN)
            .write_overflow(OverflowPolicy::Refuse),
        Fill::new(tx),
    );
    let data = &t.handler().data;
    let mut a = connect_small_rcvbuf(t.addr);
    a.write_all(b"f").unwrap();
    let ra = results.recv_timeout(IO_TIMEOUT).expect("a fill");
    assert_eq!(ra.accepted, PER_CONN, "{ra:?}");
    assert_eq!(ra.error, Some(ConnError::WriteQueueFull));

    let mut b = connect_small_rcvbuf(t.addr);
    b.write_all(b"f").unwrap();
    let rb = results.recv_timeout(IO_TIMEOUT).expect("a fill");
    // The first connection's kernel buffers hold a few KiB of its queue.
    assert!(
        rb.accepted >= CAP - PER_CONN && rb.accepted < CAP / 2,
        "the second connection took {} bytes",
        rb.accepted
    );
    assert_eq!(rb.error, Some(ConnError::WriteQueueFull));
    assert!(rb.write_open);

    let mut got = vec![0u8; PER_CONN];
    a.read_exact(&mut got).unwrap();
    assert!(got[..] == data[..PER_CONN]);
    drop(a);
    // Less than a chunk was left of the server's budget: the one-byte write
    // after the refusal may have fitted.
    let mut want = data[..rb.accepted].to_vec();
    if rb.after.is_ok() {
        want.push(b'!');
    }
    let mut got = vec![0u8; want.len()];
    b.read_exact(&mut got).unwrap();
    assert!(got == want);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 1));

    b.write_all(b"f").unwrap();
    let rb = results.recv_timeout(IO_TIMEOUT).expect("a fill");
    assert_eq!(rb.accepted, PER_CONN, "the shared budget came back: {rb:?}");
    let mut got = vec![0u8; PER_CONN];
    b.read_exact(&mut got).unwrap();
    assert!(got[..] == data[..PER_CONN]);
    drop(b);
    t.finish();
}

/// Hands each connection's handle to the test; reads are ignored.
struct Handles(Mutex<mpsc::Sender<ConnHandle>>);

impl Lifecycle for Handles {
    type State = ();
}

impl Handler for Handles {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        let _ = self.0.lock().unwrap().send(conn.handle());
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

/// With `OverflowPolicy::Refuse`, a producer on another thread writes 1
/// MiB through a `ConnHandle` to a client that is not reading, past the
/// 256 KiB cap. Whatever the handle accepted (returned `Ok` for) must reach
/// the client, in order, with nothing missing between: a refused write is
/// either reported to its caller or not dropped.
fn a_handle_write_refused_past_the_cap_is_not_lost_silently(engine: EngineChoice) {
    let (tx, handles) = mpsc::channel();
    let t = start_with(
        builder(engine)
            .listener(small_sndbuf_listener())
            .max_write_queue(CAP)
            .write_overflow(OverflowPolicy::Refuse),
        Handles(Mutex::new(tx)),
    );
    let mut c = connect_small_rcvbuf(t.addr);
    let h = handles.recv_timeout(IO_TIMEOUT).expect("a handle");
    let mut accepted = Vec::new();
    for i in 0..64u8 {
        let chunk = pattern(16 * 1024, i);
        match h.write(&chunk) {
            Ok(()) => accepted.extend_from_slice(&chunk),
            Err(e) => assert_eq!(e, ConnError::WriteQueueFull),
        }
    }
    h.shutdown(berth::Shutdown::Write).unwrap();
    let (got, end) = read_until_closed(&mut c);
    assert!(end.is_ok(), "{end:?}");
    assert_eq!(
        got.len(),
        accepted.len(),
        "bytes the handle accepted and the client received"
    );
    assert!(got == accepted, "the stream differs");
    drop(h);
    drop(c);
    t.finish();
}
