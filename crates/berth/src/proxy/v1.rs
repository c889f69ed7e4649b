//! Version 1: one line of text.
//!
//! `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`), or
//! `PROXY UNKNOWN` followed by anything up to CRLF, in at most
//! [`V1_MAX_LEN`] bytes.
//!
//! The line is read left to right and every byte is judged as soon as it
//! arrives (a field when its separator arrives), so a prefix of the input
//! gives either "need more" or the same error as the whole input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::{Command, Parsed, ProxyError, ProxyHeader, Transport, V1_MAX_LEN, Version};

/// `PROXY` and its space.
const PREFIX: &[u8] = b"PROXY ";

/// The protocol words.
const WORDS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];

/// `255.255.255.255`.
const IPV4_MAX_CHARS: usize = 15;
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`, the longest form
/// [`Ipv6Addr`] reads.
const IPV6_MAX_CHARS: usize = 45;
/// `65535`.
const PORT_MAX_CHARS: usize = 5;

/// Why the line cannot be read further.
enum Stop {
    /// The input ends before the line does.
    More,
    /// The line is invalid.
    Invalid(ProxyError),
}

impl From<ProxyError> for Stop {
    fn from(e: ProxyError) -> Self {
        Stop::Invalid(e)
    }
}

/// Parse a version 1 header at the start of `buf` (which starts with `P`).
pub(super) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match Line::new(buf).header() {
        Ok((header, consumed)) => Ok(Parsed::Complete { header, consumed }),
        Err(Stop::More) => Ok(Parsed::Incomplete { needed: None }),
        Err(Stop::Invalid(e)) => Err(e),
    }
}

/// A read position in the line.
struct Line<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Line<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Line { buf, pos: 0 }
    }

    /// The byte at the read position, not consumed.
    fn peek(&self) -> Result<u8, Stop> {
        if self.pos >= V1_MAX_LEN {
            // The line would be longer than allowed, whatever comes next.
            return Err(ProxyError::TooLong { max: V1_MAX_LEN }.into());
        }
        self.buf.get(self.pos).copied().ok_or(Stop::More)
    }

    /// Consume the byte at the read position, which must be `want`.
    fn expect(&mut self, want: u8) -> Result<(), Stop> {
        if self.peek()? != want {
            return Err(ProxyError::MalformedLine { at: self.pos }.into());
        }
        self.pos += 1;
        Ok(())
    }

    /// The final CRLF; returns the header length.
    fn crlf(&mut self) -> Result<usize, Stop> {
        self.expect(b'\r')?;
        self.expect(b'\n')?;
        Ok(self.pos)
    }

    fn header(mut self) -> Result<(ProxyHeader, usize), Stop> {
        for (at, &want) in PREFIX.iter().enumerate() {
            if self.peek()? != want {
                return Err(ProxyError::BadSignature { at }.into());
            }
            self.pos += 1;
        }
        let transport = self.word()?;
        let addresses = match transport {
            Transport::Tcp4 => Some(self.addresses(Family::V4)?),
            Transport::Tcp6 => Some(self.addresses(Family::V6)?),
            _ => {
                self.rest_of_unknown()?;
                None
            }
        };
        let consumed = self.crlf()?;
        let header = ProxyHeader {
            version: Version::V1,
            command: Command::Proxy,
            transport,
            addresses,
            tlvs: Box::default(),
        };
        Ok((header, consumed))
    }

    /// The protocol word, up to (not including) the space or CR after it.
    /// Refused at the first byte that no word starts with.
    fn word(&mut self) -> Result<Transport, Stop> {
        let start = self.pos;
        loop {
            let b = self.peek()?;
            let word = &self.buf[start..self.pos];
            if b == b' ' || b == b'\r' {
                return match word {
                    b"TCP4" => Ok(Transport::Tcp4),
                    b"TCP6" => Ok(Transport::Tcp6),
                    b"UNKNOWN" => Ok(Transport::Unspec),
                    _ => Err(ProxyError::BadFamily { at: start }.into()),
                };
            }
            self.pos += 1;
            let word = &self.buf[start..self.pos];
            if !WORDS.iter().any(|w| w.starts_with(word)) {
                return Err(ProxyError::BadFamily { at: start }.into());
            }
        }
    }

    /// After `UNKNOWN`: nothing, or a space and anything but CR and LF.
    /// Leaves the read position at the CR.
    fn rest_of_unknown(&mut self) -> Result<(), Stop> {
        if self.peek()? == b' ' {
            self.pos += 1;
            while !matches!(self.peek()?, b'\r' | b'\n') {
                self.pos += 1;
            }
        }
        Ok(())
    }

    /// ` <src> <dst> <sport> <dport>`, leaving the read position at the CR.
    fn addresses(&mut self, family: Family) -> Result<(SocketAddr, SocketAddr), Stop> {
        self.expect(b' ')?;
        let source = self.address(family)?;
        self.expect(b' ')?;
        let destination = self.address(family)?;
        self.expect(b' ')?;
        let source_port = self.port()?;
        self.expect(b' ')?;
        let destination_port = self.port()?;
        Ok((
            SocketAddr::new(source, source_port),
            SocketAddr::new(destination, destination_port),
        ))
    }

    /// A field: the bytes from the read position up to the first one that
    /// `allowed` refuses (which is left unread). Returns the field's start
    /// and the field. A field longer than `max` bytes, or one that stops
    /// at a byte that cannot follow a field (anything but space, CR and
    /// LF), is refused with `bad`, as soon as that byte is seen.
    fn field(
        &mut self,
        allowed: fn(u8) -> bool,
        max: usize,
        bad: fn(usize) -> ProxyError,
    ) -> Result<(usize, &'a [u8]), Stop> {
        let start = self.pos;
        loop {
            let b = self.peek()?;
            if !allowed(b) {
                if !matches!(b, b' ' | b'\r' | b'\n') {
                    return Err(bad(start).into());
                }
                break;
            }
            self.pos += 1;
            if self.pos - start > max {
                return Err(bad(start).into());
            }
        }
        if self.pos == start {
            // Two separators in a row, or a field missing before CRLF.
            return Err(ProxyError::MalformedLine { at: start }.into());
        }
        Ok((start, &self.buf[start..self.pos]))
    }

    fn address(&mut self, family: Family) -> Result<IpAddr, Stop> {
        let bad = |at| ProxyError::BadAddress { at };
        let (start, text) = match family {
            Family::V4 => self.field(is_ipv4_char, IPV4_MAX_CHARS, bad)?,
            Family::V6 => self.field(is_ipv6_char, IPV6_MAX_CHARS, bad)?,
        };
        let parsed = match family {
            Family::V4 => from_ascii::<Ipv4Addr>(text).map(IpAddr::V4),
            Family::V6 => from_ascii::<Ipv6Addr>(text).map(IpAddr::V6),
        };
        parsed.ok_or(bad(start).into())
    }

    fn port(&mut self) -> Result<u16, Stop> {
        let bad = |at| ProxyError::BadPort { at };
        let (start, digits) = self.field(|b| b.is_ascii_digit(), PORT_MAX_CHARS, bad)?;
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(bad(start).into());
        }
        // Digits only, at most five: no sign, no overflow of u32.
        let value = digits
            .iter()
            .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
        u16::try_from(value).map_err(|_| bad(start).into())
    }
}

/// The address family a TCP line announced.
#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

fn is_ipv4_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

fn is_ipv6_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// Parse an ASCII field with `FromStr`. The standard parsers refuse IPv4
/// numbers with leading zeros and IPv6 zone indexes.
fn from_ascii<T: FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.parse().ok()
}
