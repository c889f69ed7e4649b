//! Property tests: a header split at any byte gives `Incomplete` until it
//! is whole, then the same answer as read at once; arbitrary and mutated
//! input never panics and passes the fuzz checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::proxy::fuzzing::check_proxy;

/// A valid header, and what parsing it must give.
#[derive(Debug, Clone)]
pub(super) struct Valid {
    pub bytes: Vec<u8>,
    pub version: Version,
    pub command: Command,
    pub transport: Transport,
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// How to write an IPv6 address in a version 1 line.
#[derive(Debug, Clone, Copy)]
enum V6Text {
    Display,
    Full,
    FullUpper,
}

fn v6_text(ip: Ipv6Addr, how: V6Text) -> String {
    let full = || {
        let groups: Vec<String> = ip.segments().iter().map(|s| format!("{s:04x}")).collect();
        groups.join(":")
    };
    match how {
        V6Text::Display => ip.to_string(),
        V6Text::Full => full(),
        V6Text::FullUpper => full().to_uppercase(),
    }
}

fn v6_text_strategy() -> impl Strategy<Value = V6Text> {
    prop_oneof![
        Just(V6Text::Display),
        Just(V6Text::Full),
        Just(V6Text::FullUpper)
    ]
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<[u16; 8]>().prop_map(Ipv6Addr::from),
        // Runs of zeros, so that `::` appears.
        (any::<u16>(), 0usize..8).prop_map(|(s, at)| {
            let mut segments = [0u16; 8];
            segments[at] = s;
            Ipv6Addr::from(segments)
        }),
    ]
}

fn v1_tcp4() -> impl Strategy<Value = Valid> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(s, d, sp, dp)| {
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            Valid {
                bytes: format!("PROXY TCP4 {s} {d} {sp} {dp}\r\n").into_bytes(),
                version: Version::V1,
                command: Command::Proxy,
                transport: Transport::Tcp4,
                addresses: Some((SocketAddr::new(s.into(), sp), SocketAddr::new(d.into(), dp))),
                tlvs: vec![],
            }
        })
}

fn v1_tcp6() -> impl Strategy<Value = Valid> {
    (
        ipv6(),
        ipv6(),
        any::<u16>(),
        any::<u16>(),
        v6_text_strategy(),
    )
        .prop_map(|(s, d, sp, dp, how)| {
            let (st, dt) = (v6_text(s, how), v6_text(d, how));
            Valid {
                bytes: format!("PROXY TCP6 {st} {dt} {sp} {dp}\r\n").into_bytes(),
                version: Version::V1,
                command: Command::Proxy,
                transport: Transport::Tcp6,
                addresses: Some((SocketAddr::new(s.into(), sp), SocketAddr::new(d.into(), dp))),
                tlvs: vec![],
            }
        })
}

fn v1_unknown() -> impl Strategy<Value = Valid> {
    // Up to the longest line: 107 - "PROXY UNKNOWN " - CRLF.
    proptest::option::of("[ -~]{0,91}").prop_map(|rest| {
        let line = match rest {
            Some(rest) => format!("PROXY UNKNOWN {rest}\r\n"),
            None => "PROXY UNKNOWN\r\n".to_string(),
        };
        Valid {
            bytes: line.into_bytes(),
            version: Version::V1,
            command: Command::Proxy,
            transport: Transport::Unspec,
            addresses: None,
            tlvs: vec![],
        }
    })
}

fn tlvs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)),
        0..5,
    )
}

fn encode_tlvs(tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    tlvs.iter().flat_map(|(k, v)| tlv(*k, v)).collect()
}

/// A version 2 header with TCP or UDP addresses.
fn v2_inet() -> impl Strategy<Value = Valid> {
    let ips = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
        (ipv6(), ipv6()).prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
    ];
    (
        ips,
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
        tlvs(),
    )
        .prop_map(|((s, d), sp, dp, local, udp, tlvs)| {
            let mut body = Vec::new();
            for ip in [s, d] {
                match ip {
                    IpAddr::V4(ip) => body.extend_from_slice(&ip.octets()),
                    IpAddr::V6(ip) => body.extend_from_slice(&ip.octets()),
                }
            }
            body.extend_from_slice(&sp.to_be_bytes());
            body.extend_from_slice(&dp.to_be_bytes());
            body.extend(encode_tlvs(&tlvs));
            let family = if s.is_ipv4() { 0x10 } else { 0x20 };
            let fam = family | if udp { 0x02 } else { 0x01 };
            let transport = match (s.is_ipv4(), udp) {
                (true, false) => Transport::Tcp4,
                (false, false) => Transport::Tcp6,
                (true, true) => Transport::Udp4,
                (false, true) => Transport::Udp6,
            };
            let command = if local {
                Command::Local
            } else {
                Command::Proxy
            };
            let ver_cmd = if local { 0x20 } else { 0x21 };
            let addresses =
                (!local && !udp).then_some((SocketAddr::new(s, sp), SocketAddr::new(d, dp)));
            Valid {
                bytes: v2(ver_cmd, fam, &body),
                version: Version::V2,
                command,
                transport,
                addresses,
                tlvs,
            }
        })
}

/// A version 2 header of the UNSPEC family or a UNIX socket.
fn v2_other() -> impl Strategy<Value = Valid> {
    (
        any::<bool>(),
        0u8..3,
        prop::collection::vec(any::<u8>(), 0..64),
        tlvs(),
    )
        .prop_map(|(local, kind, unspec_info, tlvs)| {
            let command = if local {
                Command::Local
            } else {
                Command::Proxy
            };
            let ver_cmd = if local { 0x20 } else { 0x21 };
            let (fam, body, transport, tlvs) = match kind {
                0 => (0x00, unspec_info, Transport::Unspec, vec![]),
                1 => {
                    let body = [vec![b'a'; 216], encode_tlvs(&tlvs)].concat();
                    (0x31, body, Transport::UnixStream, tlvs)
                }
                _ => {
                    let body = [vec![0; 216], encode_tlvs(&tlvs)].concat();
                    (0x32, body, Transport::UnixDgram, tlvs)
                }
            };
            Valid {
                bytes: v2(ver_cmd, fam, &body),
                version: Version::V2,
                command,
                transport,
                addresses: None,
                tlvs,
            }
        })
}

/// Any valid header.
pub(super) fn valid() -> impl Strategy<Value = Valid> {
    prop_oneof![v1_tcp4(), v1_tcp6(), v1_unknown(), v2_inet(), v2_other()]
}

/// The header parsed whole matches what was written.
fn assert_matches(valid: &Valid, header: &ProxyHeader) {
    assert_eq!(header.version(), valid.version);
    assert_eq!(header.command(), valid.command);
    assert_eq!(header.transport(), valid.transport);
    assert_eq!(header.source(), valid.addresses.map(|a| a.0));
    assert_eq!(header.destination(), valid.addresses.map(|a| a.1));
    let tlvs: Vec<(u8, Vec<u8>)> = header.tlvs().map(|t| (t.kind, t.value.to_vec())).collect();
    assert_eq!(tlvs, valid.tlvs);
}

/// A byte-level change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i.index(1 << 16), b)),
        (at.clone(), 1u8..).prop_map(|(i, b)| Mutation::Xor(i.index(1 << 16), b)),
        (at.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i.index(1 << 16), b)),
        at.clone().prop_map(|i| Mutation::Remove(i.index(1 << 16))),
        at.prop_map(|i| Mutation::Truncate(i.index(1 << 16))),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match *m {
            Mutation::Set(i, b) => bytes[i % n] = b,
            Mutation::Xor(i, b) => bytes[i % n] ^= b,
            Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Mutation::Remove(i) => {
                bytes.remove(i % n);
            }
            Mutation::Truncate(i) => bytes.truncate(i % n),
        }
    }
    bytes
}

pub(super) fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (valid(), prop::collection::vec(mutation(), 1..4)).prop_map(|(v, ms)| mutate(v.bytes, &ms))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_header_split_anywhere_reads_the_same(
        valid in valid(),
        trailing in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let header_len = valid.bytes.len();
        let input = [valid.bytes.clone(), trailing].concat();
        // Every prefix short of the whole header: Incomplete.
        for k in 0..header_len {
            let answer = parse(&input[..k]);
            prop_assert!(
                matches!(answer, Ok(Parsed::Incomplete { .. })),
                "prefix {} of {}: {:?}", k, header_len, answer
            );
        }
        // From there on, whatever follows: the same header.
        let whole = parse(&input[..header_len]);
        let Ok(Parsed::Complete { header, consumed }) = &whole else {
            panic!("a valid header is refused: {whole:?}");
        };
        prop_assert_eq!(*consumed, header_len);
        assert_matches(&valid, header);
        for k in header_len..=input.len() {
            prop_assert_eq!(&parse(&input[..k]), &whole);
        }
        check_proxy(&input);
    }

    #[test]
    fn a_header_fed_in_chunks_is_assembled(
        valid in valid(),
        sizes in prop::collection::vec(1usize..20, 1..8),
    ) {
        // The caller's loop: append a read, parse what it has.
        let mut pending = Vec::new();
        let mut rest = &valid.bytes[..];
        let mut result = None;
        for &n in sizes.iter().cycle() {
            let (read, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            pending.extend_from_slice(read);
            match parse(&pending) {
                Ok(Parsed::Incomplete { .. }) => prop_assert!(!rest.is_empty() || read.is_empty()),
                Ok(Parsed::Complete { header, consumed }) => {
                    prop_assert!(rest.is_empty());
                    result = Some((header, consumed));
                    break;
                }
                Err(e) => panic!("a valid header is refused in pieces: {e:?}"),
            }
        }
        let (header, consumed) = result.expect("complete");
        prop_assert_eq!(consumed, valid.bytes.len());
        assert_matches(&valid, &header);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_proxy(&bytes);
    }

    #[test]
    fn random_bytes_after_a_signature_never_panic(
        v2_sig in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let start: &[u8] = if v2_sig { &crate::proxy::v2::SIGNATURE } else { b"PROXY " };
        check_proxy(&[start, &bytes].concat());
    }

    #[test]
    fn mutated_headers_pass_the_fuzz_checks(bytes in mutated()) {
        check_proxy(&bytes);
    }
}
