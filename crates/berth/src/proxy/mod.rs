//! A sans-IO parser for the PROXY protocol header, versions 1 and 2.
//!
//! A proxy in front of the server (HAProxy, a cloud load balancer, stunnel)
//! may open each connection with a PROXY protocol header saying who the
//! client really was: the original source and destination addresses, and
//! in version 2 extra Type-Length-Value fields (TLVs). Version 1 is one
//! line of text, version 2 a binary block; both are specified in HAProxy's
//! `proxy-protocol.txt`.
//!
//! The parser does no IO and keeps no state: [`parse`] looks at the bytes
//! received so far and answers [`Parsed::Incomplete`] (call again with more
//! bytes appended), [`Parsed::Complete`] (the header, and how many bytes it
//! took; the rest is the application's stream), or a [`ProxyError`], as
//! soon as the bytes seen can no longer begin a valid header. The answer
//! depends only on the bytes given, so a header split across several reads
//! gives `Incomplete` for every prefix and then the same result as the
//! header read at once.
//!
//! A server that expects PROXY headers must require one on every
//! connection: the specification forbids guessing whether a header is
//! there, since that would let any client forge its address. So there is
//! no "no header" answer: bytes that cannot start a header are an error,
//! and only trusted proxies should be allowed to connect.
//!
//! ```
//! use berth::proxy::{self, Command, Parsed, ProxyError, Transport, Version};
//!
//! // The header arrives in two reads, with the first request behind it.
//! let reads = [&b"PROXY TCP4 192.0.2.1 198.51"[..], &b".100.7 56324 443\r\nGET / HTTP/1.1\r\n"[..]];
//! let mut pending = Vec::new();
//! let mut header = None;
//! for read in reads {
//!     pending.extend_from_slice(read);
//!     match proxy::parse(&pending)? {
//!         Parsed::Incomplete { .. } => continue, // keep what we have, read more
//!         Parsed::Complete { header: h, consumed } => {
//!             pending.drain(..consumed); // what is left belongs to the application
//!             header = Some(h);
//!             break;
//!         }
//!     }
//! }
//! let header = header.expect("a whole header");
//! assert_eq!(header.version(), Version::V1);
//! assert_eq!(header.command(), Command::Proxy);
//! assert_eq!(header.transport(), Transport::Tcp4);
//! assert_eq!(header.source(), Some("192.0.2.1:56324".parse().unwrap()));
//! assert_eq!(header.destination(), Some("198.51.100.7:443".parse().unwrap()));
//! assert_eq!(pending, b"GET / HTTP/1.1\r\n");
//!
//! // Anything else is refused as soon as that is known.
//! assert_eq!(proxy::parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy { byte: b'G' }));
//! # Ok::<(), ProxyError>(())
//! ```
//!
//! # Limits
//!
//! A version 1 header is at most [`V1_MAX_LEN`] (107) bytes, CRLF included,
//! as the specification sets. A version 2 header is 16 bytes plus a 16-bit
//! length, so up to [`V2_MAX_LEN`] (65,551) bytes; [`parse`] accepts at
//! most [`DEFAULT_MAX_LEN`] (4,096) bytes, which holds every address block
//! and the TLVs proxies send in practice, and [`ProxyParser::max_len`]
//! changes that bound. A caller therefore never needs to keep more than the
//! bound before the header is complete or refused: past it the parser
//! answers [`ProxyError::TooLong`].
//!
//! # What is checked
//!
//! Version 1, strictly: `PROXY`, one space, `TCP4`, `TCP6` or `UNKNOWN`,
//! then for TCP exactly one space before each of source address,
//! destination address, source port and destination port, and CRLF.
//! Addresses must be of the announced family (IPv4 as four decimal numbers
//! without leading zeros; IPv6 in any textual form [`std::net::Ipv6Addr`]
//! reads, no zone index); ports are decimal 0 to 65535 with no sign and no
//! leading zero. After `UNKNOWN` anything up to the CRLF is ignored. A lone
//! CR or LF is an error.
//!
//! Version 2: the 12-byte signature, version 2, the command (LOCAL or
//! PROXY), an assigned address family (UNSPEC, INET, INET6, UNIX) and
//! transport protocol (UNSPEC, STREAM, DGRAM), and a length at least the
//! family's address block (12, 36 or 216 bytes). For the UNSPEC family the
//! whole block after the fixed 16 bytes is address information of unknown
//! layout, ignored as the specification says (so it has no TLVs). For the
//! other families the bytes after the address block must be a well-formed
//! TLV list; TLVs are returned raw, not interpreted (a `CRC32C` TLV is not
//! verified). LOCAL headers are checked the same way, but report no
//! addresses.
//!
//! # Addresses
//!
//! [`ProxyHeader::source`] and [`ProxyHeader::destination`] are given only
//! for a PROXY command (v1 `TCP4`/`TCP6`) over TCP on IPv4 or IPv6: then the
//! server should use them in place of the connection's own endpoints. For
//! LOCAL, v1 `UNKNOWN`, the UNSPEC family or protocol, UNIX sockets and UDP
//! they are `None`, and the connection's real endpoints apply (the
//! specification lets a receiver fall back this way for the combinations it
//! does not support). UDP is left out on purpose: berth serves TCP, and
//! datagram endpoints do not describe a stream connection's peer;
//! [`ProxyHeader::transport`] still tells a caller that wants to refuse
//! such headers.

mod error;
mod header;
mod v1;
mod v2;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;

pub use error::ProxyError;
pub use header::{Command, ProxyHeader, Tlv, Tlvs, Transport, Version};

/// The longest version 1 header, CRLF included (the specification's
/// worst case: `UNKNOWN` followed by two full IPv6 addresses and ports).
pub const V1_MAX_LEN: usize = 107;

/// The longest version 2 header the format can express: 16 fixed bytes
/// and a length field of at most 65,535.
pub const V2_MAX_LEN: usize = 16 + u16::MAX as usize;

/// The bound [`parse`] and [`ProxyParser::new`] put on a version 2 header.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// The smallest bound [`ProxyParser::max_len`] accepts: the fixed 16 bytes
/// and the largest address block (two 108-byte UNIX socket paths), so
/// every address family fits.
pub const MIN_MAX_LEN: usize = 16 + 216;

/// What [`parse`] made of the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Parsed {
    /// The bytes are the beginning of a header that is not complete yet:
    /// append more and parse again.
    Incomplete {
        /// When known, how many more bytes the header needs at least.
        /// Exact once a version 2 header's length has been read; `None`
        /// for version 1, whose length is known only at its CRLF. Parsing
        /// again sooner is harmless.
        needed: Option<usize>,
    },
    /// A whole, valid header.
    Complete {
        /// The header.
        header: ProxyHeader,
        /// How many bytes at the start of the input it took. Whatever
        /// follows is the proxied stream.
        consumed: usize,
    },
}

/// A PROXY header parser with a bound on version 2 headers.
///
/// [`parse`] is `ProxyParser::new().parse`; build one to accept longer (or
/// only shorter) version 2 headers than [`DEFAULT_MAX_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyParser {
    max_len: usize,
}

impl Default for ProxyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyParser {
    /// A parser that accepts version 2 headers of up to
    /// [`DEFAULT_MAX_LEN`] bytes.
    pub const fn new() -> Self {
        ProxyParser {
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// Accept version 2 headers of up to `max` bytes (fixed part, address
    /// block and TLVs). `max` is kept within [`MIN_MAX_LEN`] and
    /// [`V2_MAX_LEN`]. Version 1 headers are always bounded by
    /// [`V1_MAX_LEN`].
    pub const fn max_len(mut self, max: usize) -> Self {
        self.max_len = if max < MIN_MAX_LEN {
            MIN_MAX_LEN
        } else if max > V2_MAX_LEN {
            V2_MAX_LEN
        } else {
            max
        };
        self
    }

    /// The bound on version 2 headers.
    pub const fn max_header_len(&self) -> usize {
        self.max_len
    }

    /// Parse the header at the start of `buf`, the bytes received so far
    /// on a connection that must begin with one.
    ///
    /// The first byte chooses the version: `P` for version 1, CR for
    /// version 2 (whose signature starts with CR LF); any other byte is
    /// [`ProxyError::NotProxy`]. An empty `buf` is
    /// [`Parsed::Incomplete`].
    pub fn parse(&self, buf: &[u8]) -> Result<Parsed, ProxyError> {
        match buf.first() {
            None => Ok(Parsed::Incomplete { needed: None }),
            Some(b'P') => v1::parse(buf),
            Some(b'\r') => v2::parse(buf, self.max_len),
            Some(&byte) => Err(ProxyError::NotProxy { byte }),
        }
    }
}

/// Parse the header at the start of `buf` with the default bound
/// ([`DEFAULT_MAX_LEN`]); see [`ProxyParser::parse`].
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    ProxyParser::new().parse(buf)
}
