//! Converting stored messages to their POP3 wire form.
//!
//! A message on disk may use LF or CRLF line endings. On the wire every line
//! ends in CRLF: a bare LF becomes CRLF, an existing CRLF is kept, and a
//! final line without any line ending gets a CRLF. This canonical form is
//! what the octet counts of `STAT`, `LIST` and `RETR` describe (RFC 1939).
//! Dot-stuffing (an extra `.` before every line that starts with `.`) and the
//! terminating `.CRLF` are added on top of it and not counted.
//!
//! Both the size count and the conversion work on a message in pieces of
//! any size (a CRLF or a leading `.` may fall on either side of a boundary),
//! so a message of any size is sent in bounded memory. Both are linear in
//! the size of the message and find line ends with `memchr`.

use std::io::{self, Read};

/// The sizes of a message file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// The file's length in octets.
    pub(crate) raw: u64,
    /// The size POP3 reports: with CRLF line ends.
    pub(crate) wire: u64,
}

/// Counts the octets of a message in canonical CRLF form, incrementally.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SizeCounter {
    raw: u64,
    total: u64,
    last: Option<u8>,
}

impl SizeCounter {
    /// Accounts for the next chunk of raw message bytes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let Some(&last) = chunk.last() else { return };
        let mut bare = 0_u64;
        for lf in memchr::memchr_iter(b'\n', chunk) {
            let before = if lf == 0 {
                self.last
            } else {
                Some(chunk[lf - 1])
            };
            if before != Some(b'\r') {
                bare += 1; // the CR inserted before a bare LF
            }
        }
        self.raw += chunk.len() as u64;
        self.total += chunk.len() as u64 + bare;
        self.last = Some(last);
    }

    /// The raw sizes and the canonical size of everything fed so far,
    /// including the CRLF appended to an unterminated final line.
    pub(crate) fn finish(self) -> Sizes {
        let wire = match self.last {
            Some(b'\n') | None => self.total,
            Some(_) => self.total + 2,
        };
        Sizes {
            raw: self.raw,
            wire,
        }
    }
}

/// The sizes of a message held in memory.
#[cfg(test)]
pub(crate) fn sizes_of(raw: &[u8]) -> Sizes {
    let mut counter = SizeCounter::default();
    counter.feed(raw);
    counter.finish()
}

/// Measures a message by streaming it from `reader`.
pub(crate) fn measure(mut reader: impl Read) -> io::Result<Sizes> {
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

/// The `TOP` limit: the header, then `remaining` more body lines.
#[derive(Debug, Clone, Copy)]
struct Top {
    in_header: bool,
    remaining: usize,
}

/// Converts a message (or, for `TOP`, its header and first body lines) to
/// the body of a multi-line response, piece by piece: [`WireEncoder::encode`]
/// takes the raw message in pieces of any size and never lets the output
/// grow past a limit; [`WireEncoder::finish`] ends the last line and adds
/// the terminating `.CRLF`.
#[derive(Debug, Clone)]
pub(crate) struct WireEncoder {
    /// The next input octet starts a line.
    at_line_start: bool,
    /// The last input octet consumed.
    prev: Option<u8>,
    /// Octets of the current line consumed so far.
    line_len: usize,
    top: Option<Top>,
    /// `TOP` has sent every line it should.
    stopped: bool,
    /// Canonical octets produced so far (without stuffing).
    canonical: u64,
}

impl WireEncoder {
    /// The room in the output below which [`WireEncoder::encode`] consumes
    /// nothing.
    pub(crate) const MIN_ROOM: usize = 4;

    /// What [`WireEncoder::finish`] may add at most.
    pub(crate) const FINISH_LEN: usize = 5;

    /// An encoder for the whole message (`RETR`).
    pub(crate) fn message() -> Self {
        WireEncoder {
            at_line_start: true,
            prev: None,
            line_len: 0,
            top: None,
            stopped: false,
            canonical: 0,
        }
    }

    /// An encoder for the header, the blank line after it, and the first
    /// `body_lines` lines of the body (`TOP`). A message without a blank
    /// line is all header and is sent whole.
    pub(crate) fn top(body_lines: usize) -> Self {
        WireEncoder {
            top: Some(Top {
                in_header: true,
                remaining: body_lines,
            }),
            ..Self::message()
        }
    }

    /// Whether `TOP` has produced every line it should: further input is
    /// not wanted.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The message's POP3 size (its canonical octets) if the input so far
    /// is all of it: what [`WireEncoder::finish`] would make it.
    pub(crate) fn final_len(&self) -> u64 {
        self.canonical + if self.at_line_start { 0 } else { 2 }
    }

    /// Converts the front of `input` into `out`, which is not let grow past
    /// `limit` octets. Returns how much of `input` was consumed: less than
    /// all of it when `out` is full (or `TOP` has stopped).
    pub(crate) fn encode(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> usize {
        let mut at = 0;
        while at < input.len() && !self.stopped {
            let mut room = limit.saturating_sub(out.len());
            if room < Self::MIN_ROOM {
                break;
            }
            if self.at_line_start {
                if let Some(top) = &mut self.top
                    && !top.in_header
                {
                    if top.remaining == 0 {
                        self.stopped = true;
                        break;
                    }
                    top.remaining -= 1;
                }
                self.at_line_start = false;
                self.line_len = 0;
                if input[at] == b'.' {
                    out.push(b'.');
                    room -= 1;
                }
            }
            // Up to the next LF, keeping room for a CR LF.
            let span = (input.len() - at).min(room - 2);
            let piece = &input[at..at + span];
            match memchr::memchr(b'\n', piece) {
                Some(lf) => {
                    out.extend_from_slice(&piece[..lf]);
                    let before = if lf == 0 {
                        self.prev
                    } else {
                        Some(piece[lf - 1])
                    };
                    if before != Some(b'\r') {
                        out.push(b'\r');
                        self.canonical += 1;
                    }
                    out.push(b'\n');
                    self.canonical += lf as u64 + 1;
                    let line_len = self.line_len + lf;
                    if let Some(top) = &mut self.top
                        && top.in_header
                    {
                        // The blank line ends the header (it is sent).
                        let blank = line_len == 0 || (line_len == 1 && before == Some(b'\r'));
                        top.in_header = !blank;
                    }
                    self.prev = Some(b'\n');
                    self.at_line_start = true;
                    at += lf + 1;
                }
                None => {
                    out.extend_from_slice(piece);
                    self.prev = piece.last().copied().or(self.prev);
                    self.line_len += span;
                    self.canonical += span as u64;
                    at += span;
                }
            }
        }
        at
    }

    /// Ends the output: a CRLF after an unterminated last line, then the
    /// terminating `.CRLF` (at most [`WireEncoder::FINISH_LEN`] octets).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
            self.canonical += 2;
            self.at_line_start = true;
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
/// Undoes the conversion: strips the terminator and the dot-stuffing.
/// `None` if `wire` is not a well-formed multi-line body.
pub(crate) fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
    let body = wire.strip_suffix(b".\r\n")?;
    if !(body.is_empty() || body.ends_with(b"\r\n")) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\r\n")?;
        if content.first() == Some(&b'.') {
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
mod tests;
