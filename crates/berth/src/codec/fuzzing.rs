//! Invariant checks for the codecs, shared by the fuzz targets in `fuzz/`
//! and their stable run (`tests/fuzz_targets.rs`). Not a stable API.
//!
//! Each check reads a codec configuration and a chunking seed from the
//! first bytes of its input and treats the rest as a received stream. It
//! decodes the stream whole, in seeded random chunks and one byte at a time,
//! compares all three with a simple model decoder working on the plain byte
//! slice, and re-encodes every decoded frame. It panics when an invariant
//! does not hold.

use super::{
    Decoder, EncodeBuf, Encoder, Endian, FrameError, InBuf, LengthFieldCodec, LengthWidth,
    LineCodec, LineEnding,
};
use crate::buffer::{BufPool, IoBuf};
use std::mem::ManuallyDrop;

thread_local! {
    /// Pools for input chunks (32-byte blocks) and for encoding (7-byte
    /// blocks, so frames spill over several). They live as long as the
    /// process: a `BufPool` dropped while it holds pooled blocks is never
    /// freed (pool and blocks refer to each other), which LeakSanitizer
    /// reports under `cargo fuzz`.
    static POOLS: ManuallyDrop<(BufPool, BufPool)> =
        ManuallyDrop::new((BufPool::new(32, 4), BufPool::new(7, 4)));
}

fn chunk_pool() -> BufPool {
    POOLS.with(|p| p.0.clone())
}

fn encode_pool() -> BufPool {
    POOLS.with(|p| p.1.clone())
}

/// A decoded frame or an error, as the checks compare them.
type Event = Result<Vec<u8>, FrameError>;

/// xorshift64*: deterministic chunk sizes from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Split the input into a fixed-size configuration and the stream.
fn split_config<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut config = [0u8; N];
    let n = data.len().min(N);
    config[..n].copy_from_slice(&data[..n]);
    (config, &data[n..])
}

/// Cut `stream` into chunks as a network read loop might deliver them:
/// pooled blocks with spare room (which `InBuf` may pack into), unpooled
/// buffers, and the odd empty chunk.
fn chunks(stream: &[u8], seed: u64, pool: &BufPool) -> Vec<IoBuf> {
    const MAX_CHUNK: [usize; 8] = [1, 2, 3, 5, 16, 64, 1000, usize::MAX];
    let mut rng = Rng::new(seed);
    let max_chunk = MAX_CHUNK[rng.below(MAX_CHUNK.len())];
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = (1 + rng.below(max_chunk.min(rest.len()))).min(rest.len());
        let (part, tail) = rest.split_at(n);
        rest = tail;
        if n <= pool.buf_size() && rng.next() & 1 == 0 {
            let mut buf = pool.alloc();
            buf.extend_from_slice(part);
            out.push(buf.freeze());
        } else {
            out.push(IoBuf::from(part));
        }
        if rng.below(8) == 0 {
            out.push(IoBuf::empty());
        }
    }
    out
}

/// Push each chunk and decode until `Ok(None)`, then `decode_eof` once.
/// With `stop_on_error`, the first error ends decoding.
fn run<D>(codec: &mut D, chunks: Vec<IoBuf>, stop_on_error: bool) -> Vec<Event>
where
    D: Decoder<Item = IoBuf, Error = FrameError>,
{
    let mut src = InBuf::new();
    let mut events = Vec::new();
    for chunk in chunks {
        src.push(chunk);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => events.push(Ok(frame.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    events.push(Err(e));
                    if stop_on_error {
                        return events;
                    }
                }
            }
        }
    }
    match codec.decode_eof(&mut src) {
        Ok(None) => {}
        Ok(Some(frame)) => panic!("decode_eof found a frame decode missed: {frame:?}"),
        Err(e) => events.push(Err(e)),
    }
    events
}

/// Decode `stream` whole, in seeded chunks and byte by byte; all three must
/// give `expected`. Also checks that pooled chunk blocks are all released.
fn decode_every_way<D>(codec: &D, stream: &[u8], seed: u64, stop: bool, expected: &[Event])
where
    D: Decoder<Item = IoBuf, Error = FrameError> + Clone,
{
    let pool = chunk_pool();
    let ways = [
        ("whole", vec![IoBuf::from(stream)]),
        ("seeded", chunks(stream, seed, &pool)),
        ("bytes", stream.chunks(1).map(IoBuf::from).collect()),
    ];
    for (how, parts) in ways {
        let events = run(&mut codec.clone(), parts, stop);
        assert_eq!(events, expected, "decoding {how} differs from the model");
    }
    assert_eq!(pool.stats().in_use, 0, "chunk blocks leaked");
}

/// Encode `payload` both ways (copied and as an `IoBuf`); both must give
/// the same bytes. Checks that nothing is written on error.
fn encode_both<C>(codec: &mut C, payload: &[u8]) -> Result<Vec<u8>, FrameError>
where
    C: for<'a> Encoder<&'a [u8], Error = FrameError> + Encoder<IoBuf, Error = FrameError>,
{
    let mut dst = EncodeBuf::new(encode_pool());
    let copied = codec
        .encode(payload, &mut dst)
        .map(|()| flatten(dst.take()));
    assert!(dst.is_empty(), "output left after take");
    let queued = codec
        .encode(IoBuf::from(payload), &mut dst)
        .map(|()| flatten(dst.take()));
    assert_eq!(copied, queued, "encoding a slice and an IoBuf differ");
    copied
}

fn flatten(bufs: Vec<IoBuf>) -> Vec<u8> {
    bufs.iter().flat_map(|b| b.iter().copied()).collect()
}

/// The length-field codec configured by `data`, and the stream.
fn length_field_setup(data: &[u8]) -> (LengthFieldCodec, u64, &[u8]) {
    let (c, stream) = split_config::<6>(data);
    let width = [
        LengthWidth::U8,
        LengthWidth::U16,
        LengthWidth::U32,
        LengthWidth::U64,
    ][usize::from(c[0] & 3)];
    let endian = if c[0] & 4 == 0 {
        Endian::Big
    } else {
        Endian::Little
    };
    let mut b = LengthFieldCodec::builder()
        .width(width)
        .endian(endian)
        .length_adjustment(i64::from(c[1] as i8))
        .max_frame_length(usize::from(u16::from_le_bytes([c[2], c[3]])));
    if c[0] & 8 != 0 {
        b = b.length_includes_header();
    }
    if c[0] & 16 != 0 {
        b = b.strip_header();
    }
    let seed = u64::from(u16::from_le_bytes([c[4], c[5]]));
    (b.build(), seed, stream)
}

/// A model length-field decoder over the whole stream: frames as
/// `(start, len)` and the decoder events.
fn model_length_field(
    codec: &LengthFieldCodec,
    stream: &[u8],
) -> (Vec<(usize, usize)>, Vec<Event>) {
    let (width, max) = (codec.header_len(), codec.max_frame_length());
    let includes = codec.length_includes_header();
    let (mut frames, mut events, mut pos) = (Vec::new(), Vec::new(), 0);
    while stream.len() - pos >= width {
        let field = &stream[pos..pos + width];
        let value = match codec.endian() {
            Endian::Big => field.iter().fold(0u128, |v, &b| v << 8 | u128::from(b)),
            Endian::Little => field
                .iter()
                .rev()
                .fold(0u128, |v, &b| v << 8 | u128::from(b)),
        };
        let header = if includes { 0 } else { width as i128 };
        let len = value as i128 + i128::from(codec.length_adjustment()) + header;
        if len < width as i128 {
            events.push(Err(FrameError::LengthBelowHeader { len, header: width }));
            return (frames, events);
        }
        if len > max as i128 {
            let len = u64::try_from(len).unwrap_or(u64::MAX);
            events.push(Err(FrameError::TooLong {
                len,
                max: max as u64,
            }));
            return (frames, events);
        }
        let len = len as usize;
        if stream.len() - pos < len {
            break;
        }
        let skip = if codec.strips_header() { width } else { 0 };
        events.push(Ok(stream[pos + skip..pos + len].to_vec()));
        frames.push((pos, len));
        pos += len;
    }
    if pos < stream.len() {
        let buffered = stream.len() - pos;
        events.push(Err(FrameError::Truncated { buffered }));
    }
    (frames, events)
}

/// Fuzz check for [`LengthFieldCodec`].
///
/// Input: byte 0 picks width (bits 0-1), little endian (bit 2), length
/// includes header (bit 3) and strip header (bit 4); byte 1 is the length
/// adjustment (`i8`); bytes 2-3 the maximum frame length (`u16` LE); bytes
/// 4-5 the chunking seed; the rest is the stream.
pub fn check_length_field(data: &[u8]) {
    let (codec, seed, stream) = length_field_setup(data);
    let width = codec.header_len();
    let (frames, expected) = model_length_field(&codec, stream);
    decode_every_way(&codec, stream, seed, true, &expected);
    // `whole_frame_len` names exactly the frames `decode` cuts (none when
    // the header is stripped), and nothing where `decode` waits or fails.
    let mut end = 0;
    for &(start, len) in &frames {
        let want = (!codec.strips_header()).then_some(len);
        assert_eq!(codec.whole_frame_len(&stream[start..]), want);
        assert_eq!(codec.whole_frame_len(&stream[start..start + len]), want);
        assert_eq!(codec.whole_frame_len(&stream[start..start + len - 1]), None);
        end = start + len;
    }
    assert_eq!(
        codec.whole_frame_len(&stream[end..]),
        None,
        "after the last frame"
    );
    for (start, len) in frames {
        assert!(len <= codec.max_frame_length() && len >= width);
        let original = &stream[start..start + len];
        let encoded = encode_both(&mut codec.clone(), &original[width..]);
        assert_eq!(encoded.as_deref(), Ok(original), "re-encoding a frame");
    }
}

/// The line codec configured by `data`, and the stream.
fn line_setup(data: &[u8]) -> (LineCodec, u64, &[u8]) {
    let (c, stream) = split_config::<5>(data);
    let ending = if c[0] & 1 == 0 {
        LineEnding::Lf
    } else {
        LineEnding::Crlf
    };
    let codec = LineCodec::builder()
        .ending(ending)
        .max_line_length(usize::from(u16::from_le_bytes([c[1], c[2]]) % 512))
        .build();
    let seed = u64::from(u16::from_le_bytes([c[3], c[4]]));
    (codec, seed, stream)
}

/// A model line decoder over the whole stream.
fn model_line(ending: LineEnding, max: usize, stream: &[u8]) -> Vec<Event> {
    // The first terminator whose LF is at or after `from`, with a CR that
    // is at or after `start` for CRLF.
    let terminator = |start: usize, from: usize| {
        (from..stream.len()).find(|&i| {
            stream[i] == b'\n'
                && (ending == LineEnding::Lf || (i > start && stream[i - 1] == b'\r'))
        })
    };
    let (mut events, mut pos) = (Vec::new(), 0);
    loop {
        match terminator(pos, pos) {
            Some(lf) if lf - pos < max => {
                let cr = lf > pos && stream[lf - 1] == b'\r';
                events.push(Ok(stream[pos..lf - usize::from(cr)].to_vec()));
                pos = lf + 1;
            }
            _ if stream.len() - pos >= max => {
                events.push(Err(FrameError::TooLong {
                    len: max as u64 + 1,
                    max: max as u64,
                }));
                // Everything up to the first terminator past the first
                // `max` bytes is dropped; at the end, the rest is dropped.
                match terminator(pos + max - 1, pos + max) {
                    Some(lf) => pos = lf + 1,
                    None => return events,
                }
            }
            _ => break,
        }
    }
    if pos < stream.len() {
        let buffered = stream.len() - pos;
        events.push(Err(FrameError::Truncated { buffered }));
    }
    events
}

/// Fuzz check for [`LineCodec`].
///
/// Input: bit 0 of byte 0 picks CRLF (else LF); bytes 1-2 the maximum line
/// length (`u16` LE, modulo 512); bytes 3-4 the chunking seed; the rest is
/// the stream.
pub fn check_line(data: &[u8]) {
    let (codec, seed, stream) = line_setup(data);
    let (ending, max) = (codec.ending(), codec.max_line_length());
    let expected = model_line(ending, max, stream);
    decode_every_way(&codec, stream, seed, false, &expected);
    for line in expected.iter().filter_map(|e| e.as_ref().ok()) {
        assert!(
            line.len() + ending.terminator().len() <= max,
            "line too long"
        );
        let encoded = encode_both(&mut codec.clone(), line);
        if ending == LineEnding::Lf && line.ends_with(b"\r") {
            let at = line.len() - 1;
            assert_eq!(encoded, Err(FrameError::EmbeddedTerminator { at }));
            continue;
        }
        let encoded = encoded.expect("a decoded line can be encoded");
        assert_eq!(encoded, [line.as_slice(), ending.terminator()].concat());
        let mut fresh = codec.clone();
        fresh.reset();
        let again = run(&mut fresh, vec![IoBuf::from(encoded)], false);
        assert_eq!(again, [Ok(line.clone())], "re-encoded line reads back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random inputs, biased towards the bytes the codecs care about.
    fn inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut rng = Rng::new(seed);
        (0..count).map(move |_| {
            let len = rng.below(300);
            (0..len)
                .map(|i| match (i, rng.below(6)) {
                    (0..6, _) => rng.next() as u8,
                    (_, 0) => b'\r',
                    (_, 1) => b'\n',
                    (_, 2) => rng.below(4) as u8,
                    _ => rng.next() as u8,
                })
                .collect()
        })
    }

    #[test]
    fn random_inputs_pass_the_length_field_checks() {
        for (i, mut data) in inputs(1, 3000).enumerate() {
            if data.len() > 3 {
                data[2] = (i % 64) as u8; // small maximums, often exceeded
                data[3] = 0;
            }
            check_length_field(&data);
        }
    }

    #[test]
    fn random_inputs_pass_the_line_checks() {
        for data in inputs(2, 3000) {
            check_line(&data);
        }
    }

    #[test]
    fn model_line_decoder_examples() {
        let ok = |l: &[u8]| Ok(l.to_vec());
        let long = |max: u64| Err(FrameError::TooLong { len: max + 1, max });
        let model = model_line(LineEnding::Crlf, 4, b"ab\r\nabcd\r\nx\r\n\r\nabc\r");
        assert_eq!(model, [ok(b"ab"), long(4), ok(b"x"), ok(b""), long(4)]);
        let model = model_line(LineEnding::Lf, 3, b"a\r\nabc\nz");
        let truncated = Err(FrameError::Truncated { buffered: 1 });
        assert_eq!(model, [ok(b"a"), long(3), truncated]);
    }
}
