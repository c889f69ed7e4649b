//! Does io_uring work here, with everything the engine needs?
//!
//! Containers often forbid it (seccomp), distributions may disable it
//! (`kernel.io_uring_disabled`), and older kernels lack multishot receive or
//! provided-buffer rings. The probe tries each thing the engine uses, so
//! `auto` can fall back to epoll and say exactly why.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use io_uring::{Probe, cqueue, opcode, types};

use super::uring::build_ring;
use crate::buffer::BufPool;

/// Why io_uring cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UringUnavailable {
    /// The kernel refused to create a ring for this process.
    #[error("io_uring is disabled by sysctl kernel.io_uring_disabled={0}")]
    DisabledBySysctl(u8),
    /// `io_uring_setup` failed with EPERM while the sysctl allows it: a
    /// seccomp filter (as container runtimes install) denied it.
    #[error("io_uring_setup was denied (EPERM): blocked by a seccomp filter or security policy")]
    PermissionDenied,
    /// The kernel has no io_uring (ENOSYS).
    #[error("io_uring is not available in this kernel (ENOSYS)")]
    NotSupported,
    /// Ring setup failed otherwise.
    #[error("io_uring_setup failed: {0}")]
    Setup(io::Error),
    /// An operation the engine needs is missing.
    #[error("the kernel lacks io_uring opcode {0} (kernel too old)")]
    MissingOpcode(&'static str),
    /// Provided-buffer rings could not be registered (they need Linux 5.19).
    #[error("provided-buffer rings are unavailable (kernel too old, needs 5.19): {0}")]
    BufRing(io::Error),
    /// Multishot receive failed (it needs Linux 6.0).
    #[error("multishot receive is unavailable (kernel too old, needs 6.0): {0}")]
    MultishotRecv(io::Error),
}

fn sysctl_disabled() -> Option<u8> {
    let v = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?;
    v.trim().parse().ok().filter(|&v| v > 0)
}

/// Check that io_uring works here with every feature the engine uses.
///
/// The probe runs on a short-lived thread of its own: io_uring may deliver
/// task work to the thread that created a ring, which would interrupt that
/// thread's blocking system calls with EINTR.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    std::thread::scope(|s| {
        s.spawn(probe_on_this_thread)
            .join()
            .unwrap_or_else(|_| Err(UringUnavailable::Setup(io::Error::other("probe panicked"))))
    })
}

fn probe_on_this_thread() -> Result<(), UringUnavailable> {
    let mut ring = build_ring(8).map_err(|err| match err.raw_os_error() {
        Some(libc::EPERM) => match sysctl_disabled() {
            Some(v) => UringUnavailable::DisabledBySysctl(v),
            None => UringUnavailable::PermissionDenied,
        },
        Some(libc::ENOSYS) => UringUnavailable::NotSupported,
        _ => UringUnavailable::Setup(err),
    })?;

    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|_| UringUnavailable::MissingOpcode("IORING_REGISTER_PROBE"))?;
    let needed = [
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::Close::CODE, "CLOSE"),
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Read::CODE, "READ"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(UringUnavailable::MissingOpcode(name));
        }
    }

    // A tiny buffer ring and one real multishot receive over a socket pair.
    let pool = BufPool::new(64, 4);
    let mut bufs =
        super::uring::BufRing::new(&ring, &pool, 4, 0).map_err(UringUnavailable::BufRing)?;
    let (a, mut b) = UnixStream::pair().map_err(UringUnavailable::MultishotRecv)?;
    b.write_all(b"x").map_err(UringUnavailable::MultishotRecv)?;
    let sqe = opcode::RecvMulti::new(types::Fd(a.as_raw_fd()), bufs.bgid())
        .build()
        .user_data(1);
    // SAFETY: the receive reads into the buffer ring, which outlives the
    // ring's use here: it is cancelled and reaped below before `bufs` drops.
    unsafe { ring.submission().push(&sqe) }
        .map_err(|_| UringUnavailable::MultishotRecv(io::Error::other("submission queue full")))?;
    let result = wait_one(&mut ring).map_err(UringUnavailable::MultishotRecv)?;
    let outcome = match result {
        (res, flags) if res > 0 && cqueue::more(flags) => Ok(()),
        (res, _) if res < 0 => Err(UringUnavailable::MultishotRecv(
            io::Error::from_raw_os_error(-res),
        )),
        _ => Err(UringUnavailable::MultishotRecv(io::Error::other(
            "receive was not multishot",
        ))),
    };
    if outcome.is_ok() {
        let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
        // SAFETY: a cancel carries no pointers.
        let _ = unsafe { ring.submission().push(&cancel) };
        for _ in 0..2 {
            let _ = wait_one(&mut ring);
        }
    }
    bufs.unregister(&ring);
    outcome
}

fn wait_one(ring: &mut io_uring::IoUring) -> io::Result<(i32, u32)> {
    let ts = types::Timespec::new().sec(1);
    let args = types::SubmitArgs::new().timespec(&ts);
    match ring.submitter().submit_with_args(1, &args) {
        Ok(_) => {}
        Err(err) if err.raw_os_error() == Some(libc::ETIME) => {}
        Err(err) => return Err(err),
    }
    ring.completion()
        .next()
        .map(|cqe| (cqe.result(), cqe.flags()))
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
}
