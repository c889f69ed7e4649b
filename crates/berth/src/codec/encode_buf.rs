//! [`EncodeBuf`]: where encoders write frames for a connection to send.

use std::fmt;

use crate::buffer::{BufPool, IoBuf, IoBufMut};

/// Buffers of at most this many bytes are copied by [`EncodeBuf::put_buf`]
/// when they fit in the current block, rather than sealing it.
const COPY_BUF_MAX: usize = 256;

/// An output sink of pooled buffers.
///
/// Small writes are copied into the current pooled block, which is sealed
/// and queued when full; whole buffers can be queued without a copy. The
/// queued buffers are handed to the connection in order with
/// [`EncodeBuf::drain`] (or [`EncodeBuf::take`]). After draining, the sink
/// is reused: with a warm pool, writing and draining small frames allocates
/// nothing.
pub struct EncodeBuf {
    pool: BufPool,
    /// The block being filled; may be empty.
    cur: Option<IoBufMut>,
    /// Sealed buffers, in order, none empty.
    out: Vec<IoBuf>,
    /// Bytes in `out`.
    out_len: usize,
}

impl EncodeBuf {
    /// An empty sink that takes its blocks from `pool`.
    pub fn new(pool: BufPool) -> Self {
        EncodeBuf {
            pool,
            cur: None,
            out: Vec::new(),
            out_len: 0,
        }
    }

    /// The pool blocks come from.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// Bytes written and not yet drained.
    pub fn len(&self) -> usize {
        self.out_len + self.cur.as_ref().map_or(0, |c| c.len())
    }

    /// Whether nothing is waiting to be drained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queue the current block if it holds data.
    fn seal(&mut self) {
        match self.cur.take() {
            Some(cur) if !cur.is_empty() => self.push_sealed(cur.freeze()),
            empty => self.cur = empty,
        }
    }

    fn push_sealed(&mut self, buf: IoBuf) {
        if !buf.is_empty() {
            self.out_len += buf.len();
            self.out.push(buf);
        }
    }

    /// Append a copy of `data`, filling the current block and continuing in
    /// new ones from the pool.
    pub fn put_slice(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let cur = match self.cur.take() {
                Some(cur) if cur.remaining() > 0 => cur,
                full => {
                    if let Some(full) = full {
                        self.push_sealed(full.freeze());
                    }
                    self.pool.alloc()
                }
            };
            let cur = self.cur.insert(cur);
            let n = cur.extend_from_slice(data);
            data = &data[n..];
        }
    }

    /// Append one byte.
    pub fn put_u8(&mut self, byte: u8) {
        self.put_slice(&[byte]);
    }

    /// Append `buf`, normally without copying: the current block is sealed
    /// and `buf` is queued after it.
    ///
    /// A small `buf` (at most 256 bytes) that fits in the room left in a
    /// partly filled current block is copied there instead, so that a
    /// header and a small payload share one block rather than using two.
    pub fn put_buf(&mut self, buf: IoBuf) {
        if buf.is_empty() {
            return;
        }
        if let Some(cur) = self.cur.as_mut()
            && buf.len() <= COPY_BUF_MAX
            && !cur.is_empty()
            && cur.remaining() >= buf.len()
        {
            cur.extend_from_slice(&buf);
            return;
        }
        self.seal();
        self.push_sealed(buf);
    }

    /// Hand every written buffer, in order, to `sink`, leaving the sink
    /// empty. Allocates nothing: the queue keeps its capacity.
    pub fn drain(&mut self, mut sink: impl FnMut(IoBuf)) {
        self.seal();
        self.out_len = 0;
        for buf in self.out.drain(..) {
            sink(buf);
        }
    }

    /// Take every written buffer, in order, leaving the sink empty.
    pub fn take(&mut self) -> Vec<IoBuf> {
        self.seal();
        self.out_len = 0;
        std::mem::take(&mut self.out)
    }

    /// Drop everything written and not yet drained.
    pub fn clear(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            cur.clear();
        }
        self.out.clear();
        self.out_len = 0;
    }
}

impl fmt::Debug for EncodeBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodeBuf")
            .field("len", &self.len())
            .field(
                "buffers",
                &(self.out.len() + usize::from(self.cur.is_some())),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(bufs: &[IoBuf]) -> Vec<u8> {
        bufs.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn put_slice_spills_into_new_blocks() {
        let pool = BufPool::new(4, 8);
        let mut e = EncodeBuf::new(pool.clone());
        e.put_slice(b"0123456789");
        e.put_u8(b'!');
        assert_eq!(e.len(), 11);
        let out = e.take();
        assert_eq!(out.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 4, 3]);
        assert_eq!(joined(&out), b"0123456789!");
        assert!(e.is_empty());
        drop(out);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn put_buf_queues_large_buffers_without_copy() {
        let pool = BufPool::new(1024, 8);
        let mut e = EncodeBuf::new(pool.clone());
        let payload = IoBuf::from(vec![7u8; 300]);
        e.put_slice(b"hd");
        e.put_buf(payload.clone());
        e.put_slice(b"tl");
        let out = e.take();
        assert_eq!(out.len(), 3);
        assert_eq!(&*out[0], b"hd");
        assert_eq!(out[1].as_ptr(), payload.as_ptr(), "payload not copied");
        assert_eq!(&*out[2], b"tl");
    }

    #[test]
    fn put_buf_copies_small_buffers_after_a_header() {
        let pool = BufPool::new(1024, 8);
        let mut e = EncodeBuf::new(pool.clone());
        for _ in 0..3 {
            e.put_u8(3);
            e.put_buf(IoBuf::from(&b"ab"[..]));
        }
        let out = e.take();
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0], b"\x03ab\x03ab\x03ab");
        // With nothing in the current block the buffer is queued as is.
        let small = IoBuf::from(&b"xy"[..]);
        e.put_buf(small.clone());
        e.put_buf(IoBuf::empty());
        let out = e.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ptr(), small.as_ptr());
    }

    #[test]
    fn drain_reuses_without_allocating_blocks() {
        let pool = BufPool::new(64, 8);
        let mut e = EncodeBuf::new(pool.clone());
        let mut sent = Vec::new();
        for i in 0..100u8 {
            e.put_slice(&[i, i]);
            e.drain(|b| sent.push(b));
            sent.clear(); // the "connection" finished writing
        }
        assert_eq!(pool.stats().allocated, 1);
        assert!(e.is_empty());
    }

    #[test]
    fn clear_drops_pending_output() {
        let pool = BufPool::new(4, 8);
        let mut e = EncodeBuf::new(pool.clone());
        e.put_slice(b"0123456");
        e.clear();
        assert!(e.is_empty());
        e.put_slice(b"z");
        assert_eq!(joined(&e.take()), b"z");
    }
}
