//! Malformed input gets a clear error with bounded memory (issue #15,
//! requirement 8): a length prefix of 2^32 − 1, a length of zero, NUL bytes
//! in a line, and 1 MiB without a line terminator — first at the codecs,
//! then over loopback on both engines, where the connection gets its error
//! and the server goes on serving others.
//!
//! Memory is measured with a counting global allocator: the bytes allocated
//! while the bad input is handled bound how much the process could have
//! grown. So that tests do not count each other, each holds [`SERIAL`] for
//! its whole run. (The zero-length packet over loopback is
//! `framed.rs`'s `malformed_header_closes_only_that_connection`.)

mod common;

use std::alloc::System;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};

use berth::codec::{
    Decoder, EncodeBuf, Encoder, FrameError, InBuf, LengthFieldCodec, LineCodec, LineEnding,
};
use berth::servers::packet_codec;
use berth::{
    BufPool, EngineChoice, FrameErrorAction, FrameHandler, Framed, FramedConn, IoBuf, Lifecycle,
};
use common::*;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Held by every test, so that each counts only its own allocations.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const MIB: usize = 1 << 20;

/// The bytes allocated (or added by growing an allocation) while `f`
/// runs, and its result: a bound on how much the process grew meanwhile.
/// The count is process-wide, so the bounds leave a little room for the
/// test harness, which may report another test's end meanwhile.
fn allocated_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let region = Region::new(GLOBAL);
    let out = f();
    let change = region.change();
    let grown = change.bytes_reallocated.max(0) as usize;
    (change.bytes_allocated + grown, out)
}

/// 1 MiB of `b'x'` in 16 KiB chunks, made before anything is measured.
fn megabyte_in_chunks() -> Vec<IoBuf> {
    (0..64).map(|_| IoBuf::from(vec![b'x'; 16 << 10])).collect()
}

#[test]
fn length_prefix_of_u32_max_is_too_long_and_nothing_is_reserved_for_it() {
    let _serial = serial();
    let u32_max = u64::from(u32::MAX);
    let max = 8 << 20;
    let cases = [
        // The default codec: a 4-byte big-endian field counting the payload.
        (LengthFieldCodec::new(), [0xff; 4], u32_max + 4),
        (
            LengthFieldCodec::builder().length_includes_header().build(),
            [0xff; 4],
            u32_max,
        ),
        (
            LengthFieldCodec::builder()
                .endian(berth::codec::Endian::Little)
                .strip_header()
                .build(),
            [0xff; 4],
            u32_max + 4,
        ),
    ];
    for (mut codec, header, len) in cases {
        let mut src = InBuf::new();
        src.push(IoBuf::from(&header[..]));
        src.push(IoBuf::from(vec![7u8; 1000]));
        let (bytes, result) = allocated_during(|| codec.decode(&mut src));
        assert_eq!(result, Err(FrameError::TooLong { len, max }), "{codec:?}");
        assert_eq!(
            result.unwrap_err().to_string(),
            format!("frame of {len} bytes exceeds the maximum of {max}")
        );
        assert!(bytes < 1024, "{codec:?}: {bytes} bytes allocated");
        assert_eq!(src.len(), 1004, "the input is left as it was");
        // The error is sticky: the stream's framing is lost.
        assert_eq!(
            codec.decode(&mut src),
            Err(FrameError::TooLong { len, max })
        );
    }
}

#[test]
fn length_prefix_of_u32_max_without_a_maximum_buffers_only_what_arrives() {
    let _serial = serial();
    let mut codec = LengthFieldCodec::builder()
        .max_frame_length(usize::MAX)
        .build();
    let mut chunks = vec![IoBuf::from(&[0xffu8; 4][..])];
    chunks.extend(megabyte_in_chunks());
    let mut src = InBuf::new();
    let (bytes, ()) = allocated_during(|| {
        for chunk in chunks {
            src.push(chunk);
            assert_eq!(codec.decode(&mut src), Ok(None), "waits for the frame");
        }
    });
    assert_eq!(src.len(), 4 + MIB);
    // Only the queue of the 65 chunks received grows; nothing is set
    // aside for the frame's 4 GiB.
    assert!(bytes < 16 << 10, "{bytes} bytes allocated");
}

#[test]
fn zero_length_prefix_is_below_the_header_where_the_length_counts_it() {
    let _serial = serial();
    let decode = |mut codec: LengthFieldCodec, bytes: &[u8]| {
        let mut src = InBuf::new();
        src.push(IoBuf::from(bytes));
        codec.decode(&mut src).map(|f| f.map(|f| f.to_vec()))
    };
    // `berth packet-echo`'s packets: the 1-byte header counts itself.
    let err = decode(packet_codec(), b"\x00abc").unwrap_err();
    assert_eq!(err, FrameError::LengthBelowHeader { len: 0, header: 1 });
    assert_eq!(
        err.to_string(),
        "length field gives a frame of 0 bytes, shorter than its 1-byte header"
    );
    let counts_header = LengthFieldCodec::builder().length_includes_header().build();
    assert_eq!(
        decode(counts_header, &[0; 8]),
        Err(FrameError::LengthBelowHeader { len: 0, header: 4 })
    );
    // Where the field counts only the payload, zero is an empty payload.
    assert_eq!(
        decode(LengthFieldCodec::new(), &[0; 4]),
        Ok(Some(vec![0; 4]))
    );
}

#[test]
fn nul_bytes_in_a_line_are_data() {
    let _serial = serial();
    for ending in [LineEnding::Lf, LineEnding::Crlf] {
        let mut codec = LineCodec::builder().ending(ending).build();
        let mut src = InBuf::new();
        src.push(IoBuf::from(&b"\0a\0b\0\r\n\0\r\n"[..]));
        let mut lines = Vec::new();
        while let Some(line) = codec.decode(&mut src).unwrap() {
            lines.push(line.to_vec());
        }
        assert_eq!(lines, [&b"\0a\0b\0"[..], b"\0"], "{ending:?}");
        assert!(src.is_empty());
        let mut out = EncodeBuf::new(BufPool::new(64, 4));
        codec.encode(&b"a\0b"[..], &mut out).unwrap();
        let encoded: Vec<u8> = out.take().iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(encoded, [&b"a\0b"[..], ending.terminator()].concat());
    }
}

#[test]
fn megabyte_without_a_line_terminator_is_too_long_with_bounded_memory() {
    let _serial = serial();
    let default = LineCodec::new();
    let pop3 = LineCodec::builder()
        .ending(LineEnding::Crlf)
        .max_line_length(255)
        .build();
    for mut codec in [default, pop3] {
        let max = codec.max_line_length();
        let chunks = megabyte_in_chunks();
        let mut src = InBuf::new();
        let mut errors = Vec::new();
        let (bytes, ()) = allocated_during(|| {
            for chunk in chunks {
                src.push(chunk);
                loop {
                    match codec.decode(&mut src) {
                        Ok(Some(line)) => panic!("a line: {} bytes", line.len()),
                        Ok(None) => break,
                        Err(e) => errors.push(e),
                    }
                }
                assert!(src.len() < max, "{} bytes kept", src.len());
            }
        });
        let len = max as u64 + 1;
        let err = FrameError::TooLong {
            len,
            max: max as u64,
        };
        assert_eq!(errors, [err], "one error for the line");
        assert!(bytes < 4096, "max {max}: {bytes} bytes allocated");
        // The line's end is skipped, and the next line decoded.
        src.push(IoBuf::from(&b"xx\r\nnext\r\n"[..]));
        assert_eq!(
            codec.decode(&mut src).unwrap().as_deref(),
            Some(&b"next"[..])
        );
        // At the end of the stream, the rest of a reported line is dropped.
        src.push(IoBuf::from(vec![b'x'; MIB]));
        assert!(codec.decode(&mut src).is_err());
        assert_eq!(codec.decode_eof(&mut src), Ok(None));
        assert!(src.is_empty());
    }
}

// Over loopback, on both engines.

both_engines!(
    u32_max_length_prefix_closes_only_that_connection,
    megabyte_line_without_terminator_is_answered_and_skipped,
);

/// Echoes frames of the default length-field codec (4-byte prefix, 8 MiB).
struct FrameEcho;

impl Lifecycle for FrameEcho {
    type State = ();
}

impl FrameHandler for FrameEcho {
    type Codec = LengthFieldCodec;

    fn codec(&self) -> LengthFieldCodec {
        LengthFieldCodec::new()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut (), frame: IoBuf) {
        conn.conn().write_buf(frame).unwrap();
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LengthFieldCodec>, _: &mut ()) {
        conn.conn().close();
    }
}

/// The servers here have one IO thread whose io_uring buffer ring holds at
/// most 16 buffers of 4 KiB: the engine may fill it as the load grows.
fn small_server(engine: EngineChoice) -> berth::ServerBuilder {
    builder(engine).io_threads(1).ring_buffers(16)
}

/// The most the server may allocate while it throws 1 MiB of bad input
/// away: its receive buffers (64 KiB) and 64 KiB more, a fraction of that
/// MiB, let alone of 4 GiB.
const SERVER_ALLOCATION_BOUND: usize = (16 * 4096) + (64 << 10);

fn u32_max_length_prefix_closes_only_that_connection(engine: EngineChoice) {
    let _serial = serial();
    let t = start_with(small_server(engine), Framed::new(FrameEcho));
    let good_frame = b"\0\0\0\x03abc";
    let mut bad = t.connect();
    bad.write_all(good_frame).unwrap();
    let mut echo = [0u8; 7];
    bad.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, good_frame);
    // A prefix of 2^32 - 1, then 1 MiB more: the server shuts the
    // connection down and throws the rest away.
    let mut flood = vec![0xffu8; 4];
    flood.extend(std::iter::repeat_n(b'x', MIB));
    let (bytes, got) = allocated_during(|| exchange(bad, &flood, true).unwrap());
    assert_eq!(got, b"", "end-of-file, nothing echoed");
    assert!(bytes < SERVER_ALLOCATION_BOUND, "{bytes} bytes allocated");
    // Another connection is served as before.
    let mut good = t.connect();
    good.write_all(good_frame).unwrap();
    good.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, good_frame);
    drop(good);
    t.finish();
}

/// Answers lines of at most 255 octets (POP3's limit) with `+OK <line>`,
/// and longer lines with `-ERR line too long`, then carries on.
struct Pop3Lines;

impl Lifecycle for Pop3Lines {
    type State = ();
}

impl FrameHandler for Pop3Lines {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Crlf)
            .max_line_length(255)
            .build()
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut (), line: IoBuf) {
        let reply = [&b"+OK "[..], &line].concat();
        conn.send(&reply[..]).unwrap();
    }

    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut (),
        error: &FrameError,
    ) -> FrameErrorAction {
        assert!(matches!(error, FrameError::TooLong { .. }), "{error}");
        conn.send("-ERR line too long").unwrap();
        FrameErrorAction::Continue
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut ()) {
        conn.conn().close();
    }
}

fn read_line(replies: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    replies.read_line(&mut line).unwrap();
    line
}

fn megabyte_line_without_terminator_is_answered_and_skipped(engine: EngineChoice) {
    let _serial = serial();
    let t = start_with(small_server(engine), Framed::new(Pop3Lines));
    let mut s = t.connect();
    let mut replies = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"one\r\n").unwrap();
    assert_eq!(read_line(&mut replies), "+OK one\r\n");
    let flood = vec![b'x'; MIB];
    let (bytes, ()) = allocated_during(|| {
        s.write_all(&flood).unwrap();
        assert_eq!(read_line(&mut replies), "-ERR line too long\r\n");
        // Another connection is served meanwhile.
        let mut other = t.connect();
        other.write_all(b"hello\r\n").unwrap();
        let mut back = [0u8; 11];
        other.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"+OK hello\r\n");
    });
    assert!(bytes < SERVER_ALLOCATION_BOUND, "{bytes} bytes allocated");
    // The end of the long line is skipped; the session goes on.
    s.write_all(b"\r\ntwo\r\n").unwrap();
    assert_eq!(read_line(&mut replies), "+OK two\r\n");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    replies.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    drop((s, replies));
    t.finish();
}
