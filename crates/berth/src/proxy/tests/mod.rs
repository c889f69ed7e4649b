//! Unit tests of the PROXY header parser: one file per version, the
//! split property, and the cross-check against the `ppp` crate.

use super::*;

mod ppp_check;
mod props;
mod v1;
mod v2;

/// Parse `buf`, which must hold a whole header.
fn complete(buf: &[u8]) -> (ProxyHeader, usize) {
    match parse(buf) {
        Ok(Parsed::Complete { header, consumed }) => (header, consumed),
        other => panic!("{buf:?}: expected a header, got {other:?}"),
    }
}

/// Parse `buf`, which must be refused.
fn error(buf: &[u8]) -> ProxyError {
    match parse(buf) {
        Err(e) => e,
        other => panic!("{buf:?}: expected an error, got {other:?}"),
    }
}

/// Parse `buf`, which must be the beginning of a header.
fn incomplete(buf: &[u8]) -> Option<usize> {
    match parse(buf) {
        Ok(Parsed::Incomplete { needed }) => needed,
        other => panic!("{buf:?}: expected Incomplete, got {other:?}"),
    }
}

fn addr(s: &str) -> std::net::SocketAddr {
    s.parse().expect("test address")
}

/// A version 2 header: signature, the two given bytes, the length of
/// `body`, `body`.
fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).expect("short body");
    [
        &super::v2::SIGNATURE[..],
        &[ver_cmd, fam],
        &len.to_be_bytes(),
        body,
    ]
    .concat()
}

/// A TLV.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(value.len()).expect("short value");
    [&[kind][..], &len.to_be_bytes(), value].concat()
}

#[test]
fn empty_input_is_incomplete() {
    assert_eq!(incomplete(b""), None);
}

#[test]
fn a_first_byte_that_starts_no_signature_is_refused_at_once() {
    for (input, byte) in [
        (&b"GET / HTTP/1.1\r\n"[..], b'G'),
        (b"\x16\x03\x01", 0x16), // a TLS handshake
        (b"\n", b'\n'),
        (b"p", b'p'),
        (b"\0", 0),
    ] {
        assert_eq!(error(input), ProxyError::NotProxy { byte });
    }
}

#[test]
fn the_first_byte_picks_the_version() {
    assert_eq!(incomplete(b"P"), None);
    assert_eq!(incomplete(b"\r"), Some(15));
    assert_eq!(error(b"PROXX"), ProxyError::BadSignature { at: 4 });
    assert_eq!(error(b"\r\n\r\n\x01"), ProxyError::BadSignature { at: 4 });
}

#[test]
fn the_parser_bound_is_kept_within_the_protocol_limits() {
    assert_eq!(ProxyParser::new().max_header_len(), DEFAULT_MAX_LEN);
    assert_eq!(ProxyParser::default(), ProxyParser::new());
    assert_eq!(ProxyParser::new().max_len(0).max_header_len(), MIN_MAX_LEN);
    assert_eq!(
        ProxyParser::new().max_len(usize::MAX).max_header_len(),
        V2_MAX_LEN
    );
    assert_eq!(ProxyParser::new().max_len(1000).max_header_len(), 1000);
}

#[test]
fn version_numbers() {
    assert_eq!(Version::V1.number(), 1);
    assert_eq!(Version::V2.number(), 2);
}

#[test]
fn errors_are_send_sync_and_display() {
    fn send_sync<T: Send + Sync + std::error::Error + 'static>() {}
    send_sync::<ProxyError>();
    let e = ProxyError::MalformedTlv { at: 28 };
    assert_eq!(e.to_string(), "malformed TLV in PROXY header at byte 28");
}
