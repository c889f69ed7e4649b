//! Invariant checks for the PROXY header parser, shared by the fuzz target
//! `fuzz/fuzz_targets/proxy.rs` and the corpus test
//! (`tests/proxy_corpus.rs`). Not a stable API.
//!
//! The input is the start of a connection, used as is. [`check_proxy`]
//! parses it with three bounds on version 2 headers and, for each, every
//! prefix of it, as if the bytes had arrived in pieces; it checks that the
//! answers agree, that a whole header is what its bytes say, and that it
//! reads back when written again. It panics when an invariant does not
//! hold.

use std::net::SocketAddr;

use super::v2::SIGNATURE;
use super::{
    Command, MIN_MAX_LEN, Parsed, ProxyError, ProxyHeader, ProxyParser, Transport, V1_MAX_LEN,
    V2_MAX_LEN, Version,
};

type Answer = Result<Parsed, ProxyError>;

/// Fuzz check for the PROXY header parser; `data` is the received stream.
pub fn check_proxy(data: &[u8]) {
    let small = check_prefixes(ProxyParser::new().max_len(MIN_MAX_LEN), data);
    let default = check_prefixes(ProxyParser::new(), data);
    let large = check_prefixes(ProxyParser::new().max_len(V2_MAX_LEN), data);
    check_bounds(MIN_MAX_LEN, &small, &default);
    check_bounds(ProxyParser::new().max_header_len(), &default, &large);
}

/// Parse every prefix of `data` (after the final answer, only a few more):
/// answers are `Incomplete` until one final answer that never changes.
/// Returns the answer for the whole of `data`.
fn check_prefixes(parser: ProxyParser, data: &[u8]) -> Answer {
    // No prefix shorter than this may be a whole header (from `needed`
    // hints, which say nothing of errors).
    let mut incomplete_until = 0;
    let mut last = None;
    for k in 0..=data.len() {
        let answer = parser.parse(&data[..k]);
        match (&answer, &last) {
            (Ok(Parsed::Incomplete { needed }), None) => {
                if let Some(needed) = *needed {
                    assert!(needed > 0, "Incomplete needs 0 bytes");
                    incomplete_until = incomplete_until.max(k + needed);
                }
            }
            (_, None) => {
                if matches!(answer, Ok(Parsed::Complete { .. })) {
                    assert!(k >= incomplete_until, "complete before the `needed` hint");
                }
                check_final(parser, &data[..k], &answer);
                last = Some((k, answer));
            }
            (_, Some((at, first))) => {
                assert_eq!(&answer, first, "prefix {k} differs from prefix {at}");
                if k > at + 8 {
                    break;
                }
            }
        }
    }
    let whole = parser.parse(data);
    if let Some((_, first)) = &last {
        assert_eq!(&whole, first, "the whole input differs from its prefix");
    }
    whole
}

/// Check the first final answer, for `data` (the shortest prefix that
/// gives it).
fn check_final(parser: ProxyParser, data: &[u8], answer: &Answer) {
    match answer {
        Ok(Parsed::Incomplete { .. }) => unreachable!("not final"),
        Ok(Parsed::Complete { header, consumed }) => {
            assert_eq!(*consumed, data.len(), "complete before its last byte");
            check_header(parser, &data[..*consumed], header);
        }
        Err(e) => check_error(parser, data, e),
    }
}

/// An error is raised by the last byte of `data`, the shortest prefix
/// that gives it, and points inside it.
fn check_error(parser: ProxyParser, data: &[u8], e: &ProxyError) {
    let at = match *e {
        ProxyError::NotProxy { byte } => {
            assert_eq!(data, [byte]);
            return;
        }
        ProxyError::TooLong { max } => {
            match data[0] {
                b'P' => assert_eq!((max, data.len()), (V1_MAX_LEN, V1_MAX_LEN)),
                _ => assert_eq!((max, data.len()), (parser.max_header_len(), 16)),
            }
            return;
        }
        ProxyError::UnsupportedVersion { .. } | ProxyError::BadCommand { .. } => 12,
        ProxyError::AddressBlockTooShort { len, needed } => {
            assert!(len < needed && data.len() == 16);
            return;
        }
        ProxyError::BadSignature { at }
        | ProxyError::BadFamily { at }
        | ProxyError::BadAddress { at }
        | ProxyError::BadPort { at }
        | ProxyError::MalformedLine { at }
        | ProxyError::MalformedTlv { at } => at,
    };
    assert!(
        at < data.len(),
        "{e:?} points past the input ({})",
        data.len()
    );
}

/// A complete header: consistent, and what its bytes say.
fn check_header(parser: ProxyParser, bytes: &[u8], header: &ProxyHeader) {
    let tcp = matches!(header.transport(), Transport::Tcp4 | Transport::Tcp6);
    let has_addresses = header.command() == Command::Proxy && tcp;
    assert_eq!(header.source().is_some(), has_addresses);
    assert_eq!(header.destination().is_some(), has_addresses);
    if let (Some(src), Some(dst)) = (header.source(), header.destination()) {
        let v4 = header.transport() == Transport::Tcp4;
        assert!(
            src.is_ipv4() == v4 && dst.is_ipv4() == v4,
            "family mismatch"
        );
    }
    let walked: Vec<u8> = header
        .tlvs()
        .flat_map(|t| {
            let len = u16::try_from(t.value.len()).expect("TLV length fits");
            [&[t.kind][..], &len.to_be_bytes(), t.value].concat()
        })
        .collect();
    assert_eq!(
        walked,
        header.tlv_bytes(),
        "TLVs do not cover the TLV bytes"
    );
    if let Some(first) = header.tlvs().next() {
        assert_eq!(header.tlv(first.kind), Some(first.value));
    }
    match header.version() {
        Version::V1 => {
            assert!(bytes.len() <= V1_MAX_LEN && bytes.starts_with(b"PROXY "));
            assert!(bytes.ends_with(b"\r\n") && header.tlv_bytes().is_empty());
            assert_eq!(header.command(), Command::Proxy);
            if let (Some(src), Some(dst)) = (header.source(), header.destination()) {
                let line = v1_line(header.transport(), src, dst);
                if header.transport() == Transport::Tcp4 {
                    // Only one way to write an IPv4 line.
                    assert_eq!(line, bytes, "the IPv4 line differs when written again");
                }
                reads_back(parser, &line, header);
            }
        }
        Version::V2 => {
            assert!(bytes.len() <= parser.max_header_len() && bytes.starts_with(&SIGNATURE));
            let len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
            assert_eq!(bytes.len(), 16 + len);
            assert!(bytes.ends_with(header.tlv_bytes()));
            if let (Some(src), Some(dst)) = (header.source(), header.destination()) {
                let again = v2_block(bytes[12], bytes[13], src, dst, header.tlv_bytes());
                assert_eq!(again, bytes, "the header differs when written again");
            }
        }
    }
}

/// `bytes`, parsed on their own, give `header`.
fn reads_back(parser: ProxyParser, bytes: &[u8], header: &ProxyHeader) {
    let consumed = bytes.len();
    let again = parser.parse(bytes);
    let want = Parsed::Complete {
        header: header.clone(),
        consumed,
    };
    assert_eq!(
        again,
        Ok(want),
        "written again, the header reads differently"
    );
}

/// A version 1 TCP line.
fn v1_line(transport: Transport, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let word = if transport == Transport::Tcp4 {
        "TCP4"
    } else {
        "TCP6"
    };
    let (s, d) = (src.ip(), dst.ip());
    let (sp, dp) = (src.port(), dst.port());
    format!("PROXY {word} {s} {d} {sp} {dp}\r\n").into_bytes()
}

/// A version 2 header with TCP addresses.
fn v2_block(ver_cmd: u8, fam: u8, src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for addr in [src, dst] {
        match addr {
            SocketAddr::V4(a) => body.extend_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => body.extend_from_slice(&a.ip().octets()),
        }
    }
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    let len = u16::try_from(body.len()).expect("header fits");
    [&SIGNATURE[..], &[ver_cmd, fam], &len.to_be_bytes(), &body].concat()
}

/// The answers of a parser with bound `small` and one with a larger bound
/// agree, except where the larger header is over `small`.
fn check_bounds(small: usize, with_small: &Answer, with_large: &Answer) {
    let too_long = Err(ProxyError::TooLong { max: small });
    match with_large {
        Ok(Parsed::Complete { consumed, .. }) if *consumed > small => {
            assert_eq!(with_small, &too_long);
        }
        Ok(Parsed::Complete { .. }) => assert_eq!(with_small, with_large),
        _ => assert!(with_small == with_large || with_small == &too_long),
    }
}
