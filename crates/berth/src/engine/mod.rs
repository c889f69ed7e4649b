//! IO engines: io_uring (completion-based) and epoll (readiness-based) —
//! only the code that talks to the kernel.
//!
//! Both implement one contract, stated in `driver/backend.rs` (`Backend`:
//! what the core asks of an engine per connection, and what the core
//! guarantees in return) and `driver/event_loop.rs` (`Engine`: dispatch
//! events, keep the listener in line, wait until a deadline). The loop, the
//! callback rules and everything a handler can observe are in `driver/`,
//! written once, so they are the same on either engine.
//!
//! | file | what it holds |
//! |---|---|
//! | `uring/` | the io_uring engine: `mod.rs` (loop half), `submit.rs` (ring, backlog, per-connection operations), `bufring.rs` (provided-buffer ring) |
//! | `epoll.rs` | the epoll engine (through mio) |
//! | `probe.rs` | can io_uring run here, and if not, why |
//! | `sys.rs` | eventfd, SIGPIPE, the signal mask, the reuseport BPF attach, descriptors inherited by socket activation |
//!
//! `unsafe` code lives only below this module.
#![allow(unsafe_code)]

pub(crate) mod epoll;
mod probe;
pub(crate) mod sys;
pub(crate) mod uring;

use std::fmt;
use std::str::FromStr;

pub use probe::{UringUnavailable, probe_uring};

/// The engine a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// io_uring: multishot accept and receive, provided-buffer rings.
    Uring,
    /// epoll readiness notifications (through mio).
    Epoll,
}

impl EngineKind {
    /// The engine's name in logs, stats and metrics: `io_uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Uring => "io_uring",
            EngineKind::Epoll => "epoll",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which engine to use: a specific one, or `Auto` (io_uring when the kernel
/// and sandbox allow it, otherwise epoll with a warning that says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EngineChoice {
    /// Probe io_uring; fall back to epoll.
    #[default]
    Auto,
    /// io_uring or an error.
    Uring,
    /// epoll.
    Epoll,
}

impl EngineChoice {
    /// The environment variable that overrides the default choice.
    pub const ENV: &'static str = "BERTH_ENGINE";

    /// The choice named by `BERTH_ENGINE`, if set.
    pub fn from_env() -> Result<Option<Self>, ParseEngineError> {
        match std::env::var(Self::ENV) {
            Ok(v) if !v.is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }
}

/// An engine name that is not `auto`, `uring` or `epoll`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine {0:?} (expected auto, uring or epoll)")]
pub struct ParseEngineError(String);

impl FromStr for EngineChoice {
    type Err = ParseEngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(EngineChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(EngineChoice::Uring),
            "epoll" => Ok(EngineChoice::Epoll),
            _ => Err(ParseEngineError(s.to_owned())),
        }
    }
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Uring => "uring",
            EngineChoice::Epoll => "epoll",
        })
    }
}
