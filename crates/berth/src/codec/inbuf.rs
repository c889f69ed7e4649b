//! [`InBuf`]: the received but not yet decoded bytes of one stream.

use std::collections::VecDeque;
use std::collections::vec_deque;
use std::ops::Range;

use crate::buffer::IoBuf;

/// The unread input of a stream: a queue of received [`IoBuf`] chunks.
///
/// The network engine [`push`](InBuf::push)es each received chunk; a
/// [`Decoder`](super::Decoder) peeks at the bytes and
/// [`take`](InBuf::take)s whole frames off the front. Offsets in all methods
/// count from the first unread byte.
///
/// A chunk is packed into the previous chunk's spare room when it fits and
/// that chunk's block is not shared (see [`InBuf::push`]), so a peer that
/// trickles bytes one segment at a time cannot make the queue pin one
/// block per byte.
#[derive(Debug, Default)]
pub struct InBuf {
    chunks: VecDeque<IoBuf>,
    len: usize,
}

impl InBuf {
    /// An empty input buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a received chunk. Empty chunks are ignored.
    ///
    /// When the last queued chunk is the only view of its block and the new
    /// chunk fits in that block's spare capacity, the new bytes are copied
    /// there (a copy of the new bytes only) and the new chunk's block is
    /// released. Otherwise the chunk is queued as is, without a copy. With
    /// chunks in equal-size pool blocks that nobody else holds, this keeps
    /// any two neighbouring chunks at more than one block's worth of bytes,
    /// so roughly half or more of the memory the queue pins is data.
    pub fn push(&mut self, chunk: IoBuf) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        if let Some(tail) = self.chunks.pop_back() {
            match tail.try_into_mut() {
                Ok(mut tail) if tail.remaining() >= chunk.len() => {
                    tail.extend_from_slice(&chunk);
                    self.chunks.push_back(tail.freeze());
                    return;
                }
                Ok(tail) => self.chunks.push_back(tail.freeze()),
                Err(tail) => self.chunks.push_back(tail),
            }
        }
        self.chunks.push_back(chunk);
    }

    /// Number of unread bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no unread bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The queued chunks in order (none of them empty).
    pub fn chunks(&self) -> vec_deque::Iter<'_, IoBuf> {
        self.chunks.iter()
    }

    /// The chunks overlapping `from..`, each with the offset of its first byte.
    fn chunks_from(&self, from: usize) -> impl Iterator<Item = (usize, &IoBuf)> {
        let mut start = 0;
        self.chunks
            .iter()
            .map(move |c| {
                let at = start;
                start += c.len();
                (at, c)
            })
            .skip_while(move |(at, c)| at + c.len() <= from)
    }

    /// The byte at offset `i`, if buffered.
    pub fn get(&self, i: usize) -> Option<u8> {
        let (at, chunk) = self.chunks_from(i).next()?;
        chunk.get(i - at).copied()
    }

    /// Copy bytes starting at `offset` into `dst`, across chunks. Returns how
    /// many bytes were copied: `dst.len()` unless the input ends first.
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> usize {
        let mut copied = 0;
        for (at, chunk) in self.chunks_from(offset) {
            if copied == dst.len() {
                break;
            }
            let src = &chunk[(offset + copied - at)..];
            let n = src.len().min(dst.len() - copied);
            dst[copied..copied + n].copy_from_slice(&src[..n]);
            copied += n;
        }
        copied
    }

    /// The offset of the first `byte` at or after `from`.
    pub fn find_byte(&self, from: usize, byte: u8) -> Option<usize> {
        self.find_byte_in(from..self.len, byte)
    }

    /// The offset of the first `byte` within `range` (clamped to the
    /// buffered bytes).
    pub fn find_byte_in(&self, range: Range<usize>, byte: u8) -> Option<usize> {
        let end = range.end.min(self.len);
        if range.start >= end {
            return None;
        }
        for (at, chunk) in self.chunks_from(range.start) {
            if at >= end {
                break;
            }
            let lo = range.start.saturating_sub(at);
            let hi = (end - at).min(chunk.len());
            if let Some(i) = chunk[lo..hi].iter().position(|&b| b == byte) {
                return Some(at + lo + i);
            }
        }
        None
    }

    /// Remove and return the first `n` bytes.
    ///
    /// When they lie within the first chunk this is a zero-copy split of it;
    /// otherwise they are copied into one new, unpooled buffer.
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn take(&mut self, n: usize) -> IoBuf {
        assert!(
            n <= self.len,
            "take({n}) from an InBuf of {} bytes",
            self.len
        );
        if n == 0 {
            return IoBuf::empty();
        }
        self.len -= n;
        let Some(first) = self.chunks.front_mut() else {
            unreachable!("n > 0 bytes are buffered");
        };
        if first.len() > n {
            return first.split_to(n);
        }
        if first.len() == n {
            return self.chunks.pop_front().unwrap_or_else(IoBuf::empty);
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(chunk) = self.chunks.front_mut() else {
                unreachable!("n bytes are buffered");
            };
            let want = n - out.len();
            if chunk.len() > want {
                out.extend_from_slice(&chunk[..want]);
                chunk.advance(want);
            } else {
                out.extend_from_slice(chunk);
                self.chunks.pop_front();
            }
        }
        IoBuf::from(out)
    }

    /// Drop the first `n` bytes.
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn discard(&mut self, mut n: usize) {
        assert!(
            n <= self.len,
            "discard({n}) from an InBuf of {} bytes",
            self.len
        );
        self.len -= n;
        while n > 0 {
            let Some(chunk) = self.chunks.front_mut() else {
                unreachable!("n bytes are buffered");
            };
            if chunk.len() > n {
                chunk.advance(n);
                return;
            }
            n -= chunk.len();
            self.chunks.pop_front();
        }
    }

    /// Drop all unread bytes.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufPool;

    fn chunked(parts: &[&[u8]]) -> InBuf {
        let mut b = InBuf::new();
        for p in parts {
            b.push(IoBuf::from(p.to_vec()));
        }
        b
    }

    #[test]
    fn peeks_across_chunks() {
        let b = chunked(&[b"ab", b"", b"cde", b"f"]);
        assert_eq!(b.len(), 6);
        assert_eq!(b.chunks().count(), 3, "empty chunk ignored");
        let all: Vec<u8> = (0..6).map(|i| b.get(i).unwrap()).collect();
        assert_eq!(all, b"abcdef");
        assert_eq!(b.get(6), None);
        let mut dst = [0u8; 4];
        assert_eq!(b.copy_to(1, &mut dst), 4);
        assert_eq!(&dst, b"bcde");
        assert_eq!(b.copy_to(4, &mut dst), 2);
        assert_eq!(&dst[..2], b"ef");
        assert_eq!(b.copy_to(9, &mut dst), 0);
    }

    #[test]
    fn finds_bytes_across_chunks() {
        let b = chunked(&[b"a\n", b"bc", b"d\ne"]);
        assert_eq!(b.find_byte(0, b'\n'), Some(1));
        assert_eq!(b.find_byte(2, b'\n'), Some(5));
        assert_eq!(b.find_byte(6, b'\n'), None);
        assert_eq!(b.find_byte(99, b'\n'), None);
        assert_eq!(b.find_byte_in(2..5, b'\n'), None);
        assert_eq!(b.find_byte_in(2..6, b'\n'), Some(5));
        assert_eq!(b.find_byte_in(3..3, b'c'), None);
        assert_eq!(b.find_byte_in(3..99, b'e'), Some(6));
    }

    #[test]
    fn take_is_zero_copy_within_first_chunk() {
        let pool = BufPool::new(64, 4);
        let mut b = InBuf::new();
        pool.copy_in(b"hello world", |c| b.push(c));
        let hello = b.take(5);
        assert_eq!(&*hello, b"hello");
        // Same block: the pool has handed out one block only, still in use.
        assert_eq!(pool.stats().allocated, 1);
        assert_eq!(b.len(), 6);
        let rest = b.take(6);
        assert_eq!(&*rest, b" world");
        assert!(b.is_empty());
        assert_eq!(b.chunks().count(), 0);
        drop((hello, rest));
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn take_copies_across_chunks() {
        let mut b = chunked(&[b"ab", b"cd", b"ef"]);
        assert_eq!(&*b.take(3), b"abc");
        assert_eq!(b.len(), 3);
        assert_eq!(&*b.take(0), b"");
        assert_eq!(&*b.take(3), b"def");
        assert!(b.is_empty());
    }

    #[test]
    fn discard_and_clear() {
        let mut b = chunked(&[b"ab", b"cd", b"ef"]);
        b.discard(3);
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(0), Some(b'd'));
        b.discard(1);
        assert_eq!(b.chunks().count(), 1);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.get(0), None);
    }

    #[test]
    #[should_panic(expected = "take(3)")]
    fn take_past_end_panics() {
        chunked(&[b"ab"]).take(3);
    }

    #[test]
    fn small_chunks_are_packed_into_an_unshared_tail() {
        let pool = BufPool::new(8, 16);
        let mut b = InBuf::new();
        for &byte in b"0123456789" {
            let mut m = pool.alloc();
            m.extend_from_slice(&[byte]);
            b.push(m.freeze());
        }
        // Ten one-byte reads fit in two 8-byte blocks.
        assert_eq!(b.chunks().count(), 2);
        assert_eq!(pool.stats().in_use, 2);
        assert_eq!(&*b.take(10), b"0123456789");
    }

    #[test]
    fn shared_tail_is_not_packed() {
        let pool = BufPool::new(8, 16);
        let mut b = InBuf::new();
        let mut m = pool.alloc();
        m.extend_from_slice(b"ab");
        let first = m.freeze();
        b.push(first.clone());
        b.push(IoBuf::from(b"c".to_vec()));
        assert_eq!(b.chunks().count(), 2);
        assert_eq!(&*first, b"ab", "the shared view is untouched");
        // A tail partly taken still shares its block with the taken frame.
        let mut b = InBuf::new();
        let mut m = pool.alloc();
        m.extend_from_slice(b"xyz");
        b.push(m.freeze());
        let x = b.take(1);
        b.push(IoBuf::from(b"w".to_vec()));
        assert_eq!(b.chunks().count(), 2);
        assert_eq!((&*x, &*b.take(3)), (&b"x"[..], &b"yzw"[..]));
    }
}
