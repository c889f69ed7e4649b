//! Timeouts over loopback, on both engines: the idle timeout (no bytes
//! either way), the frame timeout of the framed layer (from a frame's
//! first byte, for lines and length-prefixed packets), and the handler's
//! own timer (set, reset, move earlier, cancel; `timed_out` closes by
//! default). Timeouts are a few hundred milliseconds; the wheel's tick is
//! 10 ms, so a timer fires no earlier than its timeout less about one tick.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use berth::codec::LineCodec;
use berth::servers::PacketEcho;
use berth::{
    CloseReason, Conn, EngineChoice, FrameHandler, Framed, FramedConn, Handler, IoBuf, Lifecycle,
    Timeout,
};
use common::*;

both_engines!(
    idle_timeout_closes_an_idle_connection_but_not_one_exchanging_bytes,
    frame_timeout_closes_a_connection_dribbling_a_line,
    frame_timeout_closes_a_connection_dribbling_a_packet,
    user_timer_fires_and_is_reset_moved_and_cancelled,
    a_user_timer_closes_the_connection_by_default,
);

/// How much before its timeout, measured by the client, a timer may fire:
/// the wheel's 10 ms tick (deadlines are rounded down to it), plus some of
/// the loop pass in which the server read the byte that set the timer
/// (time is read once a pass, at its start).
const TICK: Duration = Duration::from_millis(25);

/// An upper bound on how late a timer may be reported on this shared machine.
const LATE: Duration = Duration::from_secs(3);

/// A line server for the raw `Handler`: `set MS` sets the connection's
/// timer, `cancel` cancels it, `tick` starts a timer that writes `tick`
/// every 100 ms, anything else is echoed. Each command gets `ok`. A user
/// timer writes `fired` (or `tick`); an idle or frame timeout closes, as
/// the default does. Every `timed_out` is reported.
struct Timed {
    timeouts: Mutex<mpsc::Sender<Timeout>>,
}

#[derive(Default)]
struct TimedState {
    line: Vec<u8>,
    ticking: bool,
}

impl Lifecycle for Timed {
    type State = TimedState;

    fn timed_out(&self, conn: &mut Conn<'_>, st: &mut TimedState, which: Timeout) {
        let _ = self.timeouts.lock().unwrap().send(which);
        match which {
            Timeout::User if st.ticking => {
                let _ = conn.write(b"tick\n");
                conn.set_timer(Duration::from_millis(100));
            }
            Timeout::User => {
                let _ = conn.write(b"fired\n");
            }
            _ => conn.close(),
        }
    }
}

impl Handler for Timed {
    fn read_completed(&self, conn: &mut Conn<'_>, st: &mut TimedState, buf: IoBuf) {
        for &b in buf.iter() {
            if b != b'\n' {
                st.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&st.line).into_owned();
            st.line.clear();
            if let Some(ms) = line.strip_prefix("set ") {
                conn.set_timer(Duration::from_millis(ms.parse().unwrap()));
                let _ = conn.write(b"ok\n");
            } else if line == "cancel" {
                conn.cancel_timer();
                let _ = conn.write(b"ok\n");
            } else if line == "tick" {
                st.ticking = true;
                conn.set_timer(Duration::from_millis(100));
            } else {
                let _ = conn.write(format!("{line}\n").as_bytes());
            }
        }
    }
}

fn timed(engine: EngineChoice) -> (berth::ServerBuilder, Timed, mpsc::Receiver<Timeout>) {
    let (tx, rx) = mpsc::channel();
    let h = Timed {
        timeouts: Mutex::new(tx),
    };
    (builder(engine), h, rx)
}

/// A client reading replies line by line.
struct Lines {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Lines {
    fn new(s: TcpStream) -> Self {
        Lines {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// Nothing arrives for `window`.
    fn quiet_for(&mut self, window: Duration) -> bool {
        self.w.set_read_timeout(Some(window)).unwrap();
        let mut l = String::new();
        let quiet = match self.r.read_line(&mut l) {
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        };
        self.w.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        quiet
    }
}

/// Read until the server closes; how long that took from `since`, and
/// whether it was a clean end-of-file.
fn closed_after(mut s: TcpStream, since: Instant) -> (Duration, io::Result<()>) {
    let (_, end) = read_until_closed(&mut s);
    (since.elapsed(), end)
}

/// Idle timeout 300 ms: a silent client is closed (end-of-file) after it;
/// one that exchanges a line every 50 ms, and one that only receives
/// (the server writes every 100 ms), stay open for four times as long.
fn idle_timeout_closes_an_idle_connection_but_not_one_exchanging_bytes(engine: EngineChoice) {
    const IDLE: Duration = Duration::from_millis(300);
    let (b, h, timeouts) = timed(engine);
    let t = start_with(b.idle_timeout(IDLE), h);

    let since = Instant::now();
    let idle = t.connect();
    let idle = std::thread::spawn(move || closed_after(idle, since));

    // One client exchanges a line every 50 ms; the other only receives a
    // line every 100 ms. Each on its own thread, at its own pace.
    let mut talker = Lines::new(t.connect());
    let mut listener = Lines::new(t.connect());
    listener.send("tick");
    let talking = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < IDLE * 4 {
            assert_eq!(talker.ask(&format!("ping {n}")), format!("ping {n}"));
            n += 1;
            std::thread::sleep(Duration::from_millis(50)); // the talker's pace
        }
        talker
    });
    let start = Instant::now();
    while start.elapsed() < IDLE * 4 {
        assert_eq!(listener.line(), "tick");
    }
    let mut talker = talking.join().unwrap();
    // Both are still served.
    assert_eq!(talker.ask("still here"), "still here");
    assert_eq!(listener.line(), "tick");

    let (after, end) = idle.join().unwrap();
    assert!(end.is_ok(), "closed with end-of-file: {end:?}");
    assert!(
        after >= IDLE - TICK && after < IDLE + LATE,
        "closed after {after:?}"
    );
    // The listener's ticks are user timeouts; one idle timeout, the silent client's.
    let kinds: Vec<Timeout> = timeouts.try_iter().collect();
    let idles = kinds.iter().filter(|&&w| w == Timeout::Idle).count();
    assert_eq!(idles, 1, "{kinds:?}");
    assert!(eventually(IO_TIMEOUT, || {
        t.server().stats().closed_for(CloseReason::Timeout) == 1
    }));
    drop(talker);
    drop(listener);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 3));
    assert_eq!(t.server().stats().closed_for(CloseReason::Timeout), 1);
    t.finish();
}

/// A line echo server on the framed layer; reports timeouts, then closes
/// (as the default does).
struct LineEcho {
    timeouts: Mutex<mpsc::Sender<Timeout>>,
}

impl Lifecycle for LineEcho {
    type State = ();

    fn timed_out(&self, conn: &mut Conn<'_>, _: &mut (), which: Timeout) {
        let _ = self.timeouts.lock().unwrap().send(which);
        conn.close();
    }
}

impl FrameHandler for LineEcho {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::new()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut (), line: IoBuf) {
        conn.send(line).unwrap();
    }
}

const FRAME: Duration = Duration::from_millis(500);

/// Dribble `bytes` one every 100 ms until the server closes; returns how
/// long after the first byte it closed.
fn dribble_until_closed(s: TcpStream, bytes: &[u8]) -> Duration {
    let mut w = s.try_clone().unwrap();
    let first = Instant::now();
    let reader = std::thread::spawn(move || closed_after(s, first));
    for &b in bytes {
        if reader.is_finished() || w.write_all(&[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // the dribbler's pace
    }
    let (after, end) = reader.join().unwrap();
    // The server closes gracefully; bytes still arriving may turn that
    // into a reset, which is a close too.
    if let Err(e) = end {
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    }
    after
}

/// Frame timeout 500 ms on a line server: after a complete line and 300 ms
/// of silence, a client dribbling a line a byte every 100 ms is closed 500
/// ms after the line's first byte (not the connection's, nor the previous
/// line's); a client sending each line in two halves, 50 ms apart, for
/// three times as long, is served throughout.
fn frame_timeout_closes_a_connection_dribbling_a_line(engine: EngineChoice) {
    let (tx, timeouts) = mpsc::channel();
    let h = LineEcho {
        timeouts: Mutex::new(tx),
    };
    let t = start_with(builder(engine).frame_timeout(FRAME), Framed::new(h));

    let mut slow = Lines::new(t.connect());
    assert_eq!(slow.ask("hello"), "hello");
    let slow = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300)); // silence before the dribble
        dribble_until_closed(slow.w, &[b'x'; 40])
    });

    let mut good = Lines::new(t.connect());
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < FRAME * 3 {
        good.w.write_all(format!("line {n}").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // between the halves
        good.w.write_all(b" end\n").unwrap();
        assert_eq!(good.line(), format!("line {n} end"));
        n += 1;
    }
    let after = slow.join().unwrap();
    assert!(
        after >= FRAME - TICK && after < FRAME + LATE,
        "closed {after:?} after the line's first byte"
    );
    assert_eq!(good.ask("still here"), "still here");
    assert_eq!(timeouts.recv_timeout(IO_TIMEOUT), Ok(Timeout::Frame));
    assert!(timeouts.try_recv().is_err(), "one frame timeout");
    drop(good);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 2));
    assert_eq!(t.server().stats().closed_for(CloseReason::Timeout), 1);
    t.finish();
}

/// The same for the packet echo server (a `LengthFieldCodec`): a
/// packet of 200 bytes dribbled after its header is cut off 500 ms after
/// the header; packets every 100 ms, each sent in two halves 50 ms apart,
/// keep another connection served.
fn frame_timeout_closes_a_connection_dribbling_a_packet(engine: EngineChoice) {
    let t = start_with(
        builder(engine).frame_timeout(FRAME),
        Framed::new(PacketEcho::default()),
    );
    let slow = t.connect();
    let mut packet = vec![200u8];
    packet.extend(pattern(199, 5));
    let slow = std::thread::spawn(move || dribble_until_closed(slow, &packet));

    let mut good = t.connect();
    let start = Instant::now();
    let mut n = 0u8;
    while start.elapsed() < FRAME * 3 {
        let mut p = vec![20u8];
        p.extend(pattern(19, n));
        good.write_all(&p[..8]).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // between the halves
        good.write_all(&p[8..]).unwrap();
        let mut back = vec![0u8; p.len()];
        good.read_exact(&mut back).unwrap();
        assert_eq!(back, p);
        n = n.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(100)); // the client's pace
    }
    let after = slow.join().unwrap();
    assert!(
        after >= FRAME - TICK && after < FRAME + LATE,
        "closed {after:?} after the packet's first byte"
    );
    good.write_all(&[2, 42]).unwrap();
    let mut back = [0u8; 2];
    good.read_exact(&mut back).unwrap();
    assert_eq!(back, [2, 42]);
    drop(good);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 2));
    assert_eq!(t.server().stats().closed_for(CloseReason::Timeout), 1);
    t.finish();
}

/// Wait for `fired`; how long after `since` it came.
fn fired_after(c: &mut Lines, since: Instant) -> Duration {
    assert_eq!(c.line(), "fired");
    since.elapsed()
}

/// The handler's timer: set fires `timed_out(User)` once; set again before
/// it fires postpones it; set to an earlier time brings it forward;
/// cancel prevents it, and the timer works again afterwards. A user timer
/// that writes keeps the connection open (nothing is counted as a timeout
/// close).
fn user_timer_fires_and_is_reset_moved_and_cancelled(engine: EngineChoice) {
    let (b, h, timeouts) = timed(engine);
    let t = start_with(b, h);
    let mut c = Lines::new(t.connect());

    // Set: fires once, after 200 ms.
    let since = Instant::now();
    assert_eq!(c.ask("set 200"), "ok");
    let after = fired_after(&mut c, since);
    assert!(
        after >= Duration::from_millis(200) - TICK && after < LATE,
        "{after:?}"
    );

    // Reset after 150 ms: fires 300 ms after the reset, not the first set.
    let since = Instant::now();
    assert_eq!(c.ask("set 300"), "ok");
    std::thread::sleep(Duration::from_millis(150)); // before the first would fire
    assert_eq!(c.ask("set 300"), "ok");
    let after = fired_after(&mut c, since);
    assert!(
        after >= Duration::from_millis(450) - TICK && after < LATE,
        "{after:?}"
    );

    // Moved earlier: fires after 100 ms, and not again at 2 s.
    let since = Instant::now();
    assert_eq!(c.ask("set 2000"), "ok");
    assert_eq!(c.ask("set 100"), "ok");
    let after = fired_after(&mut c, since);
    assert!(
        after >= Duration::from_millis(100) - TICK && after < Duration::from_millis(1500),
        "{after:?}"
    );

    // Cancelled: nothing, over a window well past its time.
    assert_eq!(c.ask("set 200"), "ok");
    assert_eq!(c.ask("cancel"), "ok");
    assert!(
        c.quiet_for(Duration::from_millis(600)),
        "a cancelled timer fired"
    );

    // And usable again.
    let since = Instant::now();
    assert_eq!(c.ask("set 50"), "ok");
    fired_after(&mut c, since);
    // The stale entry of the `set 2000` must not fire either.
    let left = Duration::from_millis(2000 + 300).saturating_sub(since.elapsed());
    assert!(c.quiet_for(left), "a replaced timer fired");

    let kinds: Vec<Timeout> = timeouts.try_iter().collect();
    assert_eq!(kinds, [Timeout::User; 4]);
    drop(c);
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 1));
    assert_eq!(t.server().stats().closed_for(CloseReason::Timeout), 0);
    t.finish();
}

/// Sets a 100 ms timer when a connection opens and keeps the default
/// `timed_out`.
struct SetOnOpen;

impl Lifecycle for SetOnOpen {
    type State = ();
}

impl Handler for SetOnOpen {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        conn.set_timer(Duration::from_millis(100));
    }

    fn read_completed(&self, _: &mut Conn<'_>, _: &mut (), _: IoBuf) {}
}

/// The default `timed_out` closes the connection (end-of-file), counted as
/// closed for `Timeout`.
fn a_user_timer_closes_the_connection_by_default(engine: EngineChoice) {
    let t = start(engine, SetOnOpen);
    let since = Instant::now();
    let (after, end) = closed_after(t.connect(), since);
    assert!(end.is_ok(), "{end:?}");
    assert!(
        after >= Duration::from_millis(100) - TICK && after < LATE,
        "{after:?}"
    );
    assert!(eventually(IO_TIMEOUT, || t.server().stats().closed == 1));
    assert_eq!(t.server().stats().closed_for(CloseReason::Timeout), 1);
    t.finish();
}
