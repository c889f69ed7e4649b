//! Sans-IO framing codecs.
//!
//! A [`Decoder`] cuts frames off the front of an [`InBuf`], the received but
//! not yet decoded bytes of a stream; an [`Encoder`] writes frames into an
//! [`EncodeBuf`], which collects pooled [`IoBuf`]s for the connection to
//! send. Neither does any IO, so both are driven the same way by every
//! engine and by tests.
//!
//! Two codecs are provided:
//! - [`LengthFieldCodec`]: frames that start with a 1, 2, 4 or 8 byte length;
//! - [`LineCodec`]: lines ended by CRLF or LF.
//!
//! A decoder is used like this, after each received chunk:
//!
//! ```
//! use berth::IoBuf;
//! use berth::codec::{Decoder, InBuf, LineCodec};
//!
//! let mut codec = LineCodec::new();
//! let mut input = InBuf::new();
//! let mut lines = Vec::new();
//! for chunk in [&b"US"[..], &b"ER bob\r\nPA"[..], &b"SS x\n"[..]] {
//!     input.push(IoBuf::from(chunk));
//!     while let Some(line) = codec.decode(&mut input)? {
//!         lines.push(line);
//!     }
//! }
//! assert_eq!(lines, [IoBuf::from(&b"USER bob"[..]), IoBuf::from(&b"PASS x"[..])]);
//! # Ok::<(), berth::codec::FrameError>(())
//! ```

mod encode_buf;
mod inbuf;
mod length_field;
mod line;

#[doc(hidden)]
pub mod fuzzing;

pub use encode_buf::EncodeBuf;
pub use inbuf::InBuf;
pub use length_field::{Endian, LengthFieldBuilder, LengthFieldCodec, LengthWidth};
pub use line::{LineCodec, LineCodecBuilder, LineEnding};

#[cfg(doc)]
use crate::buffer::IoBuf;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame or line is longer than the configured maximum.
    ///
    /// `len` is the frame length (saturated to `u64::MAX`). A line decoder
    /// reports the overflow before the line has ended, so for it `len` is
    /// `max + 1`, a lower bound. Both count what the codec's maximum counts
    /// (the whole frame, or the line with its terminator).
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The (minimum) length of the offending frame.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A length field gives a frame length smaller than the header that
    /// holds it (possibly negative, after the length adjustment).
    #[error("length field gives a frame of {len} bytes, shorter than its {header}-byte header")]
    LengthBelowHeader {
        /// The computed frame length.
        len: i128,
        /// The header length in bytes.
        header: usize,
    },
    /// When encoding: the length field value a frame needs does not fit in
    /// the field (too large for its width, or negative after the length
    /// adjustment).
    #[error("length field value {value} does not fit in {width} bytes")]
    FieldOverflow {
        /// The value the field would have to hold.
        value: i128,
        /// The field width in bytes.
        width: usize,
    },
    /// When encoding a line: the line contains the terminator (or, with
    /// [`LineEnding::Lf`], ends with CR) at byte offset `at`, so it would
    /// not read back as the same single line.
    #[error("line contains a line terminator at byte {at}")]
    EmbeddedTerminator {
        /// Offset of the offending byte within the line.
        at: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes left undecoded)")]
    Truncated {
        /// How many undecoded bytes were left.
        buffered: usize,
    },
}

/// Cuts frames off the front of a stream's unread input.
pub trait Decoder {
    /// A decoded frame.
    type Item;
    /// Why decoding failed. `From<FrameError>` lets [`Decoder::decode_eof`]
    /// report a stream that ended inside a frame.
    type Error: std::error::Error + Send + Sync + 'static + From<FrameError>;

    /// Decode one frame from the front of `src`, removing its bytes.
    ///
    /// Returns `Ok(None)` when `src` does not hold a whole frame yet; call
    /// again after pushing more input. After `Ok(Some(_))` call again: more
    /// frames may be buffered. A decoder keeps per-stream state, so use one
    /// decoder per stream, always with the same `InBuf`.
    fn decode(&mut self, src: &mut InBuf) -> Result<Option<Self::Item>, Self::Error>;

    /// The length of the whole frame at the start of `bytes`, for codecs
    /// whose decoded item is exactly the bytes it was cut from (a
    /// length-prefixed frame with its header kept, say).
    ///
    /// `Some(n)`, with `0 < n <= bytes.len()`, only when `decode`, in the
    /// decoder's present state, would cut exactly the first `n` bytes of an
    /// input that starts with `bytes` as one frame. `None` when `bytes`
    /// does not begin with a whole, valid frame, while `decode` is inside a
    /// frame or skipping input, and always for codecs whose items differ
    /// from their input (the default). The framed layer uses it to hand
    /// frames that arrived back to back to
    /// [`FrameHandler::frame_run`](crate::FrameHandler::frame_run) as one
    /// buffer. It only looks: [`Decoder::decode`] still cuts every other
    /// frame and reports every error.
    fn whole_frame_len(&self, bytes: &[u8]) -> Option<usize> {
        let _ = bytes;
        None
    }

    /// Decode at the end of the stream: like [`Decoder::decode`], but bytes
    /// that do not form a whole frame are an error.
    ///
    /// The default returns [`FrameError::Truncated`] when `decode` finds no
    /// frame and bytes remain.
    fn decode_eof(&mut self, src: &mut InBuf) -> Result<Option<Self::Item>, Self::Error> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }
            .into()),
        }
    }
}

/// Writes frames into an [`EncodeBuf`].
pub trait Encoder<Item> {
    /// Why encoding failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Append `item`, framed, to `dst`. On error `dst` is left unchanged.
    fn encode(&mut self, item: Item, dst: &mut EncodeBuf) -> Result<(), Self::Error>;
}
