//! Converting stored messages to their POP3 wire form.
//!
//! A message on disk may use LF or CRLF line endings. On the wire every line
//! ends in CRLF: a bare LF becomes CRLF, an existing CRLF is kept, and a
//! final line without any line ending gets a CRLF. This canonical form is
//! what the octet counts of `STAT`, `LIST` and `RETR` describe (RFC 1939).
//! Dot-stuffing (an extra `.` before every line that starts with `.`) and the
//! terminating `.CRLF` are added on top of it and not counted.
//!
//! All functions here are linear in the size of the message.

use std::io::{self, Read};

/// Counts the octets of a message in canonical CRLF form, incrementally.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SizeCounter {
    total: u64,
    last: Option<u8>,
}

impl SizeCounter {
    /// Accounts for the next chunk of raw message bytes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut prev = self.last;
        for &byte in chunk {
            if byte == b'\n' && prev != Some(b'\r') {
                self.total += 1; // the CR inserted before a bare LF
            }
            prev = Some(byte);
        }
        self.total += chunk.len() as u64;
        if !chunk.is_empty() {
            self.last = prev;
        }
    }

    /// The canonical size of everything fed so far, including the CRLF
    /// appended to an unterminated final line.
    pub(crate) fn finish(self) -> u64 {
        match self.last {
            Some(b'\n') | None => self.total,
            Some(_) => self.total + 2,
        }
    }
}

/// The canonical (CRLF) size of a raw message.
#[cfg(test)]
pub(crate) fn canonical_size(raw: &[u8]) -> u64 {
    let mut counter = SizeCounter::default();
    counter.feed(raw);
    counter.finish()
}

/// Computes the canonical size of a message by streaming it from `reader`.
pub(crate) fn canonical_size_of(mut reader: impl Read) -> io::Result<u64> {
    let mut counter = SizeCounter::default();
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(counter.finish()),
            Ok(n) => counter.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Splits a raw message into lines, without their line endings.
///
/// A line ends at LF; one CR directly before the LF is part of the line
/// ending. A final segment without LF is a line only if it is non-empty, and
/// keeps all of its bytes.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let line = &rest[..lf];
                rest = &rest[lf + 1..];
                Some(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

/// Appends one line, dot-stuffed and CRLF-terminated.
fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Appends the whole message as a multi-line response body: CRLF line
/// endings, dot-stuffed, terminated by `.CRLF`.
pub(crate) fn write_message(out: &mut Vec<u8>, raw: &[u8]) {
    // Canonical size plus a little room for dot-stuffing and the terminator.
    out.reserve(raw.len() + raw.len() / 32 + 8);
    for line in lines(raw) {
        push_line(out, line);
    }
    out.extend_from_slice(b".\r\n");
}

/// Appends the header, the blank line separating it from the body, and the
/// first `body_lines` lines of the body, as a multi-line response body.
///
/// A message without a blank line is all header and is sent whole.
pub(crate) fn write_top(out: &mut Vec<u8>, raw: &[u8], body_lines: usize) {
    let mut in_header = true;
    let mut remaining = body_lines;
    for line in lines(raw) {
        if in_header {
            in_header = !line.is_empty();
        } else if remaining == 0 {
            break;
        } else {
            remaining -= 1;
        }
        push_line(out, line);
    }
    out.extend_from_slice(b".\r\n");
}

/// Undoes [`write_message`]: strips the terminator and the dot-stuffing.
/// Returns `None` if `wire` is not a well-formed multi-line body.
#[cfg(test)]
pub(crate) fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
    let body = wire.strip_suffix(b".\r\n")?;
    if !(body.is_empty() || body.ends_with(b"\r\n")) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\r\n")?;
        if content.first() == Some(&b'.') {
            // A stuffed line starts with "..": a lone "." line would have
            // ended the response, and ".x" was never stuffed.
            if content.get(1) != Some(&b'.') {
                return None;
            }
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_message(&mut out, raw);
        out
    }

    fn top(raw: &[u8], n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_top(&mut out, raw, n);
        out
    }

    #[test]
    fn converts_line_endings_and_stuffs_dots() {
        let raw = b"A: b\n\r\n.hidden\r\n..two\n.\nlast";
        let wire = message(raw);
        assert_eq!(
            wire,
            b"A: b\r\n\r\n..hidden\r\n...two\r\n..\r\nlast\r\n.\r\n".to_vec()
        );
        let canonical = b"A: b\r\n\r\n.hidden\r\n..two\r\n.\r\nlast\r\n";
        assert_eq!(unstuff(&wire).unwrap(), canonical.to_vec());
        assert_eq!(canonical_size(raw), canonical.len() as u64);
    }

    #[test]
    fn empty_message_is_just_the_terminator() {
        assert_eq!(message(b""), b".\r\n".to_vec());
        assert_eq!(canonical_size(b""), 0);
        assert_eq!(unstuff(b".\r\n").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn size_counter_agrees_across_chunk_boundaries() {
        let raw = b"a\r\nb\nc\r\r\n\n\r\nd\r";
        let expected = canonical_size(raw);
        for split in 0..=raw.len() {
            let mut counter = SizeCounter::default();
            counter.feed(&raw[..split]);
            counter.feed(&[]);
            counter.feed(&raw[split..]);
            assert_eq!(counter.finish(), expected, "split at {split}");
        }
        let wire = message(raw);
        assert_eq!(unstuff(&wire).unwrap().len() as u64, expected);
        assert_eq!(canonical_size_of(&raw[..]).unwrap(), expected);
    }

    #[test]
    fn top_sends_header_blank_line_and_n_body_lines() {
        let raw = b"Subject: x\nFrom: y\n\n1\n.2\n3\n";
        assert_eq!(top(raw, 0), b"Subject: x\r\nFrom: y\r\n\r\n.\r\n".to_vec());
        assert_eq!(
            top(raw, 2),
            b"Subject: x\r\nFrom: y\r\n\r\n1\r\n..2\r\n.\r\n".to_vec()
        );
        assert_eq!(top(raw, 99), message(raw));
    }

    #[test]
    fn top_of_a_header_only_message_is_the_whole_message() {
        let raw = b"Subject: x\r\nFrom: y\r\n";
        assert_eq!(top(raw, 0), message(raw));
    }

    #[test]
    fn unstuff_rejects_malformed_bodies() {
        assert!(unstuff(b"abc\r\n").is_none());
        assert!(unstuff(b"abc.\r\n").is_none());
        assert!(unstuff(b".abc\r\n.\r\n").is_none());
        assert!(unstuff(b"a\r\n.\r\nb\r\n.\r\n").is_none());
    }
}
