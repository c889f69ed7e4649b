//! Why a POP3 server could not start.

use berth::WorkerBuildError;

/// Why [`Pop3ServerBuilder::build`](super::Pop3ServerBuilder::build) or
/// [`Pop3ServerBuilder::start`](super::Pop3ServerBuilder::start) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The worker pool could not be built (no threads, or a thread failed
    /// to start).
    #[error(transparent)]
    Workers(#[from] WorkerBuildError),
    /// The berth server could not start (the address is in use, say).
    #[error(transparent)]
    Start(#[from] berth::Error),
}
