//! The pool: blocks, the shared free list, and the counters.
//!
//! The fields and methods marked `pub(super)` are for `cache.rs`, `view.rs`
//! and the tests: visible inside `buffer` only, as when it was one file.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, Weak};

use crate::sync::{Mutex, MutexGuard};

/// Where a pooled block's bytes start: a cache line boundary. The kernel
/// copies received bytes with `rep movsb`, which on common x86 cores runs
/// markedly slower into a destination that is not cache-line aligned (the
/// allocator's 16-byte alignment is not enough).
const BLOCK_ALIGN: usize = 64;

/// A reference to a block: its count is the views' (and the free lists')
/// count of the block, the one model-checked under loom (`crate::sync`).
/// The pool itself is a `std` `Arc`, for its `Weak`.
pub(super) type BlockRef = crate::sync::Arc<Block>;

/// One block of memory, pooled or not.
pub(super) struct Block {
    /// The allocation; the block's bytes are `data[start..end]`.
    pub(super) data: Box<[u8]>,
    pub(super) start: usize,
    pub(super) end: usize,
    /// The pool the block returns to; `None` for blocks made from a `Vec`.
    /// Weak, because the pool's free list holds blocks: a strong reference
    /// would keep a dropped pool (and its blocks) alive forever.
    pub(super) pool: Option<Weak<PoolShared>>,
}

impl Block {
    /// A zeroed block of `size` bytes starting on a [`BLOCK_ALIGN`] boundary.
    pub(super) fn aligned(size: usize, pool: Weak<PoolShared>) -> Block {
        let data = vec![0u8; size + BLOCK_ALIGN - 1].into_boxed_slice();
        let start = data.as_ptr().align_offset(BLOCK_ALIGN).min(BLOCK_ALIGN - 1);
        Block {
            data,
            start,
            end: start + size,
            pool: Some(pool),
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.as_ref().and_then(Weak::upgrade) {
            pool.allocated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub(super) struct PoolShared {
    pub(super) buf_size: usize,
    pub(super) max_pooled: usize,
    /// Free blocks, most recently freed last. The lock is held only for a
    /// push or a pop (never while a block is allocated or freed; the list
    /// itself is allocated up front), and IO threads rarely meet there.
    free: Mutex<Vec<BlockRef>>,
    pub(super) allocated: AtomicUsize,
    /// Slots of `max_pooled` leased to thread caches; the shared list keeps
    /// at most `max_pooled - leased`. Changed under the `caches` lock.
    pub(super) leased: AtomicUsize,
    /// How many blocks each bound thread cache holds, for `stats`.
    caches: Mutex<Vec<Arc<AtomicUsize>>>,
}

impl PoolShared {
    pub(super) fn free_list(&self) -> MutexGuard<'_, Vec<BlockRef>> {
        // Nothing panics while the lock is held; a poisoned list is still whole.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn cache_list(&self) -> MutexGuard<'_, Vec<Arc<AtomicUsize>>> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many blocks the shared free list may keep.
    pub(super) fn shared_cap(&self) -> usize {
        self.max_pooled
            .saturating_sub(self.leased.load(Ordering::Relaxed))
    }

    /// Keep `blocks` (oldest first) in the shared free list while it has
    /// room; the rest are freed, after the unlock.
    pub(super) fn keep(&self, blocks: impl Iterator<Item = BlockRef>) {
        let mut rest = Vec::new();
        {
            let mut free = self.free_list();
            let cap = self.shared_cap();
            for block in blocks {
                if free.len() < cap {
                    free.push(block);
                } else {
                    rest.push(block);
                }
            }
        }
        drop(rest);
    }
}

/// A pool of fixed-size IO buffers.
///
/// Cloning a pool is cheap; clones share the same blocks and counters.
#[derive(Clone)]
pub struct BufPool {
    pub(super) shared: Arc<PoolShared>,
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Blocks that exist now (pooled plus in use).
    pub allocated: usize,
    /// Blocks waiting in the pool for reuse.
    pub pooled: usize,
    /// Blocks held by buffers, queues, or the engine.
    pub in_use: usize,
}

impl BufPool {
    // The other methods live beside what they touch, so the files depend
    // one way (pool <- cache <- view): `bind_thread_cache` in `cache.rs`;
    // `alloc` and `copy_in`, which hand out buffers, in `view.rs`.

    /// A pool of `buf_size`-byte blocks that keeps at most `max_pooled` free blocks.
    ///
    /// `buf_size` is raised to at least 1 and `max_pooled` to at least 1.
    pub fn new(buf_size: usize, max_pooled: usize) -> Self {
        BufPool {
            shared: Arc::new(PoolShared {
                buf_size: buf_size.max(1),
                max_pooled: max_pooled.max(1),
                free: Mutex::new(Vec::with_capacity(max_pooled.clamp(1, 1 << 16))),
                allocated: AtomicUsize::new(0),
                leased: AtomicUsize::new(0),
                caches: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The size of every block in this pool.
    pub fn buf_size(&self) -> usize {
        self.shared.buf_size
    }

    /// The pool's counters now.
    pub fn stats(&self) -> PoolStats {
        let allocated = self.shared.allocated.load(Ordering::Relaxed);
        let cached: usize = (self.shared.cache_list().iter())
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let pooled = self.shared.free_list().len() + cached;
        PoolStats {
            allocated,
            pooled,
            in_use: allocated.saturating_sub(pooled),
        }
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("buf_size", &self.shared.buf_size)
            .field("stats", &self.stats())
            .finish()
    }
}
