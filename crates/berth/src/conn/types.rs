//! The small value types of the connection API: identity, shutdown
//! direction, and why an operation was refused.

use std::fmt;

/// A connection's identity, unique within a server's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The raw number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which direction(s) [`Conn::shutdown`](crate::Conn::shutdown) closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Stop receiving; data the peer sends afterwards is discarded.
    Read,
    /// Stop sending: the peer sees end-of-file after every queued byte.
    Write,
    /// Both.
    Both,
}

impl From<Shutdown> for std::net::Shutdown {
    fn from(how: Shutdown) -> Self {
        match how {
            Shutdown::Read => std::net::Shutdown::Read,
            Shutdown::Write => std::net::Shutdown::Write,
            Shutdown::Both => std::net::Shutdown::Both,
        }
    }
}

/// Why a connection operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The connection is closed or closing.
    #[error("connection is closed")]
    Closed,
    /// The write side was shut down (or is about to be).
    #[error("connection's write side is shut down")]
    WriteShutdown,
    /// The write would take the connection's queue past its hard cap (or
    /// the server past its cap on buffered bytes); see
    /// [`OverflowPolicy`](crate::OverflowPolicy) for what else happens.
    #[error("connection's write queue is full")]
    WriteQueueFull,
}
