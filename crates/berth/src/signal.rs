//! Graceful drain on SIGTERM/SIGINT.

use std::io;

use crate::engine::sys::BlockedSignals;

/// A termination signal that was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// SIGINT and SIGTERM, blocked so they can be awaited instead of killing
/// the process.
///
/// Call [`TerminationSignals::block`] at the start of `main`, before the
/// server (or any other thread) starts, so every thread inherits the mask;
/// then [`TerminationSignals::wait`] and shut the server down.
pub struct TerminationSignals {
    inner: BlockedSignals,
}

impl TerminationSignals {
    /// Block SIGINT and SIGTERM in this thread and the threads it starts.
    pub fn block() -> io::Result<Self> {
        Ok(TerminationSignals {
            inner: BlockedSignals::block()?,
        })
    }

    /// Wait until SIGINT or SIGTERM arrives.
    pub fn wait(&self) -> io::Result<TerminationSignal> {
        loop {
            match self.inner.wait()? {
                libc::SIGINT => return Ok(TerminationSignal::Interrupt),
                libc::SIGTERM => return Ok(TerminationSignal::Terminate),
                _ => continue,
            }
        }
    }
}

impl std::fmt::Debug for TerminationSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminationSignals")
    }
}
