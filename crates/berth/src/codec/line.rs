//! [`LineCodec`]: lines ended by CRLF or LF.

use super::{Decoder, EncodeBuf, Encoder, FrameError, InBuf};
use crate::buffer::IoBuf;

/// How lines end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// Lines end with CR LF. A CR or LF on its own is part of the line.
    /// The encoder appends CR LF.
    Crlf,
    /// Lines end with LF, and a CR just before it is dropped too, so both
    /// LF and CR LF end a line. A CR elsewhere is part of the line. The
    /// encoder appends LF.
    #[default]
    Lf,
}

impl LineEnding {
    /// The terminator the encoder appends.
    pub const fn terminator(self) -> &'static [u8] {
        match self {
            LineEnding::Crlf => b"\r\n",
            LineEnding::Lf => b"\n",
        }
    }
}

/// The default [`LineCodecBuilder::max_line_length`]: 64 KiB.
const DEFAULT_MAX_LINE: usize = 64 << 10;

/// Lines of bytes, ended by CR LF or LF (see [`LineEnding`]).
///
/// Decoded items are the lines without their terminator: a line within one
/// received chunk is returned without a copy. The maximum line length counts
/// the terminator as received (2 bytes for CR LF, 1 for a bare LF), so POP3's
/// "at most 255 octets including CRLF" is `max_line_length(255)`.
///
/// An overlong line fails fast: as soon as `max` bytes are buffered without
/// a terminator that would keep the line within `max`, `decode` returns
/// [`FrameError::TooLong`] once. The decoder then drops input up to and
/// including the next terminator and carries on with the line after it, so
/// the caller may report the error and keep decoding.
///
/// The encoder appends the terminator and checks the same maximum.
///
/// Each call scans only bytes it has not scanned before, so a long line
/// arriving in many chunks costs time linear in its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCodec {
    ending: LineEnding,
    max: usize,
    /// Bytes at the front of the input known to hold no terminator.
    scanned: usize,
    /// Dropping the rest of an overlong line.
    discarding: bool,
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec {
            ending: LineEnding::default(),
            max: DEFAULT_MAX_LINE,
            scanned: 0,
            discarding: false,
        }
    }
}

/// Configures a [`LineCodec`]; see [`LineCodec::builder`].
#[derive(Debug, Clone)]
pub struct LineCodecBuilder {
    codec: LineCodec,
}

impl LineCodecBuilder {
    /// How lines end (default [`LineEnding::Lf`], which also accepts CR LF).
    pub fn ending(mut self, ending: LineEnding) -> Self {
        self.codec.ending = ending;
        self
    }

    /// The longest line, terminator included (default 64 KiB). Values below
    /// 1 are raised to 1.
    pub fn max_line_length(mut self, max: usize) -> Self {
        self.codec.max = max.max(1);
        self
    }

    /// The configured codec.
    pub fn build(self) -> LineCodec {
        self.codec
    }
}

impl LineCodec {
    /// A codec with the defaults: [`LineEnding::Lf`] (LF or CR LF), lines of
    /// at most 64 KiB including the terminator.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from the defaults of [`LineCodec::new`].
    pub fn builder() -> LineCodecBuilder {
        LineCodecBuilder {
            codec: Self::default(),
        }
    }

    /// How lines end.
    pub fn ending(&self) -> LineEnding {
        self.ending
    }

    /// The longest line, terminator included.
    pub fn max_line_length(&self) -> usize {
        self.max
    }

    /// Forget the decoding state, to start on a new stream.
    pub fn reset(&mut self) {
        self.scanned = 0;
        self.discarding = false;
    }

    /// The offset of the LF of the first terminator whose LF lies in
    /// `from..end`.
    fn find_terminator(&self, src: &InBuf, from: usize, end: usize) -> Option<usize> {
        let mut at = from;
        while let Some(lf) = src.find_byte_in(at..end, b'\n') {
            match self.ending {
                LineEnding::Lf => return Some(lf),
                LineEnding::Crlf if lf > 0 && src.get(lf - 1) == Some(b'\r') => return Some(lf),
                LineEnding::Crlf => at = lf + 1,
            }
        }
        None
    }

    /// How many of the first `n` bytes can be dropped while looking for a
    /// terminator: all but a final CR that may start a CR LF.
    fn droppable(&self, src: &InBuf, n: usize) -> usize {
        match self.ending {
            LineEnding::Crlf if n > 0 && src.get(n - 1) == Some(b'\r') => n - 1,
            _ => n,
        }
    }

    /// Drop the rest of an overlong line. Returns whether its terminator
    /// was found (and dropped).
    fn skip_overlong(&mut self, src: &mut InBuf) -> bool {
        match self.find_terminator(src, 0, src.len()) {
            Some(lf) => {
                src.discard(lf + 1);
                self.discarding = false;
                true
            }
            None => {
                src.discard(self.droppable(src, src.len()));
                false
            }
        }
    }

    /// Check that `line` reads back as itself once the terminator is added.
    fn check_line(&self, line: &[u8]) -> Result<(), FrameError> {
        let len = line.len().saturating_add(self.ending.terminator().len());
        if len > self.max {
            return Err(FrameError::TooLong {
                len: len as u64,
                max: self.max as u64,
            });
        }
        let bad = match self.ending {
            LineEnding::Crlf => line.windows(2).position(|w| w == b"\r\n"),
            LineEnding::Lf => line
                .iter()
                .position(|&b| b == b'\n')
                .or_else(|| line.ends_with(b"\r").then(|| line.len() - 1)),
        };
        match bad {
            Some(at) => Err(FrameError::EmbeddedTerminator { at }),
            None => Ok(()),
        }
    }
}

impl Decoder for LineCodec {
    type Item = IoBuf;
    type Error = FrameError;

    fn decode(&mut self, src: &mut InBuf) -> Result<Option<IoBuf>, FrameError> {
        if self.discarding && !self.skip_overlong(src) {
            return Ok(None);
        }
        // A terminator must end within the first `max` bytes.
        let limit = src.len().min(self.max);
        let from = self.scanned.min(limit);
        if let Some(lf) = self.find_terminator(src, from, limit) {
            self.scanned = 0;
            let mut line = src.take(lf + 1);
            let cr = lf > 0 && line[lf - 1] == b'\r';
            line.truncate(if cr { lf - 1 } else { lf });
            debug_assert!(cr || self.ending == LineEnding::Lf);
            return Ok(Some(line));
        }
        if src.len() < self.max {
            self.scanned = limit;
            return Ok(None);
        }
        self.scanned = 0;
        self.discarding = true;
        src.discard(self.droppable(src, limit));
        Err(FrameError::TooLong {
            len: self.max as u64 + 1,
            max: self.max as u64,
        })
    }

    /// Like [`Decoder::decode`]; then bytes left without a terminator are
    /// [`FrameError::Truncated`], except the rest of an overlong line
    /// already reported, which is dropped.
    fn decode_eof(&mut self, src: &mut InBuf) -> Result<Option<IoBuf>, FrameError> {
        match self.decode(src)? {
            Some(line) => Ok(Some(line)),
            None if self.discarding => {
                src.clear();
                Ok(None)
            }
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<&[u8]> for LineCodec {
    type Error = FrameError;

    /// Write a copy of `line` and the terminator.
    fn encode(&mut self, line: &[u8], dst: &mut EncodeBuf) -> Result<(), FrameError> {
        self.check_line(line)?;
        dst.put_slice(line);
        dst.put_slice(self.ending.terminator());
        Ok(())
    }
}

impl Encoder<&str> for LineCodec {
    type Error = FrameError;

    /// Write a copy of `line` and the terminator.
    fn encode(&mut self, line: &str, dst: &mut EncodeBuf) -> Result<(), FrameError> {
        self.encode(line.as_bytes(), dst)
    }
}

impl Encoder<IoBuf> for LineCodec {
    type Error = FrameError;

    /// Queue `line` (see [`EncodeBuf::put_buf`]) and write the terminator.
    fn encode(&mut self, line: IoBuf, dst: &mut EncodeBuf) -> Result<(), FrameError> {
        self.check_line(&line)?;
        dst.put_buf(line);
        dst.put_slice(self.ending.terminator());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
