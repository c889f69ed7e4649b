//! Small system-call wrappers the engines share.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking eventfd used to wake an IO thread.
#[derive(Debug)]
#[cfg_attr(loom, allow(dead_code))] // under loom the mailbox wakes through a model
pub(crate) struct EventFd {
    fd: OwnedFd,
}

#[cfg_attr(loom, allow(dead_code))]
impl EventFd {
    /// A readiness engine needs a non-blocking eventfd; a completion engine
    /// a blocking one, so that a queued read waits instead of failing with
    /// EAGAIN at once.
    pub fn new(nonblocking: bool) -> io::Result<Self> {
        let flags = if nonblocking {
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK
        } else {
            libc::EFD_CLOEXEC
        };
        // SAFETY: eventfd takes no pointers; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Add one to the counter, waking a reader.
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own descriptor.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Reset the counter (readiness engines read it after a wake-up).
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from our own descriptor.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Ignore SIGPIPE for the whole process: a write to a closed socket must
/// return EPIPE, never kill the server. (Sends also pass MSG_NOSIGNAL.)
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// SIGINT and SIGTERM, blocked in the calling thread (and in every thread it
/// starts afterwards) so that they can be awaited with `sigwait`.
pub(crate) struct BlockedSignals {
    set: libc::sigset_t,
}

impl BlockedSignals {
    pub fn block() -> io::Result<Self> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned by this frame; the calls
        // only write into it and the thread's signal mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(BlockedSignals { set })
    }

    /// Wait for one of the signals; returns its number.
    pub fn wait(&self) -> io::Result<i32> {
        let mut sig = 0;
        // SAFETY: `self.set` is an initialised sigset_t and `sig` a live int.
        let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}
