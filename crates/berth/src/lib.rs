//! berth: a reusable, high-performance TCP socket server framework.
#![forbid(unsafe_code)]

pub mod buffer;
pub mod codec;

pub use buffer::{BufPool, IoBuf, IoBufMut, PoolStats};
