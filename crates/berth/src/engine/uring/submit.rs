//! The submission side of the io_uring engine: the ring, its ordered
//! backlog, and the per-connection operations the core asks for
//! ([`Backend`]).

use std::collections::VecDeque;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};

use super::bufring::BufRing;
use super::ops::{K_CANCEL, K_CLOSE, K_CONNECT, K_RECV, K_SEND, OpState, THREAD_OP, user_data};
use crate::buffer::{BufPool, IoBuf};
use crate::driver::backend::{Backend, CloseMode};
use crate::driver::key::Key;
use crate::driver::mailbox::Mailbox;
use crate::driver::stats::ThreadStats;

/// Most buffers gathered into one `sendmsg`.
const MAX_IOV: usize = 8;

/// The most bytes one multishot receive takes before the kernel ends it
/// (it is re-armed at once while the connection wants data). Without a
/// cap, a receive keeps draining its socket while data arrives, so a
/// connection held back by its write queue could stash everything its
/// socket had queued (MiBs on loopback) before the pause's cancel lands;
/// with it, at most this much beyond the engine's pause slack. Linux 6.16
/// reads it from `sqe->optlen`; older kernels refuse the receive with
/// EINVAL, and the engine then arms them uncapped (`Ring::uncap_recv`).
pub(super) const RECV_ARM_CAP: u32 = 256 * 1024;

/// Where `optlen` sits in a 64-byte submission entry (after opcode,
/// flags, ioprio, fd, off, addr, len, op flags, user_data, buf_group and
/// personality), as `include/uapi/linux/io_uring.h` lays it out.
const SQE_OPTLEN_OFFSET: usize = 44;

const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);

/// `entry` with its `optlen` field set: the io-uring crate's `RecvMulti`
/// has no setter for the multishot byte cap.
fn with_optlen(entry: squeue::Entry, optlen: u32) -> squeue::Entry {
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (size checked above), a plain-data struct with no
    // padding-sensitive invariants, so it may be viewed as bytes and any
    // bytes form a valid value; the entry is moved, not shared.
    let mut raw: [u8; 64] = unsafe { std::mem::transmute(entry) };
    raw[SQE_OPTLEN_OFFSET..SQE_OPTLEN_OFFSET + 4].copy_from_slice(&optlen.to_ne_bytes());
    // SAFETY: as above; only the `optlen` union member changed.
    unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(raw) }
}

/// Per-connection engine state. It lives inside the connection's boxed
/// table entry, so the iovecs and msghdr keep their address while a send
/// that points at them is in flight (the `Backend` contract, promise 1).
pub(crate) struct UringIo {
    pub(super) sock: TcpStream,
    pub(super) recv: OpState,
    pub(super) want_read: bool,
    pub(super) sending: bool,
    pub(super) closing: bool,
    iov: [libc::iovec; MAX_IOV],
    msg: libc::msghdr,
}

impl UringIo {
    pub(super) fn busy(&self) -> bool {
        self.recv != OpState::Idle || self.sending
    }
}

/// One IO thread's ring and everything the kernel may be using: the engine
/// of an io_uring thread.
pub(crate) struct Ring {
    pub(super) ring: IoUring,
    pub(super) bufs: BufRing,
    pub(super) pool: BufPool,
    pub(super) inflight: usize,
    /// Entries that did not fit in a full submission queue, in order. They
    /// go to the kernel before the next wait; pushing never blocks or spins
    /// (the kernel may refuse submissions while completions overflow, and
    /// completions can only be reaped by the loop, not inside a callback).
    backlog: VecDeque<squeue::Entry>,
    pub(super) stats: Arc<ThreadStats>,
    pub(super) mailbox: Arc<Mailbox>,
    /// The listener, on the accepting thread, until accepting stops.
    pub(super) listener: Option<TcpListener>,
    pub(super) accept: OpState,
    pub(super) wake: OpState,
    /// Where the eventfd read lands; boxed so its address is stable.
    pub(super) wake_buf: Box<u64>,
    /// The byte cap of a multishot receive ([`RECV_ARM_CAP`]); 0 once the
    /// kernel has refused it.
    recv_cap: u32,
}

impl Ring {
    pub(super) fn new(
        ring: IoUring,
        bufs: BufRing,
        pool: BufPool,
        stats: Arc<ThreadStats>,
        mailbox: Arc<Mailbox>,
        listener: Option<TcpListener>,
    ) -> Self {
        Ring {
            ring,
            bufs,
            pool,
            inflight: 0,
            backlog: VecDeque::new(),
            stats,
            mailbox,
            listener,
            accept: OpState::Idle,
            wake: OpState::Idle,
            wake_buf: Box::new(0),
            recv_cap: RECV_ARM_CAP,
        }
    }

    pub(super) fn push(&mut self, entry: squeue::Entry) {
        self.inflight += 1;
        if self.backlog.is_empty() && self.try_push(&entry) {
            return;
        }
        // Full: hand what is queued to the kernel once, then keep order.
        if self.backlog.is_empty() && self.submit_early() && self.try_push(&entry) {
            return;
        }
        self.backlog.push_back(entry);
    }

    fn try_push(&mut self, entry: &squeue::Entry) -> bool {
        // SAFETY: every entry built in this engine points only at memory
        // the engine keeps alive until the entry's final completion: a
        // connection's send buffers stay in its write queue and its
        // iovecs/msghdr in its boxed table entry until it is released,
        // which happens only after its last completion (the `Backend`
        // contract, promises 1-3); the wake-up buffer lives as long as the
        // ring; a probe's memory outlives it.
        unsafe { self.ring.submission().push(entry) }.is_ok()
    }

    /// Move backlogged entries into the submission queue, submitting as it
    /// fills. Stops (to let the loop reap) if the kernel refuses more.
    pub(super) fn flush_backlog(&mut self) {
        while let Some(entry) = self.backlog.pop_front() {
            if self.try_push(&entry) {
                continue;
            }
            if !self.submit_early() || !self.try_push(&entry) {
                self.backlog.push_front(entry);
                return;
            }
        }
    }

    /// Submit in the middle of a pass (the submission queue is full). A
    /// receive issued now may pick a buffer at once, so the ring is topped
    /// up first: otherwise a pass that emptied it would send re-armed
    /// receives straight into `ENOBUFS`, again and again.
    fn submit_early(&mut self) -> bool {
        self.bufs.top_up_now(&self.pool);
        self.ring.submit().is_ok()
    }

    pub(super) fn arm_recv(&mut self, key: Key, io: &mut UringIo) {
        let fd = types::Fd(io.sock.as_raw_fd());
        let sqe = opcode::RecvMulti::new(fd, self.bufs.bgid()).build();
        let sqe = with_optlen(sqe, self.recv_cap).user_data(user_data(K_RECV, key));
        self.push(sqe);
        io.recv = OpState::Armed;
    }

    /// Whether a receive that failed with `res` was refused for its byte
    /// cap (a kernel before 6.16); if so, receives are armed uncapped from
    /// now on and the caller re-arms.
    pub(super) fn uncap_recv(&mut self, res: i32) -> bool {
        if res != -libc::EINVAL || self.recv_cap == 0 {
            return false;
        }
        self.recv_cap = 0;
        tracing::warn!(
            "this kernel has no byte cap for multishot receives (Linux 6.16): a connection \
             held back by its write queue may stash up to its socket's receive queue"
        );
        true
    }

    pub(super) fn cancel(&mut self, target: u64, key: Key) {
        let sqe = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(K_CANCEL, key));
        self.push(sqe);
    }
}

impl Backend for Ring {
    type Io = UringIo;
    // io_uring wants the file itself blocking (it never blocks the thread
    // either way); the multishot accept leaves out SOCK_NONBLOCK.
    const NONBLOCKING: bool = false;
    const PAUSE_SLACK: usize = 4;

    fn adopt_io(&mut self, sock: TcpStream) -> io::Result<UringIo> {
        Ok(UringIo {
            sock,
            recv: OpState::Idle,
            want_read: false,
            sending: false,
            closing: false,
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOV],
            // SAFETY: msghdr is a plain C struct for which all-zero is valid.
            msg: unsafe { std::mem::zeroed() },
        })
    }

    fn attach(&mut self, _key: Key, _io: &mut UringIo) {}

    fn start_read(&mut self, key: Key, io: &mut UringIo) {
        io.want_read = true;
        if io.recv == OpState::Idle {
            self.arm_recv(key, io);
        }
        // Cancelling: re-armed when the cancelled receive completes.
    }

    fn stop_read(&mut self, key: Key, io: &mut UringIo) {
        io.want_read = false;
        if io.recv == OpState::Armed {
            self.cancel(user_data(K_RECV, key), key);
            io.recv = OpState::Cancelling;
        }
    }

    fn start_write(
        &mut self,
        key: Key,
        io: &mut UringIo,
        queue: &VecDeque<IoBuf>,
        sent: usize,
    ) -> Option<io::Result<usize>> {
        let fd = types::Fd(io.sock.as_raw_fd());
        let ud = user_data(K_SEND, key);
        // The head from its unwritten part on (earlier partial sends).
        let head = &queue[0][sent..];
        let sqe = if queue.len() == 1 || head.len() >= 64 * 1024 {
            let len = u32::try_from(head.len()).unwrap_or(u32::MAX);
            opcode::Send::new(fd, head.as_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(ud)
        } else {
            let n = queue.len().min(MAX_IOV);
            for (iov, buf) in io.iov.iter_mut().zip(queue.iter()) {
                iov.iov_base = buf.as_ptr() as *mut libc::c_void;
                iov.iov_len = buf.len();
            }
            io.iov[0].iov_base = head.as_ptr() as *mut libc::c_void;
            io.iov[0].iov_len = head.len();
            io.msg.msg_iov = io.iov.as_mut_ptr();
            io.msg.msg_iovlen = n as _;
            opcode::SendMsg::new(fd, &io.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
                .user_data(ud)
        };
        self.push(sqe);
        io.sending = true;
        None
    }

    fn shutdown(&mut self, io: &mut UringIo, how: std::net::Shutdown) -> io::Result<()> {
        io.sock.shutdown(how)
    }

    fn watch_connect(&mut self, key: Key, fd: RawFd) {
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
            .build()
            .user_data(user_data(K_CONNECT, key));
        self.push(sqe);
    }

    fn unwatch_connect(&mut self, key: Key, _fd: RawFd) -> bool {
        self.cancel(user_data(K_CONNECT, key), key);
        false
    }

    fn close(&mut self, key: Key, io: &mut UringIo, mode: CloseMode) -> bool {
        io.closing = true;
        io.want_read = false;
        if mode == CloseMode::Abortive {
            let _ = socket2::SockRef::from(&io.sock).set_linger(Some(Duration::ZERO));
            if io.sending {
                self.cancel(user_data(K_SEND, key), key);
            }
        }
        if io.recv == OpState::Armed {
            self.cancel(user_data(K_RECV, key), key);
            io.recv = OpState::Cancelling;
        }
        // The socket is closed on release (`release`).
        !io.busy()
    }

    /// Close the socket with the next submission instead of a `close`
    /// system call of its own (one per connection in a churning load).
    /// Nothing of the connection is in flight any more; the descriptor
    /// stays open, and so cannot be reused, until the close runs.
    fn release(&mut self, io: UringIo) {
        let fd = io.sock.into_raw_fd();
        let sqe = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data(K_CLOSE, THREAD_OP));
        self.push(sqe);
    }
}
