//! Why a PROXY header was refused.

/// Why the bytes at the start of a connection are not a valid PROXY
/// protocol header. Every error is final: more bytes cannot fix it, and the
/// connection should be closed.
///
/// Offsets (`at`) count from the first byte of the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The first byte can start neither header (`P` for version 1, CR for
    /// version 2): the peer does not speak the PROXY protocol.
    #[error("not a PROXY protocol header (first byte {byte:#04x})")]
    NotProxy {
        /// The first byte.
        byte: u8,
    },
    /// The input began like a signature (`PROXY ` or the 12-byte version 2
    /// block) but byte `at` differs from it.
    #[error("bad PROXY protocol signature at byte {at}")]
    BadSignature {
        /// Offset of the first byte that differs.
        at: usize,
    },
    /// Version 2: the version nibble is not 2.
    #[error("unsupported PROXY protocol version {version}")]
    UnsupportedVersion {
        /// The version nibble (high four bits of byte 12).
        version: u8,
    },
    /// Version 2: the command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("bad PROXY protocol command {command:#x}")]
    BadCommand {
        /// The command nibble (low four bits of byte 12).
        command: u8,
    },
    /// The protocol and family are not ones the specification assigns:
    /// version 1's word is not `TCP4`, `TCP6` or `UNKNOWN`, or version 2's
    /// byte 13 has an address family above 3 or a transport protocol
    /// above 2.
    #[error("bad PROXY protocol family at byte {at}")]
    BadFamily {
        /// Offset of the word (6) or byte (13).
        at: usize,
    },
    /// Version 1: an address field is not an address of the announced
    /// family.
    #[error("bad address in PROXY header at byte {at}")]
    BadAddress {
        /// Offset of the field.
        at: usize,
    },
    /// Version 1: a port field is not a decimal number from 0 to 65535
    /// without sign or leading zero.
    #[error("bad port in PROXY header at byte {at}")]
    BadPort {
        /// Offset of the field.
        at: usize,
    },
    /// Version 1: the line does not have the expected shape at byte `at`:
    /// a missing, empty or extra field, a separator other than one space,
    /// or a CR or LF that is not part of the final CRLF.
    #[error("malformed PROXY line at byte {at}")]
    MalformedLine {
        /// Offset of the unexpected byte.
        at: usize,
    },
    /// The header is longer than allowed: a version 1 line without CRLF in
    /// its first 107 bytes, or a version 2 header whose length field makes
    /// it longer than the parser's bound.
    #[error("PROXY header longer than {max} bytes")]
    TooLong {
        /// The bound that was exceeded.
        max: usize,
    },
    /// Version 2: the length field is smaller than the address block of
    /// the announced family.
    #[error("PROXY header length {len} cannot hold the {needed}-byte address block")]
    AddressBlockTooShort {
        /// The length field.
        len: usize,
        /// The size of the family's address block.
        needed: usize,
    },
    /// Version 2: the bytes after the address block are not a sequence of
    /// whole TLVs (one is cut short by the end of the header).
    #[error("malformed TLV in PROXY header at byte {at}")]
    MalformedTlv {
        /// Offset of the TLV that does not fit.
        at: usize,
    },
}
