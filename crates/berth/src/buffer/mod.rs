//! Pooled, reference-counted IO buffers (the seed's `CIOBuffer` and its allocator).
//!
//! A [`BufPool`] hands out fixed-size blocks. A block being filled is an
//! [`IoBufMut`] (uniquely owned, writable); once filled it is frozen into an
//! [`IoBuf`], an immutable view that is cheap to clone, slice and split.
//! When the last view of a block is dropped the block goes back to its pool,
//! unless the pool already keeps its configured maximum, in which case the
//! memory is freed.
//!
//! The implementation is safe Rust: a block is an `Arc`, and the pool keeps
//! the `Arc` itself, so a warm pool allocates nothing per message.
//!
//! The free list is a stack: `alloc` hands out the block freed last, whose
//! bytes are most likely still in the CPU's cache. A receive into a cold
//! block costs a cache miss per line on top of the copy itself; with a queue
//! every block would wait behind all the others and come back cold.
//!
//! In front of the shared, locked free list, each IO thread keeps a small
//! stack of its own (Netty's `PoolThreadCache`): a block freed and allocated
//! again on that thread, as most receive buffers are, takes no lock and
//! touches no counter another thread writes. Those blocks count against the
//! pool's `max_pooled` through a lease the thread takes when it binds its
//! cache (`BufPool::bind_thread_cache`), so the pool's bound still holds.

mod view;

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

pub use view::{IoBuf, IoBufMut};

/// Where a pooled block's bytes start: a cache line boundary. The kernel
/// copies received bytes with `rep movsb`, which on common x86 cores runs
/// markedly slower into a destination that is not cache-line aligned (the
/// allocator's 16-byte alignment is not enough).
const BLOCK_ALIGN: usize = 64;

/// One block of memory, pooled or not.
struct Block {
    /// The allocation; the block's bytes are `data[start..end]`.
    data: Box<[u8]>,
    start: usize,
    end: usize,
    /// The pool the block returns to; `None` for blocks made from a `Vec`.
    /// Weak, because the pool's free list holds blocks: a strong reference
    /// would keep a dropped pool (and its blocks) alive forever.
    pool: Option<Weak<PoolShared>>,
}

impl Block {
    /// A zeroed block of `size` bytes starting on a [`BLOCK_ALIGN`] boundary.
    fn aligned(size: usize, pool: Weak<PoolShared>) -> Block {
        let data = vec![0u8; size + BLOCK_ALIGN - 1].into_boxed_slice();
        let start = data.as_ptr().align_offset(BLOCK_ALIGN).min(BLOCK_ALIGN - 1);
        Block {
            data,
            start,
            end: start + size,
            pool: Some(pool),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
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

struct PoolShared {
    buf_size: usize,
    max_pooled: usize,
    /// Free blocks, most recently freed last. The lock is held only for a
    /// push or a pop (never while a block is allocated or freed; the list
    /// itself is allocated up front), and IO threads rarely meet there.
    free: Mutex<Vec<Arc<Block>>>,
    allocated: AtomicUsize,
    /// Slots of `max_pooled` leased to thread caches; the shared list keeps
    /// at most `max_pooled - leased`. Changed under the `caches` lock.
    leased: AtomicUsize,
    /// How many blocks each bound thread cache holds, for `stats`.
    caches: Mutex<Vec<Arc<AtomicUsize>>>,
}

impl PoolShared {
    fn free_list(&self) -> MutexGuard<'_, Vec<Arc<Block>>> {
        // Nothing panics while the lock is held; a poisoned list is still whole.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_list(&self) -> MutexGuard<'_, Vec<Arc<AtomicUsize>>> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many blocks the shared free list may keep.
    fn shared_cap(&self) -> usize {
        self.max_pooled
            .saturating_sub(self.leased.load(Ordering::Relaxed))
    }

    /// Keep `blocks` (oldest first) in the shared free list while it has
    /// room; the rest are freed, after the unlock.
    fn keep(&self, blocks: impl Iterator<Item = Arc<Block>>) {
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

/// The most blocks one thread's cache holds.
const THREAD_CACHE_MAX: usize = 128;

/// An IO thread's own stack of free blocks of one pool, most recently freed
/// last. Only its thread touches it.
struct ThreadCache {
    pool: Arc<PoolShared>,
    blocks: Vec<Arc<Block>>,
    /// The slots of the pool's `max_pooled` this cache may fill.
    lease: usize,
    /// `blocks.len()` for `stats` on other threads (stored by this thread only).
    published: Arc<AtomicUsize>,
}

impl ThreadCache {
    fn serves(&self, pool: *const PoolShared) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.pool), pool)
    }

    fn publish(&self) {
        self.published.store(self.blocks.len(), Ordering::Relaxed);
    }

    fn pop(&mut self) -> Option<Arc<Block>> {
        let block = self.blocks.pop()?;
        self.publish();
        Some(block)
    }

    /// Push a freed block. A full cache first hands its older half to the
    /// shared list, so the blocks freed last stay on top.
    fn push(&mut self, block: Arc<Block>) {
        if self.blocks.len() >= self.lease {
            let half = self.blocks.len().div_ceil(2);
            // Published first, so `stats` never counts a block twice.
            self.published
                .store(self.blocks.len() - half, Ordering::Relaxed);
            self.pool.keep(self.blocks.drain(..half));
        }
        self.blocks.push(block);
        self.publish();
    }
}

impl Drop for ThreadCache {
    /// Unbind: give the lease back, then the blocks to the shared list.
    fn drop(&mut self) {
        {
            let mut caches = self.pool.cache_list();
            caches.retain(|c| !Arc::ptr_eq(c, &self.published));
            self.pool.leased.fetch_sub(self.lease, Ordering::Relaxed);
        }
        self.pool.keep(self.blocks.drain(..));
    }
}

thread_local! {
    static CACHE: RefCell<Option<ThreadCache>> = const { RefCell::new(None) };
}

/// Run `f` on this thread's cache if it serves `pool` (and is not in use).
fn with_cache<R>(pool: *const PoolShared, f: impl FnOnce(&mut ThreadCache) -> R) -> Option<R> {
    CACHE
        .try_with(|cell| {
            let mut cache = cell.try_borrow_mut().ok()?;
            cache.as_mut().filter(|c| c.serves(pool)).map(f)
        })
        .ok()
        .flatten()
}

/// Keeps the calling thread's block cache bound to a pool; dropping it (on
/// the same thread) unbinds the cache and returns its blocks to the pool.
#[must_use = "the cache is unbound when the guard is dropped"]
pub(crate) struct ThreadCacheGuard {
    bound: bool,
    /// Bound to the thread whose cache it holds.
    _thread: PhantomData<*const ()>,
}

impl Drop for ThreadCacheGuard {
    fn drop(&mut self) {
        if self.bound {
            let cache = CACHE.try_with(|cell| cell.borrow_mut().take());
            drop(cache); // unbinds (`ThreadCache::drop`), outside the borrow
        }
    }
}

/// Return a uniquely owned block to its pool (or free it).
fn recycle(mut block: Arc<Block>) {
    // Most drops are of one view among several (a frame cut from a read):
    // a plain load settles those without `get_mut`'s compare-and-swap. A
    // racing drop on another thread can at worst free a block instead of
    // pooling it, exactly as when both `get_mut`s fail.
    if Arc::strong_count(&block) > 1 {
        return;
    }
    let Some(inner) = Arc::get_mut(&mut block) else {
        return; // another view still holds it
    };
    let Some(owner) = inner.pool.as_ref().map(Weak::as_ptr) else {
        return; // unpooled: dropping the block frees it
    };
    // This thread's cache, when it serves the block's pool: no lock, and no
    // reference count of the pool to raise and lower. (A cache holds its
    // pool alive, so no other pool can have the same address meanwhile.)
    let mut slot = Some(block);
    with_cache(owner, |cache| {
        if let Some(block) = slot.take() {
            cache.push(block);
        }
    });
    let Some(block) = slot else {
        return;
    };
    // The shared list. The pool gone: dropping the block frees it.
    let Some(pool) = block.pool.as_ref().and_then(Weak::upgrade) else {
        return;
    };
    let mut free = pool.free_list();
    if free.len() < pool.shared_cap() {
        free.push(block);
    }
    // A full pool keeps nothing: `block` is freed here, after the unlock.
}

/// A pool of fixed-size IO buffers.
///
/// Cloning a pool is cheap; clones share the same blocks and counters.
#[derive(Clone)]
pub struct BufPool {
    shared: Arc<PoolShared>,
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

    /// Give the calling thread a cache of free blocks of this pool, in
    /// front of the shared list, until the guard is dropped. An IO thread
    /// binds one for its whole life; `threads` is how many threads are
    /// expected to. The cache leases a quarter of `max_pooled` shared by
    /// `threads` (at most 128 blocks), and all caches together at most half
    /// of it, so a small pool gets none; a thread has one cache, and binding
    /// a second pool while it is held does nothing.
    pub(crate) fn bind_thread_cache(&self, threads: usize) -> ThreadCacheGuard {
        let shared = &self.shared;
        let bind = |cell: &RefCell<Option<ThreadCache>>| {
            let mut cache = cell.try_borrow_mut().ok()?;
            if cache.is_some() {
                return None;
            }
            let published = Arc::new(AtomicUsize::new(0));
            let lease = {
                let mut caches = shared.cache_list();
                // Lease only slots the shared list does not fill now (held
                // locked until the lease is counted), and leave it at least
                // half the bound in all: blocks freed on other threads still
                // find room there.
                let free = shared.free_list();
                let room = shared.shared_cap().saturating_sub(free.len());
                let half =
                    (shared.max_pooled / 2).saturating_sub(shared.leased.load(Ordering::Relaxed));
                let lease = (shared.max_pooled / (4 * threads.max(1)))
                    .min(THREAD_CACHE_MAX)
                    .min(room)
                    .min(half);
                if lease == 0 {
                    return None;
                }
                shared.leased.fetch_add(lease, Ordering::Relaxed);
                drop(free);
                caches.push(Arc::clone(&published));
                lease
            };
            *cache = Some(ThreadCache {
                pool: Arc::clone(shared),
                blocks: Vec::with_capacity(lease),
                lease,
                published,
            });
            Some(())
        };
        ThreadCacheGuard {
            bound: CACHE.try_with(bind).ok().flatten().is_some(),
            _thread: PhantomData,
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

#[cfg(test)]
mod tests;
