use super::*;
use crate::buffer::BufPool;

fn input(parts: &[&[u8]]) -> InBuf {
    let mut src = InBuf::new();
    for p in parts {
        src.push(IoBuf::from(*p));
    }
    src
}

/// Push `parts` one at a time, decoding after each; stops at the first error.
fn feed(codec: &mut LengthFieldCodec, parts: &[&[u8]]) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut src = InBuf::new();
    let mut out = Vec::new();
    for p in parts {
        src.push(IoBuf::from(*p));
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => out.push(Ok(frame.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

fn encode(codec: &mut LengthFieldCodec, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut dst = EncodeBuf::new(BufPool::new(64, 8));
    let res = codec.encode(payload, &mut dst);
    let bytes: Vec<u8> = dst.take().iter().flat_map(|b| b.to_vec()).collect();
    res.map(|()| bytes.clone()).inspect_err(|_| {
        assert!(bytes.is_empty(), "nothing written on error");
    })
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

#[test]
fn every_width_and_byte_order() {
    use Endian::{Big, Little};
    use LengthWidth::*;
    let long = vec![b'x'; 0x0102];
    let cases: [(LengthWidth, Endian, &[u8], &[u8]); 8] = [
        (U8, Big, b"\x05", b"hello"),
        (U8, Little, b"\x05", b"hello"),
        (U16, Big, b"\x01\x02", &long),
        (U16, Little, b"\x02\x01", &long),
        (U32, Big, b"\x00\x00\x01\x02", &long),
        (U32, Little, b"\x02\x01\x00\x00", &long),
        (U64, Big, b"\0\0\0\0\0\0\x01\x02", &long),
        (U64, Little, b"\x02\x01\0\0\0\0\0\0", &long),
    ];
    for (width, endian, header, payload) in cases {
        let mut codec = LengthFieldCodec::builder()
            .width(width)
            .endian(endian)
            .build();
        assert_eq!(codec.header_len(), header.len());
        let frame = cat(header, payload);
        assert_eq!(
            encode(&mut codec, payload).unwrap(),
            frame,
            "{width:?} {endian:?}"
        );
        let two = cat(&frame, &frame);
        assert_eq!(
            feed(&mut codec, &[&two]),
            [Ok(frame.clone()), Ok(frame.clone())],
            "{width:?} {endian:?}"
        );
    }
}

#[test]
fn defaults() {
    let codec = LengthFieldCodec::new();
    assert_eq!(codec, LengthFieldCodec::builder().build());
    assert_eq!(codec.header_len(), 4);
    assert_eq!(codec.max_frame_length(), 8 << 20);
    assert!(!codec.strips_header());
    let mut codec = codec;
    assert_eq!(encode(&mut codec, b"ab").unwrap(), b"\0\0\0\x02ab");
}

#[test]
fn length_including_the_header() {
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U16)
        .length_includes_header()
        .build();
    assert_eq!(encode(&mut codec, b"hello").unwrap(), b"\x00\x07hello");
    assert_eq!(
        feed(&mut codec, &[b"\x00\x07hel", b"lo\x00\x02"]),
        [Ok(b"\x00\x07hello".to_vec()), Ok(b"\x00\x02".to_vec())]
    );
    let mut codec = LengthFieldCodec::builder()
        .length_includes_header()
        .length_excludes_header()
        .width(LengthWidth::U16)
        .build();
    assert_eq!(encode(&mut codec, b"hello").unwrap(), b"\x00\x05hello");
}

#[test]
fn packet_echo_protocol() {
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U8)
        .length_includes_header()
        .max_frame_length(255)
        .build();
    // A header of 1 is an empty packet; 255 is the largest.
    let big = cat(b"\xff", &[7u8; 254]);
    assert_eq!(
        feed(&mut codec, &[b"\x01\x03ab", &big]),
        [
            Ok(b"\x01".to_vec()),
            Ok(b"\x03ab".to_vec()),
            Ok(big.clone())
        ]
    );
    assert_eq!(encode(&mut codec, &big[1..]).unwrap(), big);
    assert_eq!(
        encode(&mut codec, &[0u8; 255]),
        Err(FrameError::TooLong { len: 256, max: 255 })
    );
    // A header of 0 is shorter than itself.
    assert_eq!(
        feed(&mut codec, &[b"\x02a\x00"]),
        [
            Ok(b"\x02a".to_vec()),
            Err(FrameError::LengthBelowHeader { len: 0, header: 1 })
        ]
    );
}

#[test]
fn positive_adjustment_counts_a_trailer() {
    // The field counts the payload but not a 2-byte trailer.
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U16)
        .length_adjustment(2)
        .strip_header()
        .build();
    assert_eq!(
        feed(&mut codec, &[b"\x00\x03abcXY\x00\x00Z", b"Z"]),
        [Ok(b"abcXY".to_vec()), Ok(b"ZZ".to_vec())]
    );
    // Encoding takes the payload with its trailer.
    assert_eq!(encode(&mut codec, b"abcXY").unwrap(), b"\x00\x03abcXY");
    assert_eq!(
        encode(&mut codec, b"X"),
        Err(FrameError::FieldOverflow {
            value: -1,
            width: 2
        })
    );
}

#[test]
fn negative_adjustment() {
    // The field counts the header plus 3 bytes that are not sent.
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U8)
        .length_includes_header()
        .length_adjustment(-3)
        .build();
    assert_eq!(encode(&mut codec, b"ab").unwrap(), b"\x06ab");
    assert_eq!(
        feed(&mut codec, &[b"\x06ab\x04", b"\x03"]),
        [
            Ok(b"\x06ab".to_vec()),
            Ok(b"\x04".to_vec()),
            Err(FrameError::LengthBelowHeader { len: 0, header: 1 })
        ]
    );
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U16)
        .length_adjustment(-10)
        .build();
    assert_eq!(
        feed(&mut codec, &[b"\x00\x03abc"]),
        [Err(FrameError::LengthBelowHeader { len: -5, header: 2 })]
    );
}

#[test]
fn max_frame_length_is_checked_as_soon_as_the_header_arrives() {
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U16)
        .max_frame_length(6)
        .build();
    assert_eq!(
        feed(&mut codec, &[b"\x00\x04abcd\x00\x05"]),
        [
            Ok(b"\x00\x04abcd".to_vec()),
            Err(FrameError::TooLong { len: 7, max: 6 })
        ]
    );
    assert_eq!(
        encode(&mut codec, b"abcde"),
        Err(FrameError::TooLong { len: 7, max: 6 })
    );
    // The largest 8-byte field, with an adjustment, cannot overflow.
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U64)
        .length_adjustment(i64::MAX)
        .build();
    assert_eq!(
        feed(&mut codec, &[&[0xff; 8]]),
        [Err(FrameError::TooLong {
            len: u64::MAX,
            max: 8 << 20
        })]
    );
}

#[test]
fn errors_are_sticky() {
    let mut codec = LengthFieldCodec::builder().width(LengthWidth::U8).build();
    codec.max_frame = 3;
    let mut src = input(&[b"\x05abcde"]);
    let err = FrameError::TooLong { len: 6, max: 3 };
    assert_eq!(codec.decode(&mut src), Err(err.clone()));
    assert_eq!(codec.decode(&mut src), Err(err));
    assert_eq!(src.len(), 6, "input left in place");
}

#[test]
fn strip_header_or_keep_it() {
    let frame: &[u8] = b"\x00\x00\x00\x03abc\x00\x00\x00\x00";
    let mut keep = LengthFieldCodec::builder()
        .strip_header()
        .keep_header()
        .build();
    assert_eq!(
        feed(&mut keep, &[frame]),
        [Ok(frame[..7].to_vec()), Ok(frame[7..].to_vec())]
    );
    let mut strip = LengthFieldCodec::builder().strip_header().build();
    assert!(strip.strips_header());
    assert_eq!(
        feed(&mut strip, &[frame]),
        [Ok(b"abc".to_vec()), Ok(Vec::new())]
    );
}

#[test]
fn waits_for_whole_header_and_payload() {
    let mut codec = LengthFieldCodec::builder()
        .width(LengthWidth::U32)
        .strip_header()
        .build();
    let parts: [&[u8]; 6] = [
        b"\x00",
        b"\x00\x00",
        b"\x02",
        b"a",
        b"b\x00\x00\x00",
        b"\x01c",
    ];
    assert_eq!(
        feed(&mut codec, &parts),
        [Ok(b"ab".to_vec()), Ok(b"c".to_vec())]
    );
}

#[test]
fn frames_within_a_chunk_are_not_copied() {
    let pool = BufPool::new(64, 4);
    let mut codec = LengthFieldCodec::builder().width(LengthWidth::U8).build();
    let mut src = InBuf::new();
    let mut chunk = pool.alloc();
    chunk.extend_from_slice(b"\x02ab\x03cd");
    let chunk = chunk.freeze();
    let base = chunk.as_ptr();
    src.push(chunk);
    let frame = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(frame.as_ptr(), base);
    assert_eq!(codec.decode(&mut src), Ok(None));
    // The rest of the frame arrives in another chunk: assembled by copying.
    src.push(IoBuf::from(&b"e"[..]));
    let frame2 = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(&*frame2, b"\x03cde");
    assert!(src.is_empty());
}

#[test]
fn decode_eof() {
    let mut codec = LengthFieldCodec::builder().width(LengthWidth::U8).build();
    let mut src = input(&[b"\x01a\x05ab"]);
    assert_eq!(
        codec.decode_eof(&mut src).unwrap().as_deref(),
        Some(&b"\x01a"[..])
    );
    assert_eq!(
        codec.decode_eof(&mut src),
        Err(FrameError::Truncated { buffered: 3 })
    );
    src.clear();
    assert_eq!(codec.decode_eof(&mut src), Ok(None));
}

#[test]
fn encoder_queues_large_payloads_without_copy() {
    let mut codec = LengthFieldCodec::builder().width(LengthWidth::U16).build();
    let payload = IoBuf::from(vec![9u8; 1000]);
    let mut dst = EncodeBuf::new(BufPool::new(4096, 4));
    codec.encode(payload.clone(), &mut dst).unwrap();
    let out = dst.take();
    assert_eq!(out.len(), 2);
    assert_eq!(&*out[0], b"\x03\xe8");
    assert_eq!(out[1].as_ptr(), payload.as_ptr());
    assert_eq!(
        codec.encode(IoBuf::from(vec![0u8; 70_000]), &mut dst),
        Err(FrameError::FieldOverflow {
            value: 70_000,
            width: 2
        })
    );
    assert!(dst.is_empty());
}

#[test]
fn whole_frame_len_agrees_with_decode() {
    let codec = LengthFieldCodec::builder()
        .width(LengthWidth::U16)
        .length_adjustment(1)
        .max_frame_length(10)
        .build();
    // Field 2, plus the adjustment and the 2-byte header: 5 bytes.
    assert_eq!(codec.whole_frame_len(b"\x00\x02abcXYZ"), Some(5));
    assert_eq!(codec.whole_frame_len(b"\x00\x02abc"), Some(5));
    // Not all there yet, or not even the header.
    assert_eq!(codec.whole_frame_len(b"\x00\x02ab"), None);
    assert_eq!(codec.whole_frame_len(b"\x00"), None);
    assert_eq!(codec.whole_frame_len(b""), None);
    // Errors are left for decode to report.
    assert_eq!(
        codec.whole_frame_len(b"\x00\x20abcdefghijklmnopqrstuvwxyz0123456789"),
        None
    );
    let packet = LengthFieldCodec::builder()
        .width(LengthWidth::U8)
        .length_includes_header()
        .build();
    assert_eq!(packet.whole_frame_len(b"\x03ab\x01"), Some(3));
    assert_eq!(packet.whole_frame_len(b"\x01"), Some(1));
    assert_eq!(packet.whole_frame_len(b"\x00ab"), None);
    // A stripped header makes the item differ from its bytes: no runs.
    let stripped = LengthFieldCodec::builder().strip_header().build();
    assert_eq!(stripped.whole_frame_len(b"\x00\x00\x00\x01a"), None);
    // Where it answers, decode cuts the same frame.
    let mut c = codec.clone();
    let mut src = input(&[b"\x00\x02abcXY"]);
    assert_eq!(c.decode(&mut src).unwrap().unwrap().len(), 5);
}
