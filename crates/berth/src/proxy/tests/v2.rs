//! Version 2: the binary block, rule by rule.

use super::*;

/// An IPv4 address block: 192.0.2.1:56324 -> 198.51.100.7:443.
fn inet_block() -> Vec<u8> {
    [
        &[192, 0, 2, 1][..],
        &[198, 51, 100, 7],
        &56324u16.to_be_bytes(),
        &443u16.to_be_bytes(),
    ]
    .concat()
}

/// An IPv6 address block: [2001:db8::1]:1234 -> [::1]:80.
fn inet6_block() -> Vec<u8> {
    let src: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst = std::net::Ipv6Addr::LOCALHOST;
    [
        &src.octets()[..],
        &dst.octets(),
        &1234u16.to_be_bytes(),
        &80u16.to_be_bytes(),
    ]
    .concat()
}

#[test]
fn proxy_tcp4() {
    let input = v2(0x21, 0x11, &inet_block());
    let (h, n) = complete(&input);
    assert_eq!(n, 28);
    assert_eq!(h.version(), Version::V2);
    assert_eq!(h.command(), Command::Proxy);
    assert_eq!(h.transport(), Transport::Tcp4);
    assert_eq!(h.source(), Some(addr("192.0.2.1:56324")));
    assert_eq!(h.destination(), Some(addr("198.51.100.7:443")));
    assert_eq!(h.tlvs().count(), 0);
}

#[test]
fn proxy_tcp4_with_tlvs() {
    let tlvs = [
        tlv(0x02, b"example.com"),
        tlv(0x04, b""),
        tlv(0x05, &[7; 128]),
        tlv(0xE0, b"custom"),
    ]
    .concat();
    let input = v2(0x21, 0x11, &[inet_block(), tlvs.clone()].concat());
    let (h, n) = complete(&[&input[..], b"payload"].concat());
    assert_eq!(n, input.len());
    assert_eq!(h.source(), Some(addr("192.0.2.1:56324")));
    assert_eq!(h.tlv_bytes(), tlvs);
    let got: Vec<(u8, &[u8])> = h.tlvs().map(|t| (t.kind, t.value)).collect();
    let want: Vec<(u8, &[u8])> = vec![
        (0x02, b"example.com"),
        (0x04, b""),
        (0x05, &[7; 128]),
        (0xE0, b"custom"),
    ];
    assert_eq!(got, want);
    assert_eq!(h.tlv(0x02), Some(&b"example.com"[..]));
    assert_eq!(h.tlv(0x03), None);
}

#[test]
fn proxy_tcp6() {
    let input = v2(0x21, 0x21, &inet6_block());
    let (h, n) = complete(&input);
    assert_eq!(n, 52);
    assert_eq!(h.transport(), Transport::Tcp6);
    assert_eq!(h.source(), Some(addr("[2001:db8::1]:1234")));
    assert_eq!(h.destination(), Some(addr("[::1]:80")));
}

#[test]
fn proxy_tcp6_with_tlvs() {
    // An SSL TLV with sub-TLVs is returned whole, uninterpreted.
    let ssl = [&[0x01, 0, 0, 0, 0][..], &tlv(0x21, b"TLSv1.3")].concat();
    let tlvs = [tlv(0x01, b"h2"), tlv(0x20, &ssl)].concat();
    let input = v2(0x21, 0x21, &[inet6_block(), tlvs].concat());
    let (h, n) = complete(&input);
    assert_eq!(n, input.len());
    assert_eq!(h.source(), Some(addr("[2001:db8::1]:1234")));
    assert_eq!(h.tlv(0x01), Some(&b"h2"[..]));
    assert_eq!(h.tlv(0x20), Some(&ssl[..]));
    assert_eq!(h.tlvs().count(), 2);
}

#[test]
fn local_with_no_addresses() {
    let input = v2(0x20, 0x00, b"");
    let (h, n) = complete(&input);
    assert_eq!(n, 16);
    assert_eq!(h.command(), Command::Local);
    assert_eq!(h.transport(), Transport::Unspec);
    assert_eq!((h.source(), h.destination()), (None, None));
}

#[test]
fn local_ignores_the_addresses_it_carries() {
    let tlvs = tlv(0x05, b"id");
    let input = v2(0x20, 0x11, &[inet_block(), tlvs].concat());
    let (h, _) = complete(&input);
    assert_eq!(h.command(), Command::Local);
    assert_eq!(h.transport(), Transport::Tcp4);
    assert_eq!((h.source(), h.destination()), (None, None));
    assert_eq!(h.tlv(0x05), Some(&b"id"[..]));
}

#[test]
fn unspec_ignores_its_address_information() {
    // The length must be honoured even for UNSPEC; the bytes are not TLVs.
    for ver_cmd in [0x20, 0x21] {
        let input = v2(ver_cmd, 0x00, &[0xff; 7]);
        let (h, n) = complete(&input);
        assert_eq!(n, 23);
        assert_eq!(h.transport(), Transport::Unspec);
        assert_eq!(h.source(), None);
        assert!(h.tlv_bytes().is_empty());
    }
}

#[test]
fn udp_and_unix_give_no_addresses() {
    let unix = [[b'/'; 108], [b'x'; 108]].concat();
    for (fam, block, transport) in [
        (0x12, inet_block(), Transport::Udp4),
        (0x22, inet6_block(), Transport::Udp6),
        (0x31, unix.clone(), Transport::UnixStream),
        (0x32, unix, Transport::UnixDgram),
    ] {
        let input = v2(0x21, fam, &[block, tlv(0x01, b"x")].concat());
        let (h, n) = complete(&input);
        assert_eq!(n, input.len());
        assert_eq!(h.transport(), transport);
        assert_eq!((h.source(), h.destination()), (None, None));
        assert_eq!(
            h.tlv(0x01),
            Some(&b"x"[..]),
            "TLVs after the {fam:#x} block"
        );
    }
}

#[test]
fn an_unspec_nibble_gives_unspec_but_keeps_the_family_block() {
    // INET with UNSPEC protocol: the 12-byte block, no addresses.
    let input = v2(0x21, 0x10, &[inet_block(), tlv(0x04, b"")].concat());
    let (h, _) = complete(&input);
    assert_eq!(h.transport(), Transport::Unspec);
    assert_eq!(h.source(), None);
    assert_eq!(h.tlvs().count(), 1);
    // UNSPEC family with STREAM protocol.
    let (h, _) = complete(&v2(0x21, 0x01, b""));
    assert_eq!(h.transport(), Transport::Unspec);
}

#[test]
fn prefixes_are_incomplete_with_a_hint() {
    let input = v2(0x21, 0x11, &[inet_block(), tlv(1, b"abc")].concat());
    assert_eq!(input.len(), 34);
    for k in 1..16 {
        assert_eq!(incomplete(&input[..k]), Some(16 - k), "prefix {k}");
    }
    for k in 16..input.len() {
        assert_eq!(incomplete(&input[..k]), Some(34 - k), "prefix {k}");
    }
    assert_eq!(complete(&input).1, 34);
}

#[test]
fn a_bad_signature_is_refused_at_its_first_wrong_byte() {
    let mut input = v2(0x21, 0x11, &inet_block());
    for at in 1..12 {
        let saved = input[at];
        input[at] ^= 0x40;
        assert_eq!(error(&input[..at + 1]), ProxyError::BadSignature { at });
        assert_eq!(error(&input), ProxyError::BadSignature { at });
        input[at] = saved;
    }
}

#[test]
fn only_version_2_is_accepted() {
    for ver_cmd in [0x01, 0x11, 0x31, 0xf1] {
        let input = v2(ver_cmd, 0x11, &inet_block());
        let version = ver_cmd >> 4;
        assert_eq!(
            error(&input[..13]),
            ProxyError::UnsupportedVersion { version }
        );
        assert_eq!(error(&input), ProxyError::UnsupportedVersion { version });
    }
}

#[test]
fn only_local_and_proxy_commands_are_accepted() {
    for command in 2..16 {
        let input = v2(0x20 | command, 0x11, &inet_block());
        assert_eq!(error(&input[..13]), ProxyError::BadCommand { command });
    }
}

#[test]
fn unassigned_families_and_protocols_are_refused() {
    for fam in [0x03, 0x13, 0x1f, 0x40, 0x41, 0xf1, 0xff] {
        for ver_cmd in [0x20, 0x21] {
            let input = v2(ver_cmd, fam, &[0; 216]);
            assert_eq!(error(&input[..14]), ProxyError::BadFamily { at: 13 });
        }
    }
}

#[test]
fn a_length_shorter_than_the_address_block_is_refused() {
    for (fam, needed) in [(0x11, 12), (0x12, 12), (0x21, 36), (0x22, 36), (0x31, 216)] {
        for ver_cmd in [0x20, 0x21] {
            let input = v2(ver_cmd, fam, &vec![0; needed - 1]);
            let e = ProxyError::AddressBlockTooShort {
                len: needed - 1,
                needed,
            };
            assert_eq!(error(&input[..16]), e, "{fam:#x} before the block");
            assert_eq!(error(&input), e);
        }
    }
}

#[test]
fn a_header_over_the_bound_is_refused_from_its_length() {
    let body = [inet_block(), tlv(0xE0, &[0; 4096])].concat();
    let input = v2(0x21, 0x11, &body);
    let too_long = ProxyError::TooLong {
        max: DEFAULT_MAX_LEN,
    };
    assert_eq!(error(&input[..16]), too_long);
    let roomy = ProxyParser::new().max_len(V2_MAX_LEN);
    assert!(matches!(
        roomy.parse(&input),
        Ok(Parsed::Complete { consumed, .. }) if consumed == input.len()
    ));
    // Exactly at the bound is accepted.
    let body = [inet_block(), tlv(0xE0, &[0; 4096 - 16 - 12 - 3])].concat();
    assert_eq!(complete(&v2(0x21, 0x11, &body)).1, DEFAULT_MAX_LEN);
}

#[test]
fn the_largest_header_the_format_allows() {
    let body = [inet_block(), tlv(0xE0, &[1; 65535 - 12 - 3])].concat();
    let input = v2(0x21, 0x11, &body);
    assert_eq!(input.len(), V2_MAX_LEN);
    let roomy = ProxyParser::new().max_len(V2_MAX_LEN);
    let Ok(Parsed::Complete { header, consumed }) = roomy.parse(&input) else {
        panic!("the largest header is refused");
    };
    assert_eq!(consumed, V2_MAX_LEN);
    assert_eq!(header.tlv(0xE0).map(<[u8]>::len), Some(65520));
}

#[test]
fn a_malformed_tlv_list_is_refused() {
    let cases: [(&[u8], usize); 5] = [
        (&[0x01], 28),                   // one byte: no length
        (&[0x01, 0x00], 28),             // two bytes: half a length
        (&[0x01, 0x00, 0x01], 28),       // a value cut short
        (&[0x01, 0x00, 0x00, 0x02], 31), // a whole TLV, then a stray byte
        (&[0x02, 0xff, 0xff, 0x00], 28),
    ];
    for (tlvs, at) in cases {
        let input = v2(0x21, 0x11, &[&inet_block()[..], tlvs].concat());
        assert_eq!(error(&input), ProxyError::MalformedTlv { at }, "{tlvs:?}");
        // Not before the header is whole.
        assert!(matches!(
            parse(&input[..input.len() - 1]),
            Ok(Parsed::Incomplete { needed: Some(1) })
        ));
    }
    // The same for LOCAL.
    let input = v2(0x20, 0x11, &[&inet_block()[..], &[0x01, 0x00]].concat());
    assert_eq!(error(&input), ProxyError::MalformedTlv { at: 28 });
}

#[test]
fn data_after_the_header_is_not_consumed() {
    let input = v2(0x21, 0x11, &inet_block());
    let with_more = [&input[..], &input[..]].concat();
    assert_eq!(complete(&with_more).1, input.len());
}
