//! [`LengthFieldCodec`]: frames that start with a length field.

use super::{Decoder, EncodeBuf, Encoder, FrameError, InBuf};
use crate::buffer::IoBuf;

/// The width of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthWidth {
    /// One byte.
    U8,
    /// Two bytes.
    U16,
    /// Four bytes.
    U32,
    /// Eight bytes.
    U64,
}

impl LengthWidth {
    /// The width in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            LengthWidth::U8 => 1,
            LengthWidth::U16 => 2,
            LengthWidth::U32 => 4,
            LengthWidth::U64 => 8,
        }
    }

    /// The largest value the field can hold.
    pub const fn max_value(self) -> u64 {
        match self {
            LengthWidth::U8 => u8::MAX as u64,
            LengthWidth::U16 => u16::MAX as u64,
            LengthWidth::U32 => u32::MAX as u64,
            LengthWidth::U64 => u64::MAX,
        }
    }
}

/// Byte order of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endian {
    /// Most significant byte first (network order).
    #[default]
    Big,
    /// Least significant byte first.
    Little,
}

/// The default [`LengthFieldBuilder::max_frame_length`]: 8 MiB.
const DEFAULT_MAX_FRAME: usize = 8 << 20;

/// Frames made of a header, which is a length field, and a payload.
///
/// The frame length is computed from the field value `v` as
/// `v + length_adjustment`, plus the header length unless the length is
/// configured to include the header. The decoder yields whole frames
/// (header included) by default, or only payloads with
/// [`LengthFieldBuilder::strip_header`]. The encoder always takes a payload
/// and writes header and payload.
///
/// A frame that lies within one received chunk is returned without a copy;
/// one spread over several chunks is copied into one buffer. Decode errors
/// are fatal: the stream's framing is lost, and decoding the same input
/// again returns the same error, so the connection should be closed.
///
/// The 1-byte "packet echo" protocol (a one-byte header holding the total
/// packet length, header included):
///
/// ```
/// use berth::{BufPool, IoBuf};
/// use berth::codec::{Decoder, EncodeBuf, Encoder, FrameError, InBuf, LengthFieldCodec, LengthWidth};
///
/// let mut codec = LengthFieldCodec::builder()
///     .width(LengthWidth::U8)
///     .length_includes_header()
///     .max_frame_length(255)
///     .build();
/// let mut input = InBuf::new();
/// input.push(IoBuf::from(&b"\x04abc\x01\x00"[..]));
/// assert_eq!(codec.decode(&mut input)?.as_deref(), Some(&b"\x04abc"[..]));
/// assert_eq!(codec.decode(&mut input)?.as_deref(), Some(&b"\x01"[..]));
/// assert!(matches!(codec.decode(&mut input), Err(FrameError::LengthBelowHeader { .. })));
///
/// let mut out = EncodeBuf::new(BufPool::new(4096, 8));
/// codec.encode(&b"abc"[..], &mut out)?;
/// assert_eq!(&*out.take()[0], b"\x04abc");
/// # Ok::<(), FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthFieldCodec {
    width: LengthWidth,
    endian: Endian,
    includes_header: bool,
    adjustment: i64,
    max_frame: usize,
    strip_header: bool,
}

impl Default for LengthFieldCodec {
    fn default() -> Self {
        LengthFieldCodec {
            width: LengthWidth::U32,
            endian: Endian::Big,
            includes_header: false,
            adjustment: 0,
            max_frame: DEFAULT_MAX_FRAME,
            strip_header: false,
        }
    }
}

/// Configures a [`LengthFieldCodec`]; see [`LengthFieldCodec::builder`].
#[derive(Debug, Clone)]
pub struct LengthFieldBuilder {
    codec: LengthFieldCodec,
}

impl LengthFieldBuilder {
    /// The field width (default [`LengthWidth::U32`]).
    pub fn width(mut self, width: LengthWidth) -> Self {
        self.codec.width = width;
        self
    }

    /// The field byte order (default [`Endian::Big`]).
    pub fn endian(mut self, endian: Endian) -> Self {
        self.codec.endian = endian;
        self
    }

    /// The field counts the header as well as the payload.
    pub fn length_includes_header(mut self) -> Self {
        self.codec.includes_header = true;
        self
    }

    /// The field counts the payload only (the default).
    pub fn length_excludes_header(mut self) -> Self {
        self.codec.includes_header = false;
        self
    }

    /// Added to the field value to get the frame length (default 0); e.g.
    /// `2` when the field leaves out a 2-byte trailer.
    pub fn length_adjustment(mut self, adjustment: i64) -> Self {
        self.codec.adjustment = adjustment;
        self
    }

    /// The largest frame, header included, that is decoded or encoded
    /// (default 8 MiB). Longer frames are [`FrameError::TooLong`].
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.codec.max_frame = max;
        self
    }

    /// Decoded items are payloads, without the header.
    pub fn strip_header(mut self) -> Self {
        self.codec.strip_header = true;
        self
    }

    /// Decoded items are whole frames, header included (the default).
    pub fn keep_header(mut self) -> Self {
        self.codec.strip_header = false;
        self
    }

    /// The configured codec.
    pub fn build(self) -> LengthFieldCodec {
        self.codec
    }
}

impl LengthFieldCodec {
    /// A codec with the defaults: 4-byte big-endian field counting the
    /// payload only, no adjustment, 8 MiB maximum, header kept.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from the defaults of [`LengthFieldCodec::new`].
    pub fn builder() -> LengthFieldBuilder {
        LengthFieldBuilder {
            codec: Self::default(),
        }
    }

    /// The length field width.
    pub fn width(&self) -> LengthWidth {
        self.width
    }

    /// The length field byte order.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Whether the length field counts the header too.
    pub fn length_includes_header(&self) -> bool {
        self.includes_header
    }

    /// What is added to the field value to get the frame length.
    pub fn length_adjustment(&self) -> i64 {
        self.adjustment
    }

    /// The header (length field) length in bytes.
    pub fn header_len(&self) -> usize {
        self.width.bytes()
    }

    /// The largest frame length, header included.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame
    }

    /// Whether decoded items have the header stripped.
    pub fn strips_header(&self) -> bool {
        self.strip_header
    }

    /// What the header adds to the field value to make the frame length.
    fn header_term(&self) -> i128 {
        if self.includes_header {
            0
        } else {
            self.header_len() as i128
        }
    }

    /// The frame length a header declares, checked against the limits.
    #[inline]
    fn frame_len(&self, value: u64) -> Result<usize, FrameError> {
        let header = self.header_len();
        let len = i128::from(value) + i128::from(self.adjustment) + self.header_term();
        if len < header as i128 {
            return Err(FrameError::LengthBelowHeader { len, header });
        }
        match usize::try_from(len) {
            Ok(n) if n <= self.max_frame => Ok(n),
            _ => Err(FrameError::TooLong {
                len: u64::try_from(len).unwrap_or(u64::MAX),
                max: self.max_frame as u64,
            }),
        }
    }

    /// The field value in `bytes` (exactly one header long). Each width
    /// has its own fixed-size load: no variable-length copy per frame.
    #[inline(always)]
    fn read_field(&self, bytes: &[u8]) -> u64 {
        fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
            let mut w = [0u8; N];
            w.copy_from_slice(&bytes[..N]);
            w
        }
        let big = self.endian == Endian::Big;
        match self.width {
            LengthWidth::U8 => u64::from(bytes[0]),
            LengthWidth::U16 if big => u64::from(u16::from_be_bytes(word(bytes))),
            LengthWidth::U16 => u64::from(u16::from_le_bytes(word(bytes))),
            LengthWidth::U32 if big => u64::from(u32::from_be_bytes(word(bytes))),
            LengthWidth::U32 => u64::from(u32::from_le_bytes(word(bytes))),
            LengthWidth::U64 if big => u64::from_be_bytes(word(bytes)),
            LengthWidth::U64 => u64::from_le_bytes(word(bytes)),
        }
    }

    /// The field value at the front of `src`, once the whole header is there.
    fn peek_field(&self, src: &InBuf) -> Option<u64> {
        let header = self.header_len();
        // Nearly always the header lies in the first chunk: read it in place.
        if let Some(first) = src.chunks().next().filter(|c| c.len() >= header) {
            return Some(self.read_field(&first[..header]));
        }
        let mut field = [0u8; 8];
        (src.copy_to(0, &mut field[..header]) == header).then(|| self.read_field(&field[..header]))
    }

    /// Check a payload length and write the header for it.
    fn put_header(&self, payload_len: usize, dst: &mut EncodeBuf) -> Result<(), FrameError> {
        let header = self.header_len();
        let frame = payload_len.saturating_add(header);
        if frame > self.max_frame {
            return Err(FrameError::TooLong {
                len: frame as u64,
                max: self.max_frame as u64,
            });
        }
        let value = frame as i128 - i128::from(self.adjustment) - self.header_term();
        let field = u64::try_from(value)
            .ok()
            .filter(|&v| v <= self.width.max_value())
            .ok_or(FrameError::FieldOverflow {
                value,
                width: header,
            })?;
        match self.endian {
            Endian::Big => dst.put_slice(&field.to_be_bytes()[8 - header..]),
            Endian::Little => dst.put_slice(&field.to_le_bytes()[..header]),
        }
        Ok(())
    }
}

impl Decoder for LengthFieldCodec {
    type Item = IoBuf;
    type Error = FrameError;

    fn decode(&mut self, src: &mut InBuf) -> Result<Option<IoBuf>, FrameError> {
        let Some(value) = self.peek_field(src) else {
            return Ok(None);
        };
        let frame_len = self.frame_len(value)?;
        if src.len() < frame_len {
            return Ok(None);
        }
        let mut frame = src.take(frame_len);
        if self.strip_header {
            frame.advance(self.header_len());
        }
        Ok(Some(frame))
    }

    /// With the header kept, a frame is its own input bytes.
    fn whole_frame_len(&self, bytes: &[u8]) -> Option<usize> {
        if self.strip_header {
            return None;
        }
        let len = self
            .frame_len(self.read_field(bytes.get(..self.header_len())?))
            .ok()?;
        (len <= bytes.len()).then_some(len)
    }
}

impl Encoder<IoBuf> for LengthFieldCodec {
    type Error = FrameError;

    /// Write the header, then queue `payload` without copying it.
    fn encode(&mut self, payload: IoBuf, dst: &mut EncodeBuf) -> Result<(), FrameError> {
        self.put_header(payload.len(), dst)?;
        dst.put_buf(payload);
        Ok(())
    }
}

impl Encoder<&[u8]> for LengthFieldCodec {
    type Error = FrameError;

    /// Write the header and a copy of `payload`.
    fn encode(&mut self, payload: &[u8], dst: &mut EncodeBuf) -> Result<(), FrameError> {
        self.put_header(payload.len(), dst)?;
        dst.put_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
