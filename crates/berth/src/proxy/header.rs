//! A parsed PROXY header and its parts.

use std::net::SocketAddr;

/// The protocol version a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Version 1, the text line.
    V1,
    /// Version 2, the binary block.
    V2,
}

impl Version {
    /// The version number: 1 or 2.
    pub const fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }
}

/// What the proxy says the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The connection relays a client's: the header describes the original
    /// endpoints (when [`ProxyHeader::source`] is `Some`). Every version 1
    /// header is a PROXY command; `PROXY UNKNOWN` has
    /// [`Transport::Unspec`] and no addresses.
    Proxy,
    /// Version 2 only: the proxy opened the connection on its own behalf
    /// (a health check, say). The connection's real endpoints apply.
    Local,
}

/// The proxied connection's transport protocol and address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unknown or unspecified: version 1 `UNKNOWN`, or a version 2 byte 13
    /// whose family or protocol nibble is UNSPEC.
    Unspec,
    /// TCP over IPv4 (v1 `TCP4`, v2 `0x11`).
    Tcp4,
    /// TCP over IPv6 (v1 `TCP6`, v2 `0x21`).
    Tcp6,
    /// UDP over IPv4 (v2 `0x12`).
    Udp4,
    /// UDP over IPv6 (v2 `0x22`).
    Udp6,
    /// A UNIX stream socket (v2 `0x31`).
    UnixStream,
    /// A UNIX datagram socket (v2 `0x32`).
    UnixDgram,
}

/// A parsed PROXY protocol header.
///
/// It owns its data (the TLVs are copied out of the input), so the input
/// buffer can be reused once the header is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    pub(super) version: Version,
    pub(super) command: Command,
    pub(super) transport: Transport,
    /// Source and destination, present only for PROXY over TCP.
    pub(super) addresses: Option<(SocketAddr, SocketAddr)>,
    /// The TLV list, already checked to be well formed.
    pub(super) tlvs: Box<[u8]>,
}

impl ProxyHeader {
    /// The version the header was written in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// PROXY or LOCAL.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The proxied connection's transport and family, as announced.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The original client's address: `Some` only for a PROXY command over
    /// TCP on IPv4 or IPv6 (see the [module docs](super#addresses)).
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|(source, _)| source)
    }

    /// The address the client connected to: `Some` exactly when
    /// [`ProxyHeader::source`] is.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.addresses.map(|(_, destination)| destination)
    }

    /// The version 2 TLVs, in order (none for version 1).
    pub fn tlvs(&self) -> Tlvs<'_> {
        Tlvs { rest: &self.tlvs }
    }

    /// The value of the first TLV of type `kind`, if any.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs().find(|t| t.kind == kind).map(|t| t.value)
    }

    /// The raw bytes of the TLV list, as received: each TLV is a type
    /// byte, a big-endian 16-bit length and the value.
    pub fn tlv_bytes(&self) -> &[u8] {
        &self.tlvs
    }
}

/// One Type-Length-Value field of a version 2 header, uninterpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tlv<'a> {
    /// The type byte (`0x01` ALPN, `0x02` authority, `0x03` CRC32C,
    /// `0x04` no-op, `0x05` unique id, `0x20` SSL, `0x30` network
    /// namespace, `0xE0..=0xEF` custom, ...).
    pub kind: u8,
    /// The value.
    pub value: &'a [u8],
}

/// Iterator over the TLVs of a [`ProxyHeader`].
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let (tlv, len) = split_tlv(self.rest)?;
        self.rest = &self.rest[len..];
        Some(tlv)
    }
}

/// The TLV at the start of `bytes` and its encoded length, or `None` when
/// `bytes` does not start with a whole TLV.
pub(super) fn split_tlv(bytes: &[u8]) -> Option<(Tlv<'_>, usize)> {
    let (&kind, rest) = bytes.split_first()?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let value = rest.get(..len)?;
    Some((Tlv { kind, value }, 3 + len))
}
