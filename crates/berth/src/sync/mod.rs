//! The synchronization primitives of what threads share — the mailbox, the
//! handle count, buffer blocks and the pool's free list, the shutdown flag,
//! the worker pool — imported from one place so that they can be
//! model-checked (tokio's `src/loom` does the same).
//!
//! In a normal build these are `std`'s and crossbeam's own types,
//! re-exported: nothing is wrapped, so the facade costs nothing. Built with
//! `RUSTFLAGS="--cfg loom"` they are [loom]'s models, and the `loom_tests`
//! modules explore the interleavings of small scenarios; a lock-free queue
//! and the eventfd, which loom cannot see into, are replaced by models of
//! their own (`model.rs`). See ARCHITECTURE.md, "Model checking".
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic;
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard, atomic};
#[cfg(loom)]
pub(crate) use model::{SegQueue, Wake};

#[cfg(loom)]
mod model;
