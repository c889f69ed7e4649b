//! Each IO thread's own stack of free blocks in front of the pool's shared
//! list, the lease that counts it against `max_pooled`, and `recycle`, where
//! every freed block goes.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::pool::{BlockRef, BufPool, PoolShared};

/// The most blocks one thread's cache holds.
const THREAD_CACHE_MAX: usize = 128;

/// An IO thread's own stack of free blocks of one pool, most recently freed
/// last. Only its thread touches it.
pub(super) struct ThreadCache {
    pool: Arc<PoolShared>,
    blocks: Vec<BlockRef>,
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

    pub(super) fn pop(&mut self) -> Option<BlockRef> {
        let block = self.blocks.pop()?;
        self.publish();
        Some(block)
    }

    /// Push a freed block. A full cache first hands its older half to the
    /// shared list, so the blocks freed last stay on top.
    fn push(&mut self, block: BlockRef) {
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

#[cfg(not(loom))]
thread_local! {
    static CACHE: RefCell<Option<ThreadCache>> = const { RefCell::new(None) };
}
// Loom runs its threads on one OS thread: each needs a thread-local of its
// own (and loom's macro takes no `const` initializer).
#[cfg(loom)]
loom::thread_local! {
    static CACHE: RefCell<Option<ThreadCache>> = RefCell::new(None);
}

/// Run `f` on this thread's cache if it serves `pool` (and is not in use).
pub(super) fn with_cache<R>(
    pool: *const PoolShared,
    f: impl FnOnce(&mut ThreadCache) -> R,
) -> Option<R> {
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
    pub(super) bound: bool,
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
pub(super) fn recycle(mut block: BlockRef) {
    // Most drops are of one view among several (a frame cut from a read):
    // a plain load settles those without `get_mut`'s compare-and-swap. A
    // racing drop on another thread can at worst free a block instead of
    // pooling it, exactly as when both `get_mut`s fail.
    if BlockRef::strong_count(&block) > 1 {
        return;
    }
    let Some(inner) = BlockRef::get_mut(&mut block) else {
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

impl BufPool {
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
