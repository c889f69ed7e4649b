//! Version 1: the text line, rule by rule.

use super::*;

#[test]
fn tcp4() {
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let (h, n) = complete(line);
    assert_eq!(n, line.len());
    assert_eq!(h.version(), Version::V1);
    assert_eq!(h.command(), Command::Proxy);
    assert_eq!(h.transport(), Transport::Tcp4);
    assert_eq!(h.source(), Some(addr("192.168.0.1:56324")));
    assert_eq!(h.destination(), Some(addr("192.168.0.11:443")));
    assert_eq!(h.tlvs().count(), 0);
    assert!(h.tlv_bytes().is_empty());
}

#[test]
fn tcp6() {
    let line = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    let (h, n) = complete(line);
    assert_eq!(n, line.len());
    assert_eq!(h.transport(), Transport::Tcp6);
    assert_eq!(h.source(), Some(addr("[2001:db8::1]:65535")));
    assert_eq!(h.destination(), Some(addr("[::1]:0")));
}

#[test]
fn tcp6_accepts_the_textual_forms_of_ipv6() {
    for (text, want) in [
        ("FFFF:ffff:0:0:0:0:0:1", "ffff:ffff::1"),
        ("0000:0000:0000:0000:0000:0000:0000:0001", "::1"),
        ("::", "::"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ] {
        let line = format!("PROXY TCP6 {text} {text} 1 2\r\n");
        let (h, _) = complete(line.as_bytes());
        let want: std::net::Ipv6Addr = want.parse().unwrap();
        assert_eq!(h.source().map(|a| a.ip()), Some(want.into()), "{text}");
    }
}

#[test]
fn the_longest_tcp6_line_is_104_bytes() {
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY TCP6 {full} {full} 65535 65535\r\n");
    assert_eq!(line.len(), 104);
    assert_eq!(complete(line.as_bytes()).1, 104);
}

#[test]
fn unknown_alone() {
    let (h, n) = complete(b"PROXY UNKNOWN\r\nGET /");
    assert_eq!(n, 15);
    assert_eq!(h.command(), Command::Proxy);
    assert_eq!(h.transport(), Transport::Unspec);
    assert_eq!((h.source(), h.destination()), (None, None));
}

#[test]
fn unknown_ignores_the_rest_of_its_line() {
    for line in [
        &b"PROXY UNKNOWN \r\n"[..],
        b"PROXY UNKNOWN TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWN not an address at all\r\n",
        b"PROXY UNKNOWN \xff\x00\x7f\r\n",
    ] {
        let (h, n) = complete(line);
        assert_eq!(
            (n, h.transport(), h.source()),
            (line.len(), Transport::Unspec, None)
        );
    }
}

#[test]
fn the_worst_case_line_of_107_bytes_is_accepted() {
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
    assert_eq!(line.len(), V1_MAX_LEN);
    assert_eq!(complete(line.as_bytes()).1, V1_MAX_LEN);
}

#[test]
fn a_line_without_crlf_in_107_bytes_is_too_long() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_LEN - 1, b'x');
    assert_eq!(incomplete(&line), None);
    line.push(b'\r'); // the LF would be byte 108
    assert_eq!(error(&line), ProxyError::TooLong { max: V1_MAX_LEN });
    line.push(b'\n');
    assert_eq!(error(&line), ProxyError::TooLong { max: V1_MAX_LEN });
}

#[test]
fn tcp6_with_mixed_notation_is_bounded_by_the_line_length() {
    let long = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    let line = format!("PROXY TCP6 {long} {long} 65535 65535\r\n");
    assert!(line.len() > V1_MAX_LEN);
    assert_eq!(
        error(line.as_bytes()),
        ProxyError::TooLong { max: V1_MAX_LEN }
    );
}

#[test]
fn data_after_the_line_is_not_consumed() {
    let input = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nPROXY TCP4 garbage\r\n";
    assert_eq!(complete(input).1, 32);
}

#[test]
fn prefixes_are_incomplete() {
    let line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    for k in 0..line.len() {
        assert_eq!(incomplete(&line[..k]), None, "prefix {k}");
    }
}

#[test]
fn a_bad_signature_is_refused_at_its_first_wrong_byte() {
    assert_eq!(
        error(b"POST / HTTP/1.1"),
        ProxyError::BadSignature { at: 1 }
    );
    assert_eq!(error(b"PROXYTCP4"), ProxyError::BadSignature { at: 5 });
    assert_eq!(error(b"PROXY\tTCP4"), ProxyError::BadSignature { at: 5 });
    assert_eq!(error(b"proxy TCP4"), ProxyError::NotProxy { byte: b'p' });
}

#[test]
fn an_unknown_protocol_word_is_refused_as_soon_as_it_cannot_match() {
    for input in [
        &b"PROXY UDP4"[..],
        b"PROXY TCP5",
        b"PROXY tcp4",
        b"PROXY TCP ",
        b"PROXY TCP44",
        b"PROXY UNKNOWNX",
        b"PROXY UNKNOWN\n",
        b"PROXY  TCP4",
        b"PROXY \r\n",
    ] {
        assert_eq!(error(input), ProxyError::BadFamily { at: 6 }, "{input:?}");
    }
    assert_eq!(incomplete(b"PROXY UNKNOW"), None);
}

#[test]
fn tcp_needs_its_four_fields() {
    for (input, at) in [
        (&b"PROXY TCP4\r\n"[..], 10),
        (b"PROXY TCP4 1.2.3.4\r\n", 18),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", 26),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 28),
    ] {
        assert_eq!(error(input), ProxyError::MalformedLine { at }, "{input:?}");
    }
}

#[test]
fn fields_are_separated_by_exactly_one_space() {
    for (input, at) in [
        (&b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"[..], 11),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 19),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", 27),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", 29),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 30),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 30),
    ] {
        assert_eq!(error(input), ProxyError::MalformedLine { at }, "{input:?}");
    }
}

#[test]
fn a_tab_is_not_a_separator() {
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
        ProxyError::BadAddress { at: 11 }
    );
}

#[test]
fn the_line_ends_with_crlf_only() {
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
        ProxyError::MalformedLine { at: 30 }
    );
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"),
        ProxyError::MalformedLine { at: 31 }
    );
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"),
        ProxyError::MalformedLine { at: 31 }
    );
    assert_eq!(
        error(b"PROXY UNKNOWN a\nb\r\n"),
        ProxyError::MalformedLine { at: 15 }
    );
    assert_eq!(
        error(b"PROXY UNKNOWN a\rb\r\n"),
        ProxyError::MalformedLine { at: 16 }
    );
    assert_eq!(
        error(b"PROXY UNKNOWN\rb"),
        ProxyError::MalformedLine { at: 14 }
    );
}

#[test]
fn ipv4_addresses_are_four_decimal_numbers_without_leading_zeros() {
    for bad in [
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.04",
        "1..3.4",
        ".1.2.3",
        "1.2.3.",
        "1111.2.3.4",
        "0x7f.0.0.1",
        "::1",
        "1.2.3.-4",
        "1.2.3.+4",
        "1.2.3.4.",
        "1234567890123456",
    ] {
        let line = format!("PROXY TCP4 {bad} 5.6.7.8 1 2\r\n");
        assert_eq!(
            error(line.as_bytes()),
            ProxyError::BadAddress { at: 11 },
            "{bad}"
        );
        let line = format!("PROXY TCP4 5.6.7.8 {bad} 1 2\r\n");
        assert_eq!(
            error(line.as_bytes()),
            ProxyError::BadAddress { at: 19 },
            "{bad}"
        );
    }
    complete(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n");
}

#[test]
fn ipv6_addresses_must_be_ipv6() {
    for bad in [
        "1.2.3.4",
        "1:2:3:4:5:6:7:8:9",
        "12345::1",
        "1:::2",
        "1::2::3",
        "fe80::1%eth0",
        "[::1]",
        "g::1",
        ":1",
    ] {
        let line = format!("PROXY TCP6 {bad} ::1 1 2\r\n");
        assert_eq!(
            error(line.as_bytes()),
            ProxyError::BadAddress { at: 11 },
            "{bad}"
        );
    }
}

#[test]
fn ports_are_decimal_without_sign_or_leading_zero() {
    for bad in [
        "65536", "99999", "100000", "01", "00", "+1", "-1", "1a", "0x1",
    ] {
        let line = format!("PROXY TCP4 1.2.3.4 5.6.7.8 {bad} 2\r\n");
        let e = error(line.as_bytes());
        assert_eq!(e, ProxyError::BadPort { at: 27 }, "{bad}");
        let line = format!("PROXY TCP4 1.2.3.4 5.6.7.8 2 {bad}\r\n");
        let e = error(line.as_bytes());
        assert_eq!(e, ProxyError::BadPort { at: 29 }, "{bad}");
    }
    let (h, _) = complete(b"PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n");
    assert_eq!(h.source().map(|a| a.port()), Some(0));
    assert_eq!(h.destination().map(|a| a.port()), Some(65535));
}

#[test]
fn a_bad_field_is_refused_before_the_line_ends() {
    // A character that cannot be in the field, or a field too long to be
    // one, is refused without waiting for the CRLF.
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.x"),
        ProxyError::BadAddress { at: 11 }
    );
    assert_eq!(
        error(b"PROXY TCP4 1111111111111111"),
        ProxyError::BadAddress { at: 11 }
    );
    assert_eq!(
        error(b"PROXY TCP4 300.2.3.4 "),
        ProxyError::BadAddress { at: 11 }
    );
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 5.6.7.8 123456"),
        ProxyError::BadPort { at: 27 }
    );
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 "),
        ProxyError::MalformedLine { at: 30 }
    );
}
