//! Small system-call wrappers the engines and the driver share, and the two
//! that socket activation needs (taking inherited descriptors, clearing its
//! environment variables).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Attach a classic BPF program to the `SO_REUSEPORT` group of `listener`
/// (`SO_ATTACH_REUSEPORT_CBPF`): from now on the kernel runs it for each
/// new connection to the group and gives the connection to the socket at
/// the index it returns (its hash picks one if the index is out of range).
/// The program belongs to the group, not to `listener`: it stays after
/// `listener` closes, until another replaces it or the group is empty.
///
/// Fails with `EINVAL` if `listener` is not in a reuseport group, or if the
/// kernel rejects the program.
pub(crate) fn attach_reuseport_cbpf(
    listener: BorrowedFd<'_>,
    program: &[libc::sock_filter],
) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` and the `len` instructions it points at live for the
    // whole call; the kernel only reads them (it copies the program in
    // before returning) and writes through no pointer. The option length
    // is the size of the `sock_fprog` passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// The first descriptor a service manager passes by socket activation
/// (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// Whether [`take_listen_fds`] has run in this process.
static LISTEN_FDS_TAKEN: AtomicBool = AtomicBool::new(false);

/// Take ownership of the `n` descriptors passed by socket activation
/// (3, 4, ...). The caller has checked that `LISTEN_PID` names this
/// process, so the protocol gives them to it. Only the first call in a
/// process takes them (`None` after that), and only if every one is open.
pub(crate) fn take_listen_fds(n: usize) -> io::Result<Option<Vec<OwnedFd>>> {
    let last = RawFd::try_from(n)
        .ok()
        .and_then(|n| LISTEN_FDS_START.checked_add(n))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    if LISTEN_FDS_TAKEN.swap(true, Ordering::AcqRel) {
        return Ok(None);
    }
    for fd in LISTEN_FDS_START..last {
        // SAFETY: F_GETFD only reads the descriptor's flags; it takes no
        // pointers and fails with EBADF if `fd` is not open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let fds = (LISTEN_FDS_START..last)
        // SAFETY: each descriptor is open (checked above), and socket
        // activation hands it to this process (LISTEN_PID is ours): neither
        // std nor berth opened or owns descriptors 3.. on their own account,
        // and LISTEN_FDS_TAKEN makes this the only place that takes them,
        // once.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    Ok(Some(fds))
}

/// Remove the environment variables `names` if this process has a single
/// thread (the caller); returns whether it did. With other threads running,
/// changing the environment could race with their reads of it, so it is
/// left alone.
pub(crate) fn remove_env_if_single_threaded(names: &[&str]) -> bool {
    let single = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim() == "1")
    });
    if single {
        for name in names {
            // SAFETY: the process has one thread, this one: no other thread
            // can read or change the environment meanwhile, and only this
            // thread could start one.
            unsafe { std::env::remove_var(name) };
        }
    }
    single
}
