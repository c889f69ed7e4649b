//! What a Maildir file name tells: the unique part (the basis of the UIDL),
//! the delivery time it starts with, and the Maildir++ size fields.
//!
//! A conventional name is `<seconds>.<unique>.<host>[,S=<octets>][,W=<octets>][:2,<flags>]`.
//! Dovecot and Courier append `,S=` (the file's size in octets) and
//! Dovecot also `,W=` (the size with CRLF line ends, the RFC 822 size that
//! POP3 reports) when they deliver. The fields sit before the `:` that
//! introduces the flags, so they are part of the unique name and survive
//! the renames other mail clients make to set flags.

/// The fields of one file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameInfo<'a> {
    /// Everything before the first `:`.
    pub(crate) unique: &'a [u8],
    /// The `,S=` field: the file's size in octets.
    pub(crate) raw_size: Option<u64>,
    /// The `,W=` field: the size with CRLF line ends (what POP3 reports).
    pub(crate) wire_size: Option<u64>,
}

impl NameInfo<'_> {
    /// The POP3 size the name promises, if it carries a `,W=` field that is
    /// consistent with its `,S=` field (when there is one; see
    /// [`plausible`]).
    pub(crate) fn trusted_wire_size(&self) -> Option<u64> {
        let wire = self.wire_size?;
        match self.raw_size {
            Some(raw) if !plausible(raw, wire) => None,
            _ => Some(wire),
        }
    }
}

/// Whether `wire` can be the CRLF size of a file of `raw` octets:
/// converting line ends only adds octets, a CR per bare LF and a CR LF
/// after an unterminated last line, so at most `2 * raw + 1` (all LFs but
/// an unterminated last octet) and 0 for an empty file.
pub(crate) fn plausible(raw: u64, wire: u64) -> bool {
    let most = raw.saturating_mul(2).saturating_add(u64::from(raw > 0));
    raw <= wire && wire <= most
}

/// Splits a file name into its fields. Malformed size fields are ignored.
pub(crate) fn parse(name: &[u8]) -> NameInfo<'_> {
    let unique = unique_part(name);
    let mut info = NameInfo {
        unique,
        raw_size: None,
        wire_size: None,
    };
    for field in unique.split(|&b| b == b',').skip(1) {
        if let Some(digits) = field.strip_prefix(b"S=") {
            info.raw_size = decimal(digits);
        } else if let Some(digits) = field.strip_prefix(b"W=") {
            info.wire_size = decimal(digits);
        }
    }
    info
}

/// The unique part of a Maildir file name: everything before the first `:`.
pub(crate) fn unique_part(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b':').next().unwrap_or(name)
}

/// Orders messages by the delivery time that starts a conventional Maildir
/// name (`<seconds>.<unique>.<host>`); names without one sort last.
pub(crate) fn sort_key(unique: &[u8]) -> u64 {
    let digits = unique.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return u64::MAX;
    }
    decimal(&unique[..digits]).unwrap_or(u64::MAX)
}

/// A non-empty run of ASCII digits that fits in a `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0_u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_names_carry_both_sizes() {
        let info = parse(b"1700000000.M20P30.host,S=2048,W=2101:2,S");
        assert_eq!(info.unique, b"1700000000.M20P30.host,S=2048,W=2101");
        assert_eq!(info.raw_size, Some(2048));
        assert_eq!(info.wire_size, Some(2101));
        assert_eq!(info.trusted_wire_size(), Some(2101));
        assert_eq!(sort_key(info.unique), 1_700_000_000);
    }

    #[test]
    fn courier_names_carry_only_the_file_size() {
        let info = parse(b"1700000000.12345.host,S=99");
        assert_eq!(info.raw_size, Some(99));
        assert_eq!(info.wire_size, None);
        assert_eq!(info.trusted_wire_size(), None);
    }

    #[test]
    fn plain_and_malformed_names_carry_no_sizes() {
        for name in [
            &b"1700000000.x.host:2,S"[..],
            b"1700000000.x.host,S=,W=",
            b"1700000000.x.host,S=12a,W=-3",
            b"1700000000.x.host,W=99999999999999999999999",
            b"no-time",
        ] {
            let info = parse(name);
            assert_eq!((info.raw_size, info.wire_size), (None, None), "{name:?}");
        }
        assert_eq!(sort_key(b"no-time"), u64::MAX);
        assert_eq!(sort_key(b"99999999999999999999999.x"), u64::MAX);
    }

    #[test]
    fn a_wire_size_that_contradicts_the_file_size_is_not_trusted() {
        // CRLF conversion never shrinks a message, nor more than doubles it.
        assert_eq!(parse(b"1.a,S=100,W=99").trusted_wire_size(), None);
        assert_eq!(parse(b"1.a,S=100,W=202").trusted_wire_size(), None);
        assert_eq!(parse(b"1.a,S=100,W=201").trusted_wire_size(), Some(201));
        assert_eq!(parse(b"1.a,W=5").trusted_wire_size(), Some(5));
        // "x" is "x\r\n", "\n" is "\r\n", "" is "".
        assert!(plausible(0, 0) && plausible(1, 3) && plausible(1, 2));
        assert!(!plausible(0, 1) && !plausible(1, 4) && !plausible(2, 1));
    }

    #[test]
    fn the_flags_part_is_not_searched_for_fields() {
        let info = parse(b"1.a:2,S=5");
        assert_eq!(info.unique, b"1.a");
        assert_eq!(info.raw_size, None);
    }
}
