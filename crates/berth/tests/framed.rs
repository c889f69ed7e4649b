//! The framed layer and the packet echo server, on both engines.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use berth::codec::{
    Decoder, FrameError, InBuf, LengthFieldCodec, LengthWidth, LineCodec, LineEnding,
};
use berth::servers::PacketEcho;
use berth::{
    Closing, Conn, EngineChoice, FrameErrorAction, FrameHandler, FrameRun, Framed, FramedConn,
    IoBuf, Lifecycle,
};
use common::*;

both_engines!(
    packets_split_across_writes_are_echoed_whole,
    malformed_header_closes_only_that_connection,
    frames_larger_than_a_buffer_are_assembled,
    overlong_line_is_reported_and_the_session_continues,
    trailing_partial_frame_is_reported_at_end_of_stream,
    trailing_partial_frame_does_not_cut_off_replies_still_coming,
    back_to_back_packets_arrive_as_runs,
    a_run_stops_at_a_malformed_packet,
    runs_fall_back_to_single_frames_by_default,
    framed_client_learns_of_a_refused_connect,
    framed_server_is_told_of_every_completed_write,
    frames_of_one_read_end_with_frames_done,
);

fn packets(sizes: &[u8]) -> Vec<u8> {
    sizes
        .iter()
        .flat_map(|&n| {
            let mut p = vec![n];
            p.extend((1..n).map(|i| i.wrapping_mul(7)));
            p
        })
        .collect()
}

fn packets_split_across_writes_are_echoed_whole(engine: EngineChoice) {
    let t = start(engine, Framed::new(PacketEcho::default()));
    let sizes: Vec<u8> = (0..2000u32).map(|i| (i % 254 + 1) as u8 + 1).collect();
    let data = packets(&sizes);
    let mut s = t.connect();
    let mut reader = s.try_clone().unwrap();
    let rd = std::thread::spawn(move || read_to_end(&mut reader).unwrap());
    for chunk in data.chunks(97) {
        s.write_all(chunk).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(rd.join().unwrap() == data, "packets differ");
    t.finish();
}

fn malformed_header_closes_only_that_connection(engine: EngineChoice) {
    let t = start(engine, Framed::new(PacketEcho::default()));
    let mut bad = t.connect();
    let mut good = t.connect();
    // A good packet, then a header of 0, then garbage.
    bad.write_all(&[3, b'o', b'k', 0, 9, 9, 9]).unwrap();
    let got = read_to_end(&mut bad).unwrap();
    assert_eq!(got, [3, b'o', b'k'], "the good packet, then end-of-file");
    // Garbage after the error is discarded; the connection closes when we do.
    bad.write_all(&[0; 100]).unwrap();
    drop(bad);
    let p = packets(&[10, 20]);
    good.write_all(&p).unwrap();
    let mut back = vec![0u8; p.len()];
    good.read_exact(&mut back).unwrap();
    assert_eq!(back, p);
    drop(good);
    t.finish();
}

/// Echoes 2-byte big-endian length-prefixed frames; counts frame sizes.
#[derive(Default)]
struct BigFrames {
    sizes: Mutex<Vec<usize>>,
}

impl Lifecycle for BigFrames {
    type State = ();
}

impl FrameHandler for BigFrames {
    type Codec = LengthFieldCodec;

    fn codec(&self) -> LengthFieldCodec {
        LengthFieldCodec::builder()
            .width(LengthWidth::U16)
            .strip_header()
            .max_frame_length(20_000)
            .build()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut (), frame: IoBuf) {
        self.sizes.lock().unwrap().push(frame.len());
        conn.send(frame).unwrap();
    }
}

fn frames_larger_than_a_buffer_are_assembled(engine: EngineChoice) {
    // The test server's IO buffers are 4 KiB; these frames are up to ~15 KiB.
    let t = start(engine, Framed::new(BigFrames::default()));
    let mut data = Vec::new();
    for i in 0..40usize {
        let len = 1 + i * 397;
        data.extend_from_slice(&(len as u16).to_be_bytes());
        data.extend(pattern(len, i as u8));
    }
    let got = exchange(t.connect(), &data, true).unwrap();
    assert!(got == data, "frames differ");
    let sizes = t.handler().inner().sizes.lock().unwrap().clone();
    assert_eq!(sizes, (0..40).map(|i| 1 + i * 397).collect::<Vec<_>>());
    t.finish();
}

/// A line server: answers each line, reports overlong lines and continues.
#[derive(Default)]
struct Lines {
    errors: AtomicUsize,
}

impl Lifecycle for Lines {
    type State = ();
}

impl FrameHandler for Lines {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Crlf)
            .max_line_length(32)
            .build()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut (), line: IoBuf) {
        let mut reply = b"+OK ".to_vec();
        reply.extend_from_slice(&line);
        conn.send(&reply[..]).unwrap();
    }

    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut (),
        error: &FrameError,
    ) -> FrameErrorAction {
        assert!(matches!(error, FrameError::TooLong { .. }), "{error}");
        self.errors.fetch_add(1, SeqCst);
        conn.send("-ERR line too long").unwrap();
        FrameErrorAction::Continue
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut ()) {
        conn.conn().close();
    }
}

fn overlong_line_is_reported_and_the_session_continues(engine: EngineChoice) {
    let t = start(engine, Framed::new(Lines::default()));
    let mut input = b"one\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10_000));
    input.extend_from_slice(b"\r\ntwo\r\n");
    let got = exchange(t.connect(), &input, true).unwrap();
    assert_eq!(got, b"+OK one\r\n-ERR line too long\r\n+OK two\r\n");
    assert_eq!(t.handler().inner().errors.load(SeqCst), 1);
    t.finish();
}

/// Counts frame errors; echoes packets.
#[derive(Default)]
struct CountErrors {
    truncated: AtomicUsize,
}

impl Lifecycle for CountErrors {
    type State = ();
}

impl FrameHandler for CountErrors {
    type Codec = LengthFieldCodec;

    fn codec(&self) -> LengthFieldCodec {
        berth::servers::packet_codec()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut (), p: IoBuf) {
        conn.conn().write_buf(p).unwrap();
    }

    fn frame_error(
        &self,
        _: &mut FramedConn<'_, '_, LengthFieldCodec>,
        _: &mut (),
        error: &FrameError,
    ) -> FrameErrorAction {
        if matches!(error, FrameError::Truncated { .. }) {
            self.truncated.fetch_add(1, SeqCst);
        }
        FrameErrorAction::Shutdown
    }
}

fn trailing_partial_frame_is_reported_at_end_of_stream(engine: EngineChoice) {
    let t = start(engine, Framed::new(CountErrors::default()));
    let got = exchange(t.connect(), &[2, b'a', 5, b'b'], true).unwrap();
    assert_eq!(got, [2, b'a']);
    assert_eq!(t.handler().inner().truncated.load(SeqCst), 1);
    t.finish();
}

/// Answers each line later, from another thread (as a worker pool would):
/// only once the server has handled the end of stream (`client_closed`
/// comes after the trailing partial line went to `frame_error`), or after
/// [`IO_TIMEOUT`] if it never does.
#[derive(Default)]
struct LateReplies {
    eof_handled: Arc<(Mutex<bool>, Condvar)>,
}

impl Lifecycle for LateReplies {
    type State = ();
}

impl FrameHandler for LateReplies {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder().ending(LineEnding::Crlf).build()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut (), line: IoBuf) {
        let handle = conn.handle();
        let eof_handled = Arc::clone(&self.eof_handled);
        std::thread::spawn(move || {
            let (handled, cv) = &*eof_handled;
            let handled = handled.lock().unwrap();
            drop(cv.wait_timeout_while(handled, IO_TIMEOUT, |h| !*h).unwrap());
            let mut reply = b"+OK ".to_vec();
            reply.extend_from_slice(&line);
            reply.extend_from_slice(b"\r\n");
            handle.write(&reply).unwrap();
        });
    }

    fn client_closed(&self, _: &mut FramedConn<'_, '_, LineCodec>, _: &mut ()) {
        let (handled, cv) = &*self.eof_handled;
        *handled.lock().unwrap() = true;
        cv.notify_all();
    }
}

// Regression: a partial last line at end of stream used to shut down the
// write side at once, so replies still being produced were refused.
fn trailing_partial_frame_does_not_cut_off_replies_still_coming(engine: EngineChoice) {
    let t = start(engine, Framed::new(LateReplies::default()));
    let got = exchange(t.connect(), b"one\r\ntwo\r\nunfinish", true).unwrap();
    let got = String::from_utf8(got).unwrap();
    assert!(
        got.contains("+OK one\r\n") && got.contains("+OK two\r\n"),
        "{got:?}"
    );
    t.finish();
}

/// Echoes packets, taking back-to-back ones as runs; records what it saw.
#[derive(Default)]
struct Runs {
    /// The frame count of each run, and 1 for each single frame.
    calls: Mutex<Vec<usize>>,
}

impl Lifecycle for Runs {
    type State = ();
}

impl FrameHandler for Runs {
    type Codec = LengthFieldCodec;
    const FRAME_RUNS: bool = true;

    fn codec(&self) -> LengthFieldCodec {
        berth::servers::packet_codec()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut (), p: IoBuf) {
        self.calls.lock().unwrap().push(1);
        conn.conn().write_buf(p).unwrap();
    }

    fn frame_run(
        &self,
        conn: &mut FramedConn<'_, '_, LengthFieldCodec>,
        _: &mut (),
        run: FrameRun,
    ) {
        // The borrowed frames tile the run exactly, each a whole packet.
        let codec = self.codec();
        let frames: Vec<&[u8]> = run.frames(&codec).collect();
        assert_eq!(frames.len(), run.count());
        assert!(frames.iter().all(|f| f[0] as usize == f.len()));
        assert_eq!(frames.concat(), &run.bytes()[..]);
        self.calls.lock().unwrap().push(run.count());
        conn.conn().write_buf(run.into_bytes()).unwrap();
    }
}

fn back_to_back_packets_arrive_as_runs(engine: EngineChoice) {
    let t = start(engine, Framed::new(Runs::default()));
    let sizes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 250 + 1) as u8).collect();
    let data = packets(&sizes);
    let got = exchange(t.connect(), &data, true).unwrap();
    assert!(got == data, "packets differ");
    let calls = t.handler().inner().calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().sum::<usize>(),
        sizes.len(),
        "every packet once"
    );
    assert!(
        calls.iter().any(|&n| n >= 2),
        "one write of {} packets gave no run: {calls:?}",
        sizes.len()
    );
    t.finish();
}

fn a_run_stops_at_a_malformed_packet(engine: EngineChoice) {
    let t = start(engine, Framed::new(Runs::default()));
    let got = exchange(t.connect(), &[3, b'o', b'k', 2, b'x', 1, 0, 9, 9], true).unwrap();
    assert_eq!(
        got,
        [3, b'o', b'k', 2, b'x', 1],
        "the good packets, then EOF"
    );
    let calls = t.handler().inner().calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().sum::<usize>(),
        3,
        "the three good packets: {calls:?}"
    );
    t.finish();
}

/// The packet codec, counting the whole frames it reports for runs.
struct CountingCodec {
    inner: LengthFieldCodec,
    whole: Arc<AtomicUsize>,
}

impl Decoder for CountingCodec {
    type Item = IoBuf;
    type Error = FrameError;

    fn decode(&mut self, src: &mut InBuf) -> Result<Option<IoBuf>, FrameError> {
        self.inner.decode(src)
    }

    fn whole_frame_len(&self, bytes: &[u8]) -> Option<usize> {
        let n = self.inner.whole_frame_len(bytes);
        if n.is_some() {
            self.whole.fetch_add(1, SeqCst);
        }
        n
    }
}

/// Opts into runs without taking them: the default delivers single frames.
#[derive(Default)]
struct DefaultRuns {
    frames: AtomicUsize,
    whole: Arc<AtomicUsize>,
}

impl Lifecycle for DefaultRuns {
    type State = ();
}

impl FrameHandler for DefaultRuns {
    type Codec = CountingCodec;
    const FRAME_RUNS: bool = true;

    fn codec(&self) -> CountingCodec {
        CountingCodec {
            inner: berth::servers::packet_codec(),
            whole: self.whole.clone(),
        }
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, CountingCodec>, _: &mut (), p: IoBuf) {
        assert_eq!(p[0] as usize, p.len(), "a whole packet");
        self.frames.fetch_add(1, SeqCst);
        conn.conn().write_buf(p).unwrap();
    }
}

fn runs_fall_back_to_single_frames_by_default(engine: EngineChoice) {
    let t = start(engine, Framed::new(DefaultRuns::default()));
    let sizes: Vec<u8> = (0..1000u32).map(|i| (i * 13 % 200 + 1) as u8).collect();
    let data = packets(&sizes);
    let got = exchange(t.connect(), &data, true).unwrap();
    assert!(got == data, "packets differ");
    let h = t.handler().inner();
    assert_eq!(h.frames.load(SeqCst), sizes.len());
    // Runs did form (and went through the default `frame_run`).
    assert!(h.whole.load(SeqCst) >= 2, "no run formed");
    t.finish();
}

/// A framed outbound client that reports the connects that failed.
struct FramedCaller {
    failed: Mutex<mpsc::Sender<(SocketAddr, io::ErrorKind)>>,
}

impl Lifecycle for FramedCaller {
    type State = ();

    fn connect_failed(&self, addr: SocketAddr, err: &io::Error) {
        let _ = self.failed.lock().unwrap().send((addr, err.kind()));
    }
}

impl FrameHandler for FramedCaller {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder().ending(LineEnding::Crlf).build()
    }

    fn frame(&self, _: &mut FramedConn<'_, '_, LineCodec>, _: &mut (), _: IoBuf) {}
}

fn framed_client_learns_of_a_refused_connect(engine: EngineChoice) {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // nothing listens there now
    let (tx, failed) = mpsc::channel();
    let c = builder(engine)
        .start_client(Framed::new(FramedCaller {
            failed: Mutex::new(tx),
        }))
        .expect("client starts");
    c.connect(refused, IO_TIMEOUT).unwrap();
    let (addr, kind) = failed.recv_timeout(IO_TIMEOUT).expect("connect_failed");
    assert_eq!(addr, refused);
    assert_eq!(kind, io::ErrorKind::ConnectionRefused);
    assert_eq!(c.stats().accepted, 0);
    let pool = c.buffer_pool().clone();
    c.shutdown(Duration::from_secs(5));
    assert_eq!(pool.stats().in_use, 0);
}

/// Answers each line (and `big` with a line larger than an IO buffer);
/// counts what `write_completed` reports, in all and per connection.
#[derive(Default)]
struct CountWrites {
    calls: AtomicUsize,
    bytes: AtomicUsize,
    /// Each closed connection's own count, kept in its state.
    per_conn: Mutex<Vec<usize>>,
}

impl Lifecycle for CountWrites {
    /// Bytes reported for this connection.
    type State = usize;

    fn write_completed(&self, _: &mut Conn<'_>, written: &mut usize, buf: IoBuf) {
        *written += buf.len();
        self.calls.fetch_add(1, SeqCst);
        self.bytes.fetch_add(buf.len(), SeqCst);
    }

    fn closing(&self, _: &mut Conn<'_>, written: &mut usize) -> Closing {
        self.per_conn.lock().unwrap().push(*written);
        Closing::Default
    }
}

impl FrameHandler for CountWrites {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder().ending(LineEnding::Crlf).build()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut usize, line: IoBuf) {
        if &line[..] == b"big" {
            conn.send(&[b'x'; 10_000][..]).unwrap();
        } else {
            let mut reply = b"+OK ".to_vec();
            reply.extend_from_slice(&line);
            conn.send(&reply[..]).unwrap();
        }
    }
}

fn framed_server_is_told_of_every_completed_write(engine: EngineChoice) {
    let t = start(engine, Framed::new(CountWrites::default()));
    let mut input = Vec::new();
    for i in 0..500 {
        input.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    input.extend_from_slice(b"big\r\n");
    let got = exchange(t.connect(), &input, true).unwrap();
    assert!(got.starts_with(b"+OK line 0\r\n+OK line 1\r\n"));
    assert!(got.ends_with(&[&[b'x'; 10_000][..], b"\r\n"].concat()));
    // The server closed only once every write had completed, so each was
    // reported before the end of stream we read.
    let h = t.handler().inner();
    assert_eq!(h.bytes.load(SeqCst), got.len());
    assert_eq!(*h.per_conn.lock().unwrap(), [got.len()]);
    assert!(
        h.calls.load(SeqCst) >= 3,
        "a 10 KB reply spans 4 KiB buffers"
    );
    t.finish();
}

/// Answers the lines of each read together, in `frames_done`.
struct Batches;

impl Lifecycle for Batches {
    type State = Vec<IoBuf>;
}

impl FrameHandler for Batches {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder().ending(LineEnding::Crlf).build()
    }

    fn frame(&self, _: &mut FramedConn<'_, '_, LineCodec>, batch: &mut Vec<IoBuf>, line: IoBuf) {
        batch.push(line);
    }

    fn frames_done(&self, conn: &mut FramedConn<'_, '_, LineCodec>, batch: &mut Vec<IoBuf>) {
        if batch.is_empty() {
            return;
        }
        let lines: Vec<&[u8]> = batch.iter().map(|l| &l[..]).collect();
        let reply = format!(
            "{}:{}",
            batch.len(),
            String::from_utf8_lossy(&lines.join(&b","[..]))
        );
        conn.send(reply.as_str()).unwrap();
        batch.clear();
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, batch: &mut Vec<IoBuf>) {
        assert!(batch.is_empty(), "frames_done came first");
        conn.conn().close();
    }
}

fn frames_of_one_read_end_with_frames_done(engine: EngineChoice) {
    use std::io::{BufRead, BufReader};
    let t = start(engine, Framed::new(Batches));
    let mut s = t.connect();
    let mut replies = BufReader::new(s.try_clone().unwrap());
    let mut reply = |expected: &str| {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{expected}\r\n"));
    };
    // One write, one read (on loopback): one batch.
    s.write_all(b"a\r\nb\r\nc\r\n").unwrap();
    reply("3:a,b,c");
    // A partial line waits for the read that completes it.
    s.write_all(b"d\r\ne").unwrap();
    reply("1:d");
    s.write_all(b"\r\n").unwrap();
    reply("1:e");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s).unwrap(), b"");
    t.finish();
}
