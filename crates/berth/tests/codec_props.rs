//! Property tests: codecs decode the same frames however the input is
//! split into chunks, and `InBuf` behaves like a plain byte queue.

use std::collections::VecDeque;

use berth::codec::{
    Decoder, EncodeBuf, Encoder, Endian, FrameError, InBuf, LengthFieldCodec, LengthWidth,
    LineCodec, LineEnding,
};
use berth::{BufPool, IoBuf};
use proptest::prelude::*;

/// How to split a stream: one byte at a time, or by cycling through sizes.
#[derive(Debug, Clone)]
enum Split {
    Bytes,
    Sizes(Vec<usize>),
}

fn split_strategy() -> impl Strategy<Value = Split> {
    prop_oneof![
        Just(Split::Bytes),
        prop::collection::vec(1usize..=64, 1..16).prop_map(Split::Sizes),
        prop::collection::vec(1usize..=5000, 1..4).prop_map(Split::Sizes),
    ]
}

/// Split `stream` as `split` says, into pooled blocks when they fit (so
/// `InBuf` may pack them) and unpooled buffers otherwise.
fn split(stream: &[u8], split: &Split, pool: &BufPool) -> Vec<IoBuf> {
    let sizes: Vec<usize> = match split {
        Split::Bytes => vec![1],
        Split::Sizes(s) => s.clone(),
    };
    let mut out = Vec::new();
    let mut rest = stream;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (part, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        if part.len() <= pool.buf_size() {
            let mut buf = pool.alloc();
            buf.extend_from_slice(part);
            out.push(buf.freeze());
        } else {
            out.push(IoBuf::from(part));
        }
    }
    out
}

/// Decode every chunk fully (continuing after errors), then at EOF.
fn decode_all<D>(codec: &mut D, chunks: Vec<IoBuf>) -> Vec<Result<Vec<u8>, FrameError>>
where
    D: Decoder<Item = IoBuf, Error = FrameError>,
{
    let mut src = InBuf::new();
    let mut out = Vec::new();
    for chunk in chunks {
        src.push(chunk);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => out.push(Ok(frame.to_vec())),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    if let Err(e) = codec.decode_eof(&mut src) {
        out.push(Err(e));
    }
    out
}

fn length_codec_strategy() -> impl Strategy<Value = LengthFieldCodec> {
    (
        0usize..4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        -3i64..=3,
    )
        .prop_map(|(w, little, includes, strip, adjustment)| {
            let width = [
                LengthWidth::U8,
                LengthWidth::U16,
                LengthWidth::U32,
                LengthWidth::U64,
            ][w];
            let mut b = LengthFieldCodec::builder()
                .width(width)
                .endian(if little { Endian::Little } else { Endian::Big })
                .length_adjustment(adjustment)
                .max_frame_length(600);
            if includes {
                b = b.length_includes_header();
            }
            if strip {
                b = b.strip_header();
            }
            b.build()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn length_field_frames_do_not_depend_on_chunking(
        mut codec in length_codec_strategy(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
        how in split_strategy(),
    ) {
        let pool = BufPool::new(64, 8);
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for p in &payloads {
            let mut out = EncodeBuf::new(pool.clone());
            // Payloads the configuration cannot frame are skipped.
            if codec.encode(IoBuf::from(p.clone()), &mut out).is_ok() {
                let frame: Vec<u8> = out.take().iter().flat_map(|b| b.to_vec()).collect();
                let header = codec.header_len();
                prop_assert_eq!(frame.len(), header + p.len());
                prop_assert_eq!(&frame[header..], &p[..]);
                stream.extend_from_slice(&frame);
                expected.push(Ok(if codec.strips_header() { p.clone() } else { frame }));
            }
        }
        let decoded = decode_all(&mut codec, split(&stream, &how, &pool));
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn lines_do_not_depend_on_chunking(
        crlf in any::<bool>(),
        max in 1usize..40,
        lines in prop::collection::vec(
            (prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 0..60), any::<bool>()),
            0..16,
        ),
        partial in 0usize..40,
        how in split_strategy(),
    ) {
        let ending = if crlf { LineEnding::Crlf } else { LineEnding::Lf };
        let mut codec = LineCodec::builder().ending(ending).max_line_length(max).build();
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (mut line, cr_lf) in lines {
            // No terminator inside a line; with LF endings, no CR at its end.
            for i in 0..line.len() {
                let ends = match ending {
                    LineEnding::Crlf => i > 0 && line[i - 1] == b'\r',
                    LineEnding::Lf => true,
                };
                if line[i] == b'\n' && ends {
                    line[i] = b'a';
                }
            }
            while ending == LineEnding::Lf && line.last() == Some(&b'\r') {
                line.pop();
            }
            let term: &[u8] = if crlf || cr_lf { b"\r\n" } else { b"\n" };
            stream.extend_from_slice(&line);
            stream.extend_from_slice(term);
            expected.push(if line.len() + term.len() <= max {
                Ok(line)
            } else {
                Err(FrameError::TooLong { len: max as u64 + 1, max: max as u64 })
            });
        }
        // An unterminated last line, shorter than the maximum.
        let partial = partial % max;
        stream.extend(std::iter::repeat_n(b'a', partial));
        if partial > 0 {
            expected.push(Err(FrameError::Truncated { buffered: partial }));
        }
        let pool = BufPool::new(64, 8);
        let decoded = decode_all(&mut codec, split(&stream, &how, &pool));
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn inbuf_is_a_byte_queue(
        parts in prop::collection::vec(prop::collection::vec(0u8..4, 0..40), 0..20),
        ops in prop::collection::vec((0u8..4, 0usize..100, 0u8..4), 0..40),
    ) {
        let pool = BufPool::new(32, 8);
        let mut buf = InBuf::new();
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut parts = parts.into_iter();
        for (op, n, byte) in ops {
            match op {
                0 => if let Some(p) = parts.next() {
                    model.extend(&p);
                    split(&p, &Split::Sizes(vec![n % 40 + 1]), &pool)
                        .into_iter()
                        .for_each(|c| buf.push(c));
                },
                1 => {
                    let n = n.min(model.len());
                    let taken = buf.take(n);
                    let want: Vec<u8> = model.drain(..n).collect();
                    prop_assert_eq!(&*taken, &want[..]);
                }
                2 => {
                    let n = n.min(model.len());
                    buf.discard(n);
                    model.drain(..n);
                }
                _ => {
                    let found = model.iter().skip(n).position(|&b| b == byte).map(|i| i + n);
                    prop_assert_eq!(buf.find_byte(n, byte), found);
                    let end = n + 7;
                    let within = found.filter(|&i| i < end);
                    prop_assert_eq!(buf.find_byte_in(n..end, byte), within);
                    prop_assert_eq!(buf.get(n), model.get(n).copied());
                    let mut dst = [0u8; 9];
                    let copied = buf.copy_to(n, &mut dst);
                    let want: Vec<u8> = model.iter().skip(n).take(9).copied().collect();
                    prop_assert_eq!(&dst[..copied], &want[..]);
                }
            }
            prop_assert_eq!(buf.len(), model.len());
            let chunked: Vec<u8> = buf.chunks().flat_map(|c| c.to_vec()).collect();
            prop_assert_eq!(chunked, model.iter().copied().collect::<Vec<u8>>());
        }
    }
}
