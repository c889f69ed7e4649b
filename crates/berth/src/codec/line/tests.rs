use super::*;
use crate::buffer::BufPool;

type Event = Result<Vec<u8>, FrameError>;

/// Push `parts` one at a time, decoding until `Ok(None)` after each and
/// carrying on after errors.
fn feed_into(codec: &mut LineCodec, src: &mut InBuf, parts: &[&[u8]]) -> Vec<Event> {
    let mut out = Vec::new();
    for p in parts {
        src.push(IoBuf::from(*p));
        loop {
            match codec.decode(src) {
                Ok(Some(line)) => out.push(Ok(line.to_vec())),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    out
}

fn feed(codec: &mut LineCodec, parts: &[&[u8]]) -> Vec<Event> {
    feed_into(codec, &mut InBuf::new(), parts)
}

fn lines(ls: &[&[u8]]) -> Vec<Event> {
    ls.iter().map(|l| Ok(l.to_vec())).collect()
}

fn crlf(max: usize) -> LineCodec {
    LineCodec::builder()
        .ending(LineEnding::Crlf)
        .max_line_length(max)
        .build()
}

fn lf(max: usize) -> LineCodec {
    LineCodec::builder().max_line_length(max).build()
}

fn too_long(max: u64) -> Event {
    Err(FrameError::TooLong { len: max + 1, max })
}

fn encode(codec: &mut LineCodec, line: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut dst = EncodeBuf::new(BufPool::new(16, 8));
    codec.encode(line, &mut dst)?;
    Ok(dst.take().iter().flat_map(|b| b.to_vec()).collect())
}

#[test]
fn defaults() {
    let codec = LineCodec::new();
    assert_eq!(codec, LineCodec::builder().build());
    assert_eq!(codec.ending(), LineEnding::Lf);
    assert_eq!(codec.max_line_length(), 64 << 10);
    assert_eq!(lf(0).max_line_length(), 1, "raised to 1");
}

#[test]
fn lf_accepts_lf_and_crlf() {
    let mut codec = lf(100);
    assert_eq!(
        feed(&mut codec, &[b"a\nb\r\n\n\r\nc\r", b"\nd"]),
        lines(&[b"a", b"b", b"", b"", b"c"])
    );
}

#[test]
fn lf_keeps_other_crs() {
    let mut codec = lf(100);
    assert_eq!(
        feed(&mut codec, &[b"\rx\ry\r\r\n\r"]),
        lines(&[b"\rx\ry\r"])
    );
}

#[test]
fn crlf_needs_both_bytes() {
    let mut codec = crlf(100);
    assert_eq!(
        feed(&mut codec, &[b"a\r\nb\nc\rd\r\n\n\r\n"]),
        lines(&[b"a", b"b\nc\rd", b"\n"])
    );
    // CR and LF in different chunks.
    assert_eq!(
        feed(&mut codec, &[b"x\r", b"\ny\r", b"\r", b"\n"]),
        lines(&[b"x", b"y\r"])
    );
}

#[test]
fn max_length_counts_the_terminator() {
    let mut codec = crlf(5);
    assert_eq!(feed(&mut codec, &[b"abc\r\n"]), lines(&[b"abc"]));
    assert_eq!(feed(&mut codec, &[b"abcd\r\n"]), [too_long(5)]);
    let mut codec = lf(5);
    assert_eq!(feed(&mut codec, &[b"abcd\n"]), lines(&[b"abcd"]));
    assert_eq!(feed(&mut codec, &[b"abc\r\n"]), lines(&[b"abc"]));
    assert_eq!(feed(&mut codec, &[b"abcd\r\n"]), [too_long(5)]);
}

#[test]
fn pop3_limit() {
    let mut codec = crlf(255);
    let ok = [vec![b'a'; 253], b"\r\n".to_vec()].concat();
    let long = [vec![b'a'; 254], b"\r\n".to_vec()].concat();
    assert_eq!(
        feed(&mut codec, &[&ok, &long, b"QUIT\r\n"]),
        [Ok(vec![b'a'; 253]), too_long(255), Ok(b"QUIT".to_vec())]
    );
}

#[test]
fn overlong_line_fails_fast_and_input_is_dropped() {
    let mut codec = lf(5);
    let mut src = InBuf::new();
    for b in b"abcd" {
        assert_eq!(feed_into(&mut codec, &mut src, &[&[*b]]), []);
    }
    // The fifth byte without LF: error at once, and the bytes are gone.
    assert_eq!(feed_into(&mut codec, &mut src, &[b"e"]), [too_long(5)]);
    assert!(src.is_empty());
    // The rest of the long line is dropped as it arrives: no more errors.
    let junk = vec![b'x'; 10_000];
    assert_eq!(feed_into(&mut codec, &mut src, &[&junk, &junk]), []);
    assert!(src.is_empty());
    assert_eq!(
        feed_into(&mut codec, &mut src, &[b"yy\nok\n"]),
        lines(&[b"ok"])
    );
}

#[test]
fn recovery_in_one_chunk() {
    let mut codec = lf(5);
    assert_eq!(
        feed(&mut codec, &[b"abcdefg\nxy\nabcdefghijklmno\n\nz"]),
        [too_long(5), Ok(b"xy".to_vec()), too_long(5), Ok(Vec::new())]
    );
}

#[test]
fn crlf_recovery_needs_a_whole_crlf() {
    let mut codec = crlf(4);
    // A lone LF does not end the overlong line; CR and LF may straddle chunks.
    assert_eq!(
        feed(&mut codec, &[b"abcdef", b"x\ny\r", b"\nz\r\n"]),
        [too_long(4), Ok(b"z".to_vec())]
    );
    // The overflow hits right after a CR, and the LF comes next.
    assert_eq!(
        feed(&mut codec, &[b"abc\r", b"\nok\r\n"]),
        [too_long(4), Ok(b"ok".to_vec())]
    );
}

#[test]
fn smallest_maximum() {
    let mut codec = lf(1);
    assert_eq!(
        feed(&mut codec, &[b"\n", b"a", b"", b"\n\n"]),
        [Ok(vec![]), too_long(1), Ok(vec![])]
    );
    let mut codec = crlf(1);
    assert_eq!(feed(&mut codec, &[b"\r", b"\n", b""]), [too_long(1)]);
}

#[test]
fn scanning_resumes_where_it_stopped() {
    let mut codec = crlf(1000);
    let mut src = InBuf::new();
    for _ in 0..10 {
        assert_eq!(feed_into(&mut codec, &mut src, &[b"0123456789"]), []);
        assert_eq!(codec.scanned, src.len());
    }
    assert_eq!(
        feed_into(&mut codec, &mut src, &[b"\r\n"]),
        lines(&[&b"0123456789".repeat(10)])
    );
    assert_eq!(codec.scanned, 0);
}

#[test]
fn lines_within_a_chunk_are_not_copied() {
    let mut codec = crlf(100);
    let chunk = IoBuf::from(&b"one\r\ntwo\r\nthr"[..]);
    let base = chunk.as_ptr();
    let mut src = InBuf::new();
    src.push(chunk);
    let one = codec.decode(&mut src).unwrap().unwrap();
    let two = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!((&*one, &*two), (&b"one"[..], &b"two"[..]));
    assert_eq!(one.as_ptr(), base);
    assert_eq!(two.as_ptr(), base.wrapping_add(5));
    assert_eq!(codec.decode(&mut src), Ok(None));
}

#[test]
fn decode_eof() {
    let mut codec = lf(10);
    let mut src = InBuf::new();
    src.push(IoBuf::from(&b"a\nbc"[..]));
    assert_eq!(
        codec.decode_eof(&mut src).unwrap().as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(
        codec.decode_eof(&mut src),
        Err(FrameError::Truncated { buffered: 2 })
    );
    src.clear();
    assert_eq!(codec.decode_eof(&mut src), Ok(None));
    // The tail of an overlong line already reported is just dropped.
    let mut codec = crlf(3);
    src.push(IoBuf::from(&b"abcd\r"[..]));
    assert_eq!(codec.decode_eof(&mut src), Err(too_long(3).unwrap_err()));
    assert_eq!(codec.decode_eof(&mut src), Ok(None));
    assert!(src.is_empty());
}

#[test]
fn reset_forgets_the_state() {
    let mut codec = lf(3);
    assert_eq!(feed(&mut codec, &[b"abcd"]), [too_long(3)]);
    codec.reset();
    assert_eq!(feed(&mut codec, &[b"ab\n"]), lines(&[b"ab"]));
}

#[test]
fn encoder_appends_the_terminator() {
    assert_eq!(encode(&mut crlf(10), b"abc").unwrap(), b"abc\r\n");
    assert_eq!(encode(&mut lf(10), b"abc").unwrap(), b"abc\n");
    let mut dst = EncodeBuf::new(BufPool::new(64, 8));
    let mut codec = crlf(1000);
    codec.encode("+OK hi", &mut dst).unwrap();
    let big = IoBuf::from(vec![b'x'; 300]);
    codec.encode(big.clone(), &mut dst).unwrap();
    let out = dst.take();
    assert_eq!(&*out[0], b"+OK hi\r\n");
    assert_eq!(out[1].as_ptr(), big.as_ptr(), "large lines are not copied");
    assert_eq!(&*out[2], b"\r\n");
}

#[test]
fn encoder_rejects_what_would_not_read_back() {
    assert_eq!(
        encode(&mut crlf(10), b"ab\r\ncd"),
        Err(FrameError::EmbeddedTerminator { at: 2 })
    );
    // Lone CR and LF are data with CRLF endings.
    assert_eq!(encode(&mut crlf(10), b"a\nb\r").unwrap(), b"a\nb\r\r\n");
    assert_eq!(
        encode(&mut lf(10), b"ab\ncd"),
        Err(FrameError::EmbeddedTerminator { at: 2 })
    );
    assert_eq!(
        encode(&mut lf(10), b"a\rb\r"),
        Err(FrameError::EmbeddedTerminator { at: 3 })
    );
    assert_eq!(
        encode(&mut crlf(5), b"abcd"),
        Err(FrameError::TooLong { len: 6, max: 5 })
    );
    assert_eq!(encode(&mut crlf(5), b"abc").unwrap(), b"abc\r\n");
    let mut dst = EncodeBuf::new(BufPool::new(64, 8));
    let res = crlf(3).encode(IoBuf::from(&b"abcd"[..]), &mut dst);
    assert!(res.is_err());
    assert!(dst.is_empty(), "nothing written on error");
}
