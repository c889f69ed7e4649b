//! The buffers a pool hands out: an `IoBufMut` while it is filled, then
//! `IoBuf` views of it, cheap to clone, slice and split.

use std::fmt;
use std::ops::{Bound, Deref, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::cache::{ThreadCache, recycle, with_cache};
use super::pool::{Block, BlockRef, BufPool};

impl BufPool {
    /// An empty writable buffer, from the pool when one is free.
    pub fn alloc(&self) -> IoBufMut {
        let cached = with_cache(Arc::as_ptr(&self.shared), ThreadCache::pop).flatten();
        let reused = cached.or_else(|| self.shared.free_list().pop());
        let block = match reused {
            Some(block) => block,
            None => {
                self.shared.allocated.fetch_add(1, Ordering::Relaxed);
                BlockRef::new(Block::aligned(
                    self.shared.buf_size,
                    Arc::downgrade(&self.shared),
                ))
            }
        };
        IoBufMut {
            block: Some(block),
            len: 0,
        }
    }

    /// Copy `data` into pooled buffers, calling `sink` with each filled one
    /// in order. Returns how many buffers were produced.
    pub fn copy_in(&self, mut data: &[u8], mut sink: impl FnMut(IoBuf)) -> usize {
        let mut n = 0;
        while !data.is_empty() {
            let mut buf = self.alloc();
            let took = buf.extend_from_slice(data);
            data = &data[took..];
            sink(buf.freeze());
            n += 1;
        }
        n
    }
}

/// A uniquely owned buffer being filled: bytes `0..len()` are data, the rest
/// is spare capacity.
pub struct IoBufMut {
    /// Always `Some` (and unique) until frozen or dropped.
    block: Option<BlockRef>,
    len: usize,
}

impl IoBufMut {
    fn block(&self) -> &Block {
        self.block
            .as_deref()
            .expect("IoBufMut holds its block until dropped")
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let block = self.block.as_mut().and_then(BlockRef::get_mut);
        // An IoBufMut is only built from a unique block and is never cloned.
        block.expect("IoBufMut block is uniquely owned").bytes_mut()
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.block().bytes().len()
    }

    /// Bytes of spare capacity after the data.
    pub fn remaining(&self) -> usize {
        self.capacity() - self.len
    }

    /// The spare capacity, to be filled and then committed with [`IoBufMut::advance`].
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.data_mut()[len..]
    }

    /// Mark `n` more bytes of the spare capacity as data.
    ///
    /// # Panics
    /// If `n` exceeds [`IoBufMut::remaining`].
    pub fn advance(&mut self, n: usize) {
        assert!(n <= self.remaining(), "advance past capacity");
        self.len += n;
    }

    /// Append as much of `data` as fits; returns how many bytes were copied.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.remaining());
        self.spare_mut()[..n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// Forget the data, keeping the block.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The data as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.data_mut()[..len]
    }

    /// Turn into an immutable, shareable buffer.
    pub fn freeze(mut self) -> IoBuf {
        IoBuf {
            len: self.len,
            block: self.block.take(),
            off: 0,
        }
    }
}

impl Deref for IoBufMut {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.block().bytes()[..self.len]
    }
}

impl Drop for IoBufMut {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            recycle(block);
        }
    }
}

impl fmt::Debug for IoBufMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoBufMut")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// An immutable view of (part of) a block: cheap to clone, slice and split.
///
/// The block returns to its pool when its last view is dropped.
pub struct IoBuf {
    /// Always `Some` until dropped.
    block: Option<BlockRef>,
    off: usize,
    len: usize,
}

impl IoBuf {
    /// An empty buffer that owns no block.
    pub fn empty() -> Self {
        IoBuf {
            block: None,
            off: 0,
            len: 0,
        }
    }

    /// Number of bytes in view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bounds(&self, range: impl RangeBounds<usize>) -> (usize, usize) {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e + 1,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        assert!(
            start <= end && end <= self.len,
            "range {start}..{end} out of bounds for IoBuf of length {}",
            self.len
        );
        (start, end)
    }

    /// A new view of `range` within this one, sharing the block.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> IoBuf {
        let (start, end) = self.bounds(range);
        IoBuf {
            block: self.block.clone(),
            off: self.off + start,
            len: end - start,
        }
    }

    /// Split off and return the first `at` bytes; `self` keeps the rest
    /// (the seed's `SplitBuffer`, without a copy).
    ///
    /// # Panics
    /// If `at > len()`.
    pub fn split_to(&mut self, at: usize) -> IoBuf {
        let head = self.slice(..at);
        self.off += at;
        self.len -= at;
        head
    }

    /// Split off and return the bytes from `at`; `self` keeps the first `at`.
    ///
    /// # Panics
    /// If `at > len()`.
    pub fn split_off(&mut self, at: usize) -> IoBuf {
        let tail = self.slice(at..);
        self.len = at;
        tail
    }

    /// Drop the first `n` bytes from the view.
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn advance(&mut self, n: usize) {
        assert!(n <= self.len, "advance past end of IoBuf");
        self.off += n;
        self.len -= n;
    }

    /// Shorten the view to `len` bytes (no effect if already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Append `next` to this view without copying, if `next` starts exactly
    /// where this view ends in the same block (as consecutive frames split
    /// from one received buffer do). Returns whether it was appended.
    pub fn try_append(&mut self, next: &IoBuf) -> bool {
        let same = match (&self.block, &next.block) {
            (Some(a), Some(b)) => BlockRef::ptr_eq(a, b),
            _ => false,
        };
        if same && self.off + self.len == next.off {
            self.len += next.len;
            true
        } else {
            false
        }
    }

    /// Turn back into a writable buffer when this is the only view of its
    /// block: the data moves to the front of the block (as the seed's
    /// read-into-the-same-buffer does), leaving the rest as spare capacity.
    /// Otherwise the view is returned unchanged.
    pub fn try_into_mut(mut self) -> Result<IoBufMut, IoBuf> {
        let unique = match self.block.as_mut() {
            Some(block) => BlockRef::get_mut(block).is_some(),
            None => false,
        };
        if !unique {
            return Err(self);
        }
        let (off, len) = (self.off, self.len);
        let mut buf = IoBufMut {
            block: self.block.take(),
            len,
        };
        if off > 0 {
            buf.data_mut().copy_within(off..off + len, 0);
        }
        Ok(buf)
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.block {
            Some(block) => &block.bytes()[self.off..self.off + self.len],
            None => &[],
        }
    }
}

impl AsRef<[u8]> for IoBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Clone for IoBuf {
    fn clone(&self) -> Self {
        IoBuf {
            block: self.block.clone(),
            off: self.off,
            len: self.len,
        }
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            recycle(block);
        }
    }
}

impl From<Vec<u8>> for IoBuf {
    /// An unpooled buffer owning `v` (no copy beyond shrinking to fit).
    fn from(v: Vec<u8>) -> Self {
        let len = v.len();
        IoBuf {
            block: Some(BlockRef::new(Block {
                data: v.into_boxed_slice(),
                start: 0,
                end: len,
                pool: None,
            })),
            off: 0,
            len,
        }
    }
}

impl From<&[u8]> for IoBuf {
    fn from(v: &[u8]) -> Self {
        IoBuf::from(v.to_vec())
    }
}

impl PartialEq for IoBuf {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for IoBuf {}

impl fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoBuf").field("len", &self.len).finish()
    }
}
