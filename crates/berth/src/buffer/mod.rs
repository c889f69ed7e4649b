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
//!
//! One file per part:
//! - `pool.rs`: the blocks, [`BufPool`] with its shared free list and
//!   counters, [`PoolStats`];
//! - `cache.rs`: the per-thread caches, their leases
//!   (`BufPool::bind_thread_cache`), and `recycle`, where every freed block
//!   goes;
//! - `view.rs`: [`IoBufMut`] and [`IoBuf`], with [`BufPool::alloc`] and
//!   [`BufPool::copy_in`], which make them;
//! - `tests.rs`: the unit tests.

mod cache;
mod pool;
mod view;

pub use pool::{BufPool, PoolStats};
pub use view::{IoBuf, IoBufMut};

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod tests;
