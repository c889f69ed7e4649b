//! The limits an IO thread enforces on its connections' writes, and the
//! thread's share of the server-wide cap on buffered outgoing bytes.

use std::time::Duration;

/// What happens to a write that would take a connection's queue past
/// [`ServerBuilder::max_write_queue`](crate::ServerBuilder::max_write_queue)
/// (or the server past
/// [`ServerBuilder::max_buffered`](crate::ServerBuilder::max_buffered)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Refuse the write with [`ConnError::WriteQueueFull`] and close the
    /// connection abortively (its peer is not reading; what is queued
    /// could never be delivered). Counted as a close for `limit`.
    ///
    /// [`ConnError::WriteQueueFull`]: crate::ConnError::WriteQueueFull
    #[default]
    Close,
    /// Refuse the write with [`ConnError::WriteQueueFull`]; the connection
    /// stays open and the caller decides. Only writes made in a callback
    /// ([`Conn::write`](crate::Conn::write)) can be refused this way: a
    /// [`ConnHandle`](crate::ConnHandle) write is applied later on the IO
    /// thread, where no caller is left to see the refusal, so one past the
    /// cap resets the connection rather than leave a gap in the stream
    /// (check [`ConnHandle::is_writable`](crate::ConnHandle::is_writable)
    /// before writing from another thread).
    ///
    /// [`ConnError::WriteQueueFull`]: crate::ConnError::WriteQueueFull
    Refuse,
}

/// The settings an IO thread applies to every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Above this many queued bytes a connection is not writable.
    pub high_water: usize,
    /// At or below this many it is writable again.
    pub low_water: usize,
    /// A connection's queue never holds more.
    pub max_write_queue: usize,
    pub policy: OverflowPolicy,
    /// This thread's share of the server-wide cap on queued bytes.
    pub thread_buffered: usize,
    pub idle_timeout: Option<Duration>,
    pub frame_timeout: Option<Duration>,
}

impl Limits {
    /// The defaults: 64 KiB / 32 KiB watermarks, 4 MiB per connection,
    /// no timeouts, no server-wide cap.
    pub fn unlimited() -> Self {
        Limits {
            high_water: 64 * 1024,
            low_water: 32 * 1024,
            max_write_queue: 4 * 1024 * 1024,
            policy: OverflowPolicy::Close,
            thread_buffered: usize::MAX,
            idle_timeout: None,
            frame_timeout: None,
        }
    }
}

/// The write accounting of one IO thread: its limits and the bytes its
/// connections have queued.
#[derive(Debug)]
pub(crate) struct WriteBudget {
    pub limits: Limits,
    /// Bytes queued on this thread's connections, not yet written.
    pub queued: usize,
}

impl WriteBudget {
    pub fn new(limits: Limits) -> Self {
        WriteBudget { limits, queued: 0 }
    }

    /// Whether `n` more bytes fit in a queue holding `queue` bytes, and
    /// in the thread's share.
    #[inline]
    pub fn fits(&self, queue: usize, n: usize) -> bool {
        queue + n <= self.limits.max_write_queue && self.queued + n <= self.limits.thread_buffered
    }
}
