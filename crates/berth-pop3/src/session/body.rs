//! Responses whose body is produced in pieces: a message for `RETR` and
//! `TOP`, the listing of `LIST` and `UIDL`. A [`Response`](crate::Response)
//! carries the status line and, for these, a [`Body`] that
//! [`Session::fill`](crate::Session::fill) turns into wire bytes a bounded
//! piece at a time, so a 200 MB message or a 100,000 line listing never
//! has to be in memory at once.
//!
//! A body knows nothing of the session: `Session::fill` hands it the
//! messages to list, and corrects its snapshot when a streamed message
//! turns out to have changed.

use std::fs::File;
use std::io::{self, Read};

use crate::maildir::Message;
use crate::message::{Sizes, WireEncoder};

/// The file read buffer of a streamed message.
const READ_BUF: usize = 64 * 1024;

/// The longest listing line: a message number, a space, a 70-character
/// UIDL (or a size), CRLF.
const MAX_LISTING_LINE: usize = 20 + 1 + 70 + 2;

/// The least room [`Session::fill`](crate::Session::fill) works with: a smaller `limit` is
/// raised to this much beyond the output's length, so every call makes
/// progress.
pub const MIN_FILL_ROOM: usize = 128;

/// The body of a multi-line response still to be produced (see
/// [`Session::fill`](crate::Session::fill)); it ends with the terminating `.CRLF`.
#[derive(Debug)]
pub struct Body {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Message(MessageBody),
    Listing(Listing),
}

/// Whether a [`Body`] is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The output is full: send it and call
    /// [`Session::fill`](crate::Session::fill) again.
    More,
    /// The body is complete, terminator included.
    Done,
}

/// Why a [`Body`] could not be completed. Part of the response may already
/// be in the output, so the connection must end without the terminator
/// (an abortive close): the client then knows it did not get the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The message file could not be read.
    #[error("cannot read message {number}: {source}")]
    Read {
        /// The message number.
        number: usize,
        /// The error from the file system.
        #[source]
        source: io::Error,
    },
    /// The message file changed while it was sent: its size is no longer
    /// the one announced in the `+OK` line. The new size is recorded (in
    /// the session and the size cache) for the next attempt.
    #[error(
        "message {number} changed while it was sent: {announced} octets announced, {actual} read"
    )]
    Changed {
        /// The message number.
        number: usize,
        /// The size announced.
        announced: u64,
        /// The size of what was read.
        actual: u64,
    },
}

/// Why [`Body::fill`] failed: the error to report and, if a streamed
/// message changed, what the session's snapshot should now say of it.
pub(super) struct Failure {
    pub(super) error: BodyError,
    pub(super) correction: Option<Correction>,
}

/// The sizes read of a message that changed while it was sent (see
/// [`Mailbox::correct`](crate::Mailbox::correct)).
pub(super) struct Correction {
    /// The message number.
    pub(super) number: usize,
    /// Its sizes as read.
    pub(super) sizes: Sizes,
    /// Its file's inode.
    pub(super) ino: u64,
}

impl Body {
    pub(super) fn message(message: MessageBody) -> Self {
        Body {
            kind: Kind::Message(message),
        }
    }

    pub(super) fn listing(uidls: bool) -> Self {
        Body {
            kind: Kind::Listing(Listing { uidls, next: 0 }),
        }
    }
}

/// Where a message's octets come from.
enum Source {
    /// Read and converted whole before the response started: the wire
    /// form, terminator included, still to be copied out from `pos`.
    Ready { wire: Vec<u8>, pos: usize },
    /// Read as it is sent, through a buffer of [`READ_BUF`] octets; `read`
    /// counts the file's octets so far.
    File {
        file: File,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        eof: bool,
        read: u64,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ready { wire, pos } => f
                .debug_struct("Ready")
                .field("len", &wire.len())
                .field("pos", pos)
                .finish(),
            Source::File {
                start, end, eof, ..
            } => f
                .debug_struct("File")
                .field("buffered", &(end - start))
                .field("eof", eof)
                .finish(),
        }
    }
}

/// A message (or its top) being converted to wire form.
#[derive(Debug)]
pub(super) struct MessageBody {
    number: usize,
    source: Source,
    encoder: WireEncoder,
    /// The size announced in the `+OK` line, checked when the file has
    /// been read to its end (`RETR` of a streamed file).
    check: Option<u64>,
    /// The file's inode, for a correction.
    ino: u64,
}

/// How far [`MessageBody::fill`] got.
enum Step {
    More,
    Done,
    /// The whole file was read and its size is not the one announced.
    Mismatch(Sizes),
}

impl MessageBody {
    /// A message already in wire form (see [`WireEncoder`]).
    pub(super) fn ready(number: usize, wire: Vec<u8>) -> Self {
        MessageBody {
            number,
            source: Source::Ready { wire, pos: 0 },
            encoder: WireEncoder::message(),
            check: None,
            ino: 0,
        }
    }

    /// A message read from `file` as it is sent. With `check`, the file
    /// is read to its end and its size must be `check`.
    pub(super) fn file(
        number: usize,
        file: File,
        len: u64,
        ino: u64,
        encoder: WireEncoder,
        check: Option<u64>,
    ) -> Self {
        let buf_len = usize::try_from(len.saturating_add(1)).map_or(READ_BUF, |n| n.min(READ_BUF));
        MessageBody {
            number,
            source: Source::File {
                file,
                buf: vec![0; buf_len],
                start: 0,
                end: 0,
                eof: false,
                read: 0,
            },
            encoder,
            check,
            ino,
        }
    }

    fn fill(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<Step> {
        const ROOM: usize = WireEncoder::MIN_ROOM + WireEncoder::FINISH_LEN;
        loop {
            if limit.saturating_sub(out.len()) < ROOM {
                return Ok(Step::More);
            }
            let (file, buf, start, end, eof, read) = match &mut self.source {
                Source::Ready { wire, pos } => {
                    let n = (limit - out.len()).min(wire.len() - *pos);
                    out.extend_from_slice(&wire[*pos..*pos + n]);
                    *pos += n;
                    if *pos < wire.len() {
                        return Ok(Step::More);
                    }
                    // Memory goes back as soon as the body is done.
                    *wire = Vec::new();
                    *pos = 0;
                    return Ok(Step::Done);
                }
                Source::File {
                    file,
                    buf,
                    start,
                    end,
                    eof,
                    read,
                } => (file, buf, start, end, eof, read),
            };
            if start == end && !*eof {
                let n = read_some(file, buf)?;
                *read += n as u64;
                (*start, *end, *eof) = (0, n, n == 0);
            }
            out.reserve((*end - *start + ROOM).min(limit - out.len()));
            *start += self.encoder.encode(&buf[*start..*end], out, limit);
            let exhausted = *start == *end && *eof;
            if self.encoder.is_stopped() || exhausted {
                if limit - out.len() < WireEncoder::FINISH_LEN {
                    return Ok(Step::More);
                }
                if let Some(announced) = self.check {
                    let sizes = Sizes {
                        raw: *read,
                        wire: self.encoder.final_len(),
                    };
                    if sizes.wire != announced {
                        return Ok(Step::Mismatch(sizes));
                    }
                }
                self.encoder.finish(out);
                self.source = Source::Ready {
                    wire: Vec::new(),
                    pos: 0,
                };
                return Ok(Step::Done);
            }
        }
    }
}

/// Reads once into `buf`, retrying when interrupted.
pub(super) fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The lines of `LIST` or `UIDL`, from message index `next` on.
#[derive(Debug)]
struct Listing {
    uidls: bool,
    next: usize,
}

impl Listing {
    fn fill(
        &mut self,
        messages: &[Message],
        deleted: &[bool],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Fill {
        use std::io::Write as _;
        while self.next < messages.len() {
            if limit.saturating_sub(out.len()) < MAX_LISTING_LINE + 3 {
                return Fill::More;
            }
            let (message, deleted) = (&messages[self.next], deleted[self.next]);
            self.next += 1;
            if deleted {
                continue;
            }
            let _ = write!(out, "{} ", message.number());
            if self.uidls {
                out.extend_from_slice(message.uidl_bytes());
            } else {
                let _ = write!(out, "{}", message.size());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        Fill::Done
    }
}

impl Body {
    /// Produces the next piece into `out`, which it does not let grow past
    /// `limit` octets, nor past `out.len() + MIN_FILL_ROOM` if that is
    /// more (see [`Session::fill`](crate::Session::fill)). A listing lists
    /// `messages`, leaving out those `deleted` marks.
    pub(super) fn fill(
        &mut self,
        messages: &[Message],
        deleted: &[bool],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<Fill, Failure> {
        let limit = limit.max(out.len() + MIN_FILL_ROOM);
        match &mut self.kind {
            Kind::Listing(listing) => Ok(listing.fill(messages, deleted, out, limit)),
            Kind::Message(message) => match message.fill(out, limit) {
                Ok(Step::More) => Ok(Fill::More),
                Ok(Step::Done) => Ok(Fill::Done),
                Ok(Step::Mismatch(sizes)) => Err(Failure {
                    error: BodyError::Changed {
                        number: message.number,
                        announced: message.check.unwrap_or_default(),
                        actual: sizes.wire,
                    },
                    correction: Some(Correction {
                        number: message.number,
                        sizes,
                        ino: message.ino,
                    }),
                }),
                Err(source) => Err(Failure {
                    error: BodyError::Read {
                        number: message.number,
                        source,
                    },
                    correction: None,
                }),
            },
        }
    }
}
