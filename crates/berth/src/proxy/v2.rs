//! Version 2: a binary block.
//!
//! 16 fixed bytes (the 12-byte signature; version and command; family and
//! protocol; a big-endian 16-bit length), then `length` bytes: the address
//! block of the family, then TLVs. Each fixed byte is checked as soon as it
//! arrives; the address block and TLVs once the whole header is there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::header::split_tlv;
use super::{Command, Parsed, ProxyError, ProxyHeader, Transport, Version};

/// The version 2 signature.
pub(super) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Signature, version/command, family/protocol, length.
const FIXED_LEN: usize = 16;

/// Offsets of the version/command and family/protocol bytes.
const VERSION_COMMAND: usize = 12;
const FAMILY_PROTOCOL: usize = 13;

/// Address block sizes: two IPv4 addresses and two ports; two IPv6
/// addresses and two ports; two 108-byte UNIX socket paths.
const INET_BLOCK: usize = 12;
const INET6_BLOCK: usize = 36;
const UNIX_BLOCK: usize = 216;

/// Parse a version 2 header at the start of `buf` (which starts with CR),
/// refusing one longer than `max_len` bytes.
pub(super) fn parse(buf: &[u8], max_len: usize) -> Result<Parsed, ProxyError> {
    let sig = &buf[..buf.len().min(SIGNATURE.len())];
    if let Some(at) = sig.iter().zip(SIGNATURE).position(|(&b, s)| b != s) {
        return Err(ProxyError::BadSignature { at });
    }
    let fixed_incomplete = || -> Result<Parsed, ProxyError> {
        Ok(Parsed::Incomplete {
            needed: Some(FIXED_LEN - buf.len()),
        })
    };

    let Some(&version_command) = buf.get(VERSION_COMMAND) else {
        return fixed_incomplete();
    };
    let version = version_command >> 4;
    if version != 2 {
        return Err(ProxyError::UnsupportedVersion { version });
    }
    let command = match version_command & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        command => return Err(ProxyError::BadCommand { command }),
    };

    let Some(&family_protocol) = buf.get(FAMILY_PROTOCOL) else {
        return fixed_incomplete();
    };
    let (family, protocol) = (family_protocol >> 4, family_protocol & 0x0f);
    if family > 3 || protocol > 2 {
        return Err(ProxyError::BadFamily {
            at: FAMILY_PROTOCOL,
        });
    }

    let Some(&len) = buf.get(14..FIXED_LEN).and_then(|b| b.first_chunk::<2>()) else {
        return fixed_incomplete();
    };
    let len = usize::from(u16::from_be_bytes(len));
    let block = match family {
        // UNSPEC: whatever follows is address information of unknown
        // layout, to be ignored.
        0 => len,
        1 => INET_BLOCK,
        2 => INET6_BLOCK,
        _ => UNIX_BLOCK,
    };
    if len < block {
        return Err(ProxyError::AddressBlockTooShort { len, needed: block });
    }
    let total = FIXED_LEN + len;
    if total > max_len {
        return Err(ProxyError::TooLong { max: max_len });
    }
    let Some(body) = buf.get(FIXED_LEN..total) else {
        return Ok(Parsed::Incomplete {
            needed: Some(total - buf.len()),
        });
    };

    let (addresses, tlvs) = body.split_at(block);
    check_tlvs(tlvs, FIXED_LEN + block)?;
    let transport = match (family, protocol) {
        (1, 1) => Transport::Tcp4,
        (2, 1) => Transport::Tcp6,
        (1, 2) => Transport::Udp4,
        (2, 2) => Transport::Udp6,
        (3, 1) => Transport::UnixStream,
        (3, 2) => Transport::UnixDgram,
        _ => Transport::Unspec,
    };
    let addresses = match (command, transport) {
        (Command::Proxy, Transport::Tcp4) => addresses.first_chunk().map(inet),
        (Command::Proxy, Transport::Tcp6) => addresses.first_chunk().map(inet6),
        _ => None,
    };
    let header = ProxyHeader {
        version: Version::V2,
        command,
        transport,
        addresses,
        tlvs: tlvs.into(),
    };
    Ok(Parsed::Complete {
        header,
        consumed: total,
    })
}

/// Check that `tlvs`, found at offset `base` in the header, is a sequence
/// of whole TLVs.
fn check_tlvs(tlvs: &[u8], base: usize) -> Result<(), ProxyError> {
    let mut offset = 0;
    while offset < tlvs.len() {
        let Some((_, len)) = split_tlv(&tlvs[offset..]) else {
            return Err(ProxyError::MalformedTlv { at: base + offset });
        };
        offset += len;
    }
    Ok(())
}

/// Source and destination from an IPv4 block.
fn inet(b: &[u8; INET_BLOCK]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]));
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    (
        SocketAddr::new(ip(0), port(8)),
        SocketAddr::new(ip(4), port(10)),
    )
}

/// Source and destination from an IPv6 block.
fn inet6(b: &[u8; INET6_BLOCK]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&b[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    (
        SocketAddr::new(ip(0), port(32)),
        SocketAddr::new(ip(16), port(34)),
    )
}
