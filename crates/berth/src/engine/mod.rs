//! IO engines: io_uring (completion-based) and epoll (readiness-based).
//!
//! Both implement one contract, `Backend` in `core.rs` (what the
//! connection core asks of an engine), and both run the same per-thread
//! plumbing in `engine/thread.rs`: commands from other threads, the accept
//! policy, the shutdown deadline. Everything a handler can observe is
//! decided in `core.rs`, so the callback rules are the same on either engine.
//!
//! `unsafe` code lives only below this module.
#![allow(unsafe_code)]

pub(crate) mod connect;
pub(crate) mod epoll;
mod probe;
pub(crate) mod sys;
pub(crate) mod thread;
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

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Uring => "io_uring",
            EngineKind::Epoll => "epoll",
        })
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
