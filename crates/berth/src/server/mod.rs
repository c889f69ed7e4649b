//! Starting and running a server.
//!
//! - `builder.rs`: [`ServerBuilder`], every setting with its default;
//! - `runtime.rs`: the IO threads ([`Server`], [`Client`]): start, stop, join;
//! - `handle.rs`: [`ServerHandle`], control from any thread; [`ServerStats`].

mod builder;
mod handle;
mod runtime;

#[cfg(all(test, loom))]
mod loom_tests;

pub use builder::{
    DEFAULT_ADDR, DEFAULT_BUFFER_SIZE, DEFAULT_MAX_BUFFERED, ServerBuilder, bind,
    default_ring_buffers,
};
pub use handle::{ServerHandle, ServerStats, ShuttingDown};
pub use runtime::{Client, Server};
