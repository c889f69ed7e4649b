//! Connections as a handler sees them.
//!
//! - [`Conn`] (`callback.rs`): a connection inside one of its callbacks, on
//!   its IO thread; operations act on its state directly.
//! - [`ConnHandle`] (`handle.rs`): a `Send + Sync + Clone` handle for any
//!   thread; operations travel to the IO thread through its mailbox.
//! - `types.rs`: [`ConnId`], [`Shutdown`], [`ConnError`].
//!
//! The state both act on, and the rules that apply it, live in
//! `driver/state.rs` and `driver/reconcile.rs`.

mod callback;
mod handle;
mod types;

pub use callback::Conn;
pub(crate) use callback::ConnEnv;
pub use handle::ConnHandle;
pub(crate) use handle::{ConnShared, Sides};
pub use types::{ConnError, ConnId, Shutdown};
