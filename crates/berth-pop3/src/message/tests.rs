//! The streaming encoder and the size counter against a line-at-a-time
//! reference (the conversion as it was written before streaming), over
//! every way of cutting the input and the output.

use super::*;

/// Splits a raw message into lines, without their line endings: a line
/// ends at LF, one CR directly before the LF is part of the line ending,
/// and a final segment without LF is a line if it is non-empty.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let line = &rest[..lf];
                rest = &rest[lf + 1..];
                Some(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Reference: the whole message as a multi-line response body.
fn reference_message(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines(raw) {
        push_line(&mut out, line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Reference: the header, the blank line and `body_lines` body lines.
fn reference_top(raw: &[u8], body_lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_header = true;
    let mut remaining = body_lines;
    for line in lines(raw) {
        if in_header {
            in_header = !line.is_empty();
        } else if remaining == 0 {
            break;
        } else {
            remaining -= 1;
        }
        push_line(&mut out, line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Encodes `raw` with `encoder`, feeding it `piece` octets at a time into
/// outputs of at most `limit` octets each (flushed when full).
fn encode_in_pieces(mut encoder: WireEncoder, raw: &[u8], piece: usize, limit: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() && !encoder.is_stopped() {
        let input = &rest[..piece.min(rest.len())];
        let used = encoder.encode(input, &mut out, limit);
        assert!(out.len() <= limit, "output past its limit");
        rest = &rest[used..];
        if used < input.len() && !encoder.is_stopped() {
            assert!(
                limit - out.len() < WireEncoder::MIN_ROOM,
                "stalled with room"
            );
            wire.append(&mut out);
        }
    }
    let final_len = encoder.final_len();
    encoder.finish(&mut out);
    wire.append(&mut out);
    if encoder.top.is_none() {
        assert_eq!(unstuff(&wire).unwrap().len() as u64, sizes_of(raw).wire);
        assert_eq!(final_len, sizes_of(raw).wire, "counted while encoding");
    }
    wire
}

fn message(raw: &[u8]) -> Vec<u8> {
    encode_in_pieces(WireEncoder::message(), raw, usize::MAX, usize::MAX)
}

fn top(raw: &[u8], n: usize) -> Vec<u8> {
    encode_in_pieces(WireEncoder::top(n), raw, usize::MAX, usize::MAX)
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
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

/// Messages made mostly of the octets that matter: CR, LF and `.`.
fn awkward_message(rng: &mut Rng, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"\r\n..\r\n\nab: ";
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

#[test]
fn converts_line_endings_and_stuffs_dots() {
    let raw = b"A: b\n\r\n.hidden\r\n..two\n.\nlast";
    let wire = message(raw);
    assert_eq!(
        wire,
        b"A: b\r\n\r\n..hidden\r\n...two\r\n..\r\nlast\r\n.\r\n".to_vec()
    );
    let canonical = b"A: b\r\n\r\n.hidden\r\n..two\r\n.\r\nlast\r\n";
    assert_eq!(unstuff(&wire).unwrap(), canonical.to_vec());
    assert_eq!(sizes_of(raw).wire, canonical.len() as u64);
    assert_eq!(sizes_of(raw).raw, raw.len() as u64);
}

#[test]
fn empty_message_is_just_the_terminator() {
    assert_eq!(message(b""), b".\r\n".to_vec());
    assert_eq!(sizes_of(b""), Sizes { raw: 0, wire: 0 });
    assert_eq!(unstuff(b".\r\n").unwrap(), Vec::<u8>::new());
}

#[test]
fn size_counter_agrees_across_chunk_boundaries() {
    let raw = b"a\r\nb\nc\r\r\n\n\r\nd\r";
    let expected = sizes_of(raw);
    for split in 0..=raw.len() {
        let mut counter = SizeCounter::default();
        counter.feed(&raw[..split]);
        counter.feed(&[]);
        counter.feed(&raw[split..]);
        assert_eq!(counter.finish(), expected, "split at {split}");
    }
    let wire = message(raw);
    assert_eq!(unstuff(&wire).unwrap().len() as u64, expected.wire);
    assert_eq!(measure(&raw[..]).unwrap(), expected);
}

#[test]
fn top_sends_header_blank_line_and_n_body_lines() {
    let raw = b"Subject: x\nFrom: y\n\n1\n.2\n3\n";
    assert_eq!(top(raw, 0), b"Subject: x\r\nFrom: y\r\n\r\n.\r\n".to_vec());
    assert_eq!(
        top(raw, 2),
        b"Subject: x\r\nFrom: y\r\n\r\n1\r\n..2\r\n.\r\n".to_vec()
    );
    assert_eq!(top(raw, 99), message(raw));
}

#[test]
fn top_of_a_header_only_message_is_the_whole_message() {
    let raw = b"Subject: x\r\nFrom: y\r\n";
    assert_eq!(top(raw, 0), message(raw));
}

#[test]
fn unstuff_rejects_malformed_bodies() {
    assert!(unstuff(b"abc\r\n").is_none());
    assert!(unstuff(b"abc.\r\n").is_none());
    assert!(unstuff(b".abc\r\n.\r\n").is_none());
    assert!(unstuff(b"a\r\n.\r\nb\r\n.\r\n").is_none());
}

/// The property: however the input is cut and however small the output
/// pieces, the encoder produces exactly what the line-at-a-time reference
/// produces, and counts exactly what the size counter counts.
#[test]
fn pieces_of_any_size_give_the_reference_output() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        let len = rng.below(120);
        let raw = awkward_message(&mut rng, len);
        let expected = reference_message(&raw);
        let n = rng.below(6);
        let expected_top = reference_top(&raw, n);
        for (piece, limit) in [
            (1, WireEncoder::MIN_ROOM),
            (1, usize::MAX),
            (usize::MAX, WireEncoder::MIN_ROOM),
            (1 + rng.below(9), WireEncoder::MIN_ROOM + rng.below(9)),
            (1 + rng.below(40), WireEncoder::MIN_ROOM + rng.below(40)),
        ] {
            let got = encode_in_pieces(WireEncoder::message(), &raw, piece, limit);
            assert_eq!(
                got, expected,
                "round {round}, {raw:?}, piece {piece}, limit {limit}"
            );
            let got = encode_in_pieces(WireEncoder::top(n), &raw, piece, limit);
            assert_eq!(
                got, expected_top,
                "round {round} TOP {n}, {raw:?}, piece {piece}, limit {limit}"
            );
        }
        let mut counter = SizeCounter::default();
        let cut = rng.below(raw.len() + 1);
        counter.feed(&raw[..cut]);
        counter.feed(&raw[cut..]);
        assert_eq!(
            counter.finish().wire,
            unstuff(&expected).unwrap().len() as u64
        );
    }
}

#[test]
fn a_crlf_or_a_dot_split_across_pieces_is_handled() {
    // Every cut of a message whose CR LFs and leading dots meet boundaries.
    let raw = b"a\r\n.b\r\n\r\n.\r\n..\r\nc\r";
    let expected = reference_message(raw);
    for cut in 0..=raw.len() {
        let mut encoder = WireEncoder::message();
        let mut out = Vec::new();
        assert_eq!(encoder.encode(&raw[..cut], &mut out, usize::MAX), cut);
        assert_eq!(
            encoder.encode(&raw[cut..], &mut out, usize::MAX),
            raw.len() - cut
        );
        encoder.finish(&mut out);
        assert_eq!(out, expected, "cut at {cut}");
    }
}
