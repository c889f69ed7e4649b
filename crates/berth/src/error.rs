//! Errors from starting a server.

use std::io;
use std::net::SocketAddr;

use crate::engine::UringUnavailable;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening address could not be bound (for example, already in use).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A supplied listener could not be used.
    #[error("unusable listening socket: {0}")]
    Listener(io::Error),
    /// io_uring was requested explicitly but cannot be used here.
    #[error("the io_uring engine is unavailable: {0}")]
    UringUnavailable(#[from] UringUnavailable),
    /// The limits given to the builder contradict each other.
    #[error("invalid limits: {0}")]
    Limits(&'static str),
    /// An IO thread could not start.
    #[error("cannot start an IO thread: {0}")]
    Thread(io::Error),
}
