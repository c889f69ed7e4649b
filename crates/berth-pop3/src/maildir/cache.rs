//! The size cache: each mailbox's POP3 message sizes, kept in the mailbox
//! directory so that a login does not read every message (as Dovecot keeps
//! `dovecot-uidlist` and its index there).
//!
//! The cache is a hint, never the truth. An entry is used only for a file
//! listed at login under the same unique name *and* the same inode, so a
//! message that is new, gone, renamed to another unique name, or replaced
//! by a new file (a rewrite through a temporary file and `rename`) is
//! noticed; a size that turns out wrong when the message is read is
//! corrected (see `Mailbox::correct`). A file that fails to parse (torn,
//! truncated, edited, another version) is ignored and rebuilt. The file is
//! replaced atomically: written under a temporary name in the same
//! directory, then renamed over the old one, so readers see either the old
//! or the new cache, never a mix. No `fsync`: after a crash the cache may
//! be stale or missing, and both only cost a slower login.
//!
//! The format is line-based text, readable with `less`:
//!
//! ```text
//! berth-pop3 sizes 1
//! <inode> <file octets> <POP3 octets> <name length>:<unique name>
//! ...
//! end <entries> <FNV-1a 64 of everything before this line, 16 hex digits>
//! ```
//!
//! The unique name is counted rather than escaped, so any byte may occur in
//! it.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::name::plausible;
use crate::message::Sizes;

/// The cache's file name in the mailbox directory.
pub const FILE_NAME: &str = "berth-pop3-sizes";

/// The first line: the format and its version.
const MAGIC: &[u8] = b"berth-pop3 sizes 1\n";

/// A cache's entries, keyed by unique name and inode, borrowing the bytes
/// they were parsed from.
pub(crate) type Entries<'a> = HashMap<(&'a [u8], u64), Sizes>;

/// Why a cache file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CacheError {
    /// The first line is not this format's (another version, or garbage).
    #[error("not a berth-pop3 size cache (or another version)")]
    Header,
    /// Entry `n` (from 1) does not parse.
    #[error("entry {0} is malformed")]
    Entry(usize),
    /// Entry `n` has sizes no message can have (POP3 size below the file
    /// size, or above twice it plus 2).
    #[error("entry {0} has impossible sizes")]
    Implausible(usize),
    /// The same unique name and inode twice.
    #[error("entry {0} repeats an earlier one")]
    Duplicate(usize),
    /// No `end` line: the file was cut short.
    #[error("the end line is missing (truncated?)")]
    Truncated,
    /// The `end` line does not match what precedes it.
    #[error("the end line does not match the entries (corrupt)")]
    Checksum,
}

/// Parses a cache file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Entries<'_>, CacheError> {
    let mut rest = bytes.strip_prefix(MAGIC).ok_or(CacheError::Header)?;
    let mut entries = HashMap::new();
    loop {
        let body_len = bytes.len() - rest.len();
        if rest.starts_with(b"end ") {
            let expected = trailer_line(entries.len(), fnv1a(&bytes[..body_len]));
            return if rest == expected.as_slice() {
                Ok(entries)
            } else {
                Err(CacheError::Checksum)
            };
        }
        if rest.is_empty() {
            return Err(CacheError::Truncated);
        }
        let n = entries.len() + 1;
        let (unique, ino, sizes, tail) = entry(rest).ok_or(CacheError::Entry(n))?;
        if !plausible(sizes.raw, sizes.wire) {
            return Err(CacheError::Implausible(n));
        }
        if entries.insert((unique, ino), sizes).is_some() {
            return Err(CacheError::Duplicate(n));
        }
        rest = tail;
    }
}

/// One entry line: `ino raw wire len:unique\n`; returns the rest.
fn entry(line: &[u8]) -> Option<(&[u8], u64, Sizes, &[u8])> {
    let (ino, rest) = number(line, b' ')?;
    let (raw, rest) = number(rest, b' ')?;
    let (wire, rest) = number(rest, b' ')?;
    let (len, rest) = number(rest, b':')?;
    let len = usize::try_from(len).ok()?;
    if len == 0 || rest.len() <= len || rest[len] != b'\n' {
        return None;
    }
    Some((&rest[..len], ino, Sizes { raw, wire }, &rest[len + 1..]))
}

/// A decimal number ended by `end`; returns it and what follows `end`.
fn number(bytes: &[u8], end: u8) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || bytes.get(digits) != Some(&end) {
        return None;
    }
    let value = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((value, &bytes[digits + 1..]))
}

/// The cache file for `entries` (in the order given).
pub(crate) fn serialize<'a>(entries: impl IntoIterator<Item = (&'a [u8], u64, Sizes)>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut count = 0;
    for (unique, ino, sizes) in entries {
        let _ = write!(out, "{ino} {} {} {}:", sizes.raw, sizes.wire, unique.len());
        out.extend_from_slice(unique);
        out.push(b'\n');
        count += 1;
    }
    let trailer = trailer_line(count, fnv1a(&out));
    out.extend_from_slice(&trailer);
    out
}

fn trailer_line(count: usize, checksum: u64) -> Vec<u8> {
    format!("end {count} {checksum:016x}\n").into_bytes()
}

/// FNV-1a, 64 bits: enough to tell a damaged file from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cache file of the mailbox `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the cache file of the mailbox `dir`; `Ok(None)` if there is none.
pub(crate) fn read(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path(dir)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the cache file of the mailbox `dir` with `bytes`, atomically:
/// a temporary file in `dir`, then `rename`.
pub(crate) fn write(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(
        ".{FILE_NAME}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&temp, path(dir)));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        serialize([
            (&b"1700000000.a.host"[..], 11, Sizes { raw: 10, wire: 12 }),
            (b"odd name\nwith:bytes", 12, Sizes { raw: 0, wire: 0 }),
            (b"1700000000.a.host", 13, Sizes { raw: 5, wire: 5 }),
        ])
    }

    #[test]
    fn round_trips_any_unique_name() {
        let bytes = sample();
        let entries = parse(&bytes).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[&(&b"1700000000.a.host"[..], 11)],
            Sizes { raw: 10, wire: 12 }
        );
        assert_eq!(
            entries[&(&b"odd name\nwith:bytes"[..], 12)],
            Sizes { raw: 0, wire: 0 }
        );
        assert!(bytes.starts_with(b"berth-pop3 sizes 1\n11 10 12 17:1700000000.a.host\n"));
        assert!(parse(&serialize([])).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(parse(&bytes[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let bytes = sample();
        for at in 0..bytes.len() {
            for flip in [0x01, 0x20, 0x80] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                assert!(parse(&damaged).is_err(), "byte {at} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(parse(b"").unwrap_err(), CacheError::Header);
        assert_eq!(
            parse(b"berth-pop3 sizes 2\nend 0 0\n").unwrap_err(),
            CacheError::Header
        );
        let mut truncated = sample();
        truncated.truncate(truncated.len() - 30);
        assert!(matches!(
            parse(&truncated).unwrap_err(),
            CacheError::Truncated | CacheError::Entry(_)
        ));
        let malformed = serialize([(&b"x"[..], 1, Sizes { raw: 1, wire: 1 })]);
        let malformed = String::from_utf8(malformed)
            .unwrap()
            .replace("1 1 1 1:x", "1 1 1 2:x");
        assert_eq!(
            parse(malformed.as_bytes()).unwrap_err(),
            CacheError::Entry(1)
        );
        let implausible = serialize([(&b"x"[..], 1, Sizes { raw: 10, wire: 9 })]);
        assert_eq!(parse(&implausible).unwrap_err(), CacheError::Implausible(1));
        let twice = serialize([
            (&b"x"[..], 1, Sizes { raw: 1, wire: 1 }),
            (b"x", 1, Sizes { raw: 1, wire: 2 }),
        ]);
        assert_eq!(parse(&twice).unwrap_err(), CacheError::Duplicate(2));
        let mut miscounted = sample();
        let at = miscounted.len() - 20;
        assert_eq!(&miscounted[at..at + 2], b" 3");
        miscounted[at + 1] = b'4';
        assert_eq!(parse(&miscounted).unwrap_err(), CacheError::Checksum);
    }

    #[test]
    fn writes_atomically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), b"first").unwrap();
        write(dir.path(), &sample()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(sample()));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        // A mailbox directory that cannot be written to: an error, no mess.
        let missing = dir.path().join("no-such-mailbox");
        assert!(write(&missing, b"x").is_err());
    }
}
