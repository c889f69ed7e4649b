//! The engine-independent half of an IO thread: everything a handler can
//! observe is decided here, the same way on every engine.
//!
//! | file | what it holds |
//! |---|---|
//! | `backend.rs` | the engine contract per connection ([`backend::Backend`]), and what the core guarantees the engines' `unsafe` code |
//! | `event_loop.rs` | the thread loop, written once; the [`event_loop::Engine`] trait an engine implements to run it |
//! | `core.rs` | the connection table and its slots |
//! | `reconcile.rs` | the callback rules: engine events in, engine requests out (`Core::kick`) |
//! | `state.rs` | one connection's state machine: flags, write queue, paused reads |
//! | `door.rs` | the one door into user code (every callback under `catch_unwind`) |
//! | `mailbox.rs` | the cross-thread command queue and its eventfd wake-up |
//! | `acceptor.rs` | the accept policy: pause, EMFILE back-off, `TCP_NODELAY`, round-robin |
//! | `handover.rs` | how accepting stops: at once, or handing over to a newer `SO_REUSEPORT` listener |
//! | `connector.rs` | outbound connects: non-blocking connect, writability, timeout |
//! | `timers.rs` | the thread's deadlines (the nearest bounds the loop's wait); connection timers fired |
//! | `wheel.rs` | the hashed timer wheel holding the connections' timers |
//! | `limits.rs` | write watermarks, caps and timeouts; the thread's write accounting |
//! | `admission.rs` | the caps on connections, in total and per client address |
//! | `proxy.rs` | connections behind a proxy: the PROXY header before the handler |
//! | `key.rs` | slot index + generation |
//! | `stats.rs` | per-thread counters |
//! | `tests/` | the rules above pinned against a fake engine, with no sockets |
//!
//! Nothing here is `unsafe`; the kernel-facing code is in `engine/`.

pub(crate) mod acceptor;
pub(crate) mod admission;
pub(crate) mod backend;
pub(crate) mod connector;
pub(crate) mod core;
pub(crate) mod door;
pub(crate) mod event_loop;
pub(crate) mod handover;
pub(crate) mod key;
pub(crate) mod limits;
pub(crate) mod mailbox;
mod proxy;
mod reconcile;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod timers;
pub(crate) mod wheel;

#[cfg(all(test, loom))]
pub(crate) mod loom_tests;
#[cfg(test)]
mod tests;
