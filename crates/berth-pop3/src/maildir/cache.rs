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
//! end <entries> <checksum of everything before this line, 16 hex digits>
//! ```
//!
//! The unique name is counted rather than escaped, so any byte may occur in
//! it. Entries are in snapshot order (delivery time, unique name, then
//! inode), so a login walks the cache and the sorted listing side by side
//! instead of hashing ten thousand names; a file out of order is damaged.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::name::{plausible, sort_key};
use crate::message::Sizes;

/// The cache's file name in the mailbox directory.
pub const FILE_NAME: &str = "berth-pop3-sizes";

/// The first line: the format and its version.
const MAGIC: &[u8] = b"berth-pop3 sizes 1\n";

/// One entry of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// The unique part of the file name.
    pub(crate) unique: &'a [u8],
    /// The file's inode.
    pub(crate) ino: u64,
    /// Its sizes.
    pub(crate) sizes: Sizes,
}

impl Entry<'_> {
    /// Where the entry sorts: as the snapshot sorts messages (delivery
    /// time, then unique name), then by inode.
    pub(crate) fn order(&self) -> (u64, &[u8], u64) {
        (sort_key(self.unique), self.unique, self.ino)
    }
}

/// A word-at-a-time multiply-rotate hash (as rustc's `FxHasher`) with
/// MurmurHash3's finalizer: the cache's checksum, cheap enough for a file
/// of a megabyte at every login.
#[derive(Default)]
struct FastHash(u64);

impl FastHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn of(bytes: &[u8]) -> u64 {
        let mut hash = FastHash::default();
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            hash.add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let mut last = [0_u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        hash.add(u64::from_le_bytes(last));
        hash.add(bytes.len() as u64);
        let mut h = hash.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

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
    /// Entry `n` does not sort after the one before it (or repeats it).
    #[error("entry {0} is out of order")]
    Order(usize),
    /// No `end` line: the file was cut short.
    #[error("the end line is missing (truncated?)")]
    Truncated,
    /// The `end` line does not match what precedes it.
    #[error("the end line does not match the entries (corrupt)")]
    Checksum,
}

/// Parses a cache file: its entries, in order.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Entry<'_>>, CacheError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(CacheError::Header)?;
    // The end line first: a damaged file is rejected before any entry is
    // believed.
    let end = body
        .strip_suffix(b"\n")
        .and_then(|b| {
            b.iter()
                .rposition(|&c| c == b'\n')
                .map(|i| i + 1)
                .or(Some(0))
        })
        .filter(|&i| body[i..].starts_with(b"end "))
        .ok_or(CacheError::Truncated)?;
    let split = bytes.len() - body.len() + end;
    let (mut rest, trailer) = (&bytes[MAGIC.len()..split], &bytes[split..]);
    let checksum = FastHash::of(&bytes[..split]);
    let mut entries = Vec::with_capacity(rest.len() / 48);
    while !rest.is_empty() {
        let n = entries.len() + 1;
        let (entry, tail) = entry(rest).ok_or(CacheError::Entry(n))?;
        if !plausible(entry.sizes.raw, entry.sizes.wire) {
            return Err(CacheError::Implausible(n));
        }
        if let Some(prev) = entries.last()
            && Entry::order(prev) >= entry.order()
        {
            return Err(CacheError::Order(n));
        }
        entries.push(entry);
        rest = tail;
    }
    if trailer != trailer_line(entries.len(), checksum) {
        return Err(CacheError::Checksum);
    }
    Ok(entries)
}

/// One entry line: `ino raw wire len:unique\n`; returns the rest.
fn entry(line: &[u8]) -> Option<(Entry<'_>, &[u8])> {
    let (ino, rest) = number(line, b' ')?;
    let (raw, rest) = number(rest, b' ')?;
    let (wire, rest) = number(rest, b' ')?;
    let (len, rest) = number(rest, b':')?;
    let len = usize::try_from(len).ok()?;
    if len == 0 || rest.len() <= len || rest[len] != b'\n' {
        return None;
    }
    let entry = Entry {
        unique: &rest[..len],
        ino,
        sizes: Sizes { raw, wire },
    };
    Some((entry, &rest[len + 1..]))
}

/// A decimal number ended by `end`; returns it and what follows `end`.
fn number(bytes: &[u8], end: u8) -> Option<(u64, &[u8])> {
    let mut value = 0_u64;
    for (i, &b) in bytes.iter().enumerate() {
        if b == end && i > 0 {
            return Some((value, &bytes[i + 1..]));
        }
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    None
}

/// The cache file for `entries`, which must be in order (see
/// [`Entry::order`]) and distinct.
pub(crate) fn serialize<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut count = 0;
    for Entry { unique, ino, sizes } in entries {
        let _ = write!(out, "{ino} {} {} {}:", sizes.raw, sizes.wire, unique.len());
        out.extend_from_slice(unique);
        out.push(b'\n');
        count += 1;
    }
    let trailer = trailer_line(count, FastHash::of(&out));
    out.extend_from_slice(&trailer);
    out
}

fn trailer_line(count: usize, checksum: u64) -> Vec<u8> {
    format!("end {count} {checksum:016x}\n").into_bytes()
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
mod tests;
