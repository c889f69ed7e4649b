//! The io_uring engine: one ring per IO thread, multishot accept, multishot
//! receive into a provided-buffer ring, one `io_uring_enter` per batch
//! (released sockets are closed in the batch too).
//!
//! Every submission carries `user_data` = generation | slot | kind, so a
//! completion that arrives late never reaches the slot's next connection.
//! Every submission ends in exactly one final completion (one without
//! `IORING_CQE_F_MORE`); `inflight` counts them, and a connection is released
//! only when none of its operations is still in flight.

mod bufring;

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::buffer::{BufPool, IoBuf};
use crate::core::{Backend, CloseMode, Core};
use crate::engine::connect::Connector;
use crate::engine::thread::{self, Acceptor, StopState, ThreadCtx};
use crate::handler::Handler;
use crate::mailbox::Key;
pub(crate) use bufring::BufRing;

const K_RECV: u64 = 1;
const K_SEND: u64 = 2;
const K_CANCEL: u64 = 3;
const K_ACCEPT: u64 = 4;
const K_WAKE: u64 = 5;
const K_CONNECT: u64 = 6;
const K_CLOSE: u64 = 7;

/// The key in the `user_data` of operations that belong to the thread, not
/// to a connection (accept, wake-up, close).
const THREAD_OP: Key = Key {
    idx: 0,
    generation: 0,
};

/// Most buffers gathered into one `sendmsg`.
const MAX_IOV: usize = 8;
const BGID: u16 = 0;

fn user_data(kind: u64, key: Key) -> u64 {
    (u64::from(key.generation) << 32) | (u64::from(key.idx) << 4) | kind
}

fn decode(ud: u64) -> (u64, Key) {
    let key = Key {
        idx: ((ud & 0xffff_ffff) >> 4) as u32,
        generation: (ud >> 32) as u32,
    };
    (ud & 0xf, key)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpState {
    Idle,
    Armed,
    Cancelling,
}

/// Per-connection engine state. It lives inside the connection's boxed
/// table entry, so the iovecs and msghdr keep their address while a send
/// that points at them is in flight.
pub(crate) struct UringIo {
    sock: TcpStream,
    recv: OpState,
    want_read: bool,
    sending: bool,
    closing: bool,
    iov: [libc::iovec; MAX_IOV],
    msg: libc::msghdr,
}

impl UringIo {
    fn busy(&self) -> bool {
        self.recv != OpState::Idle || self.sending
    }
}

/// Build a ring with the best flags the kernel accepts.
pub(crate) fn build_ring(entries: u32) -> io::Result<IoUring> {
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer().setup_defer_taskrun();
        },
        |b| {
            b.setup_coop_taskrun();
        },
        |_| {},
    ];
    let mut last = None;
    for configure in attempts {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries * 8).setup_submit_all();
        configure(&mut builder);
        match builder.build(entries) {
            Ok(ring) => return Ok(ring),
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}

/// The ring and what the kernel may be using: the engine side of [`Backend`].
struct Ring {
    ring: IoUring,
    bufs: BufRing,
    pool: BufPool,
    inflight: usize,
    /// Entries that did not fit in a full submission queue, in order. They
    /// go to the kernel before the next wait; pushing never blocks or spins
    /// (the kernel may refuse submissions while completions overflow, and
    /// completions can only be reaped by the loop, not inside a callback).
    backlog: VecDeque<squeue::Entry>,
}

impl Ring {
    fn push(&mut self, entry: squeue::Entry) {
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
        // SAFETY: every entry built in this module points only at memory
        // the engine keeps alive until the entry's final completion: a
        // connection's send buffers stay in its write queue and its
        // iovecs/msghdr in its boxed table entry until it is released,
        // which happens only after its last completion; the wake-up buffer
        // lives as long as the thread's loop; a probe's memory outlives it.
        unsafe { self.ring.submission().push(entry) }.is_ok()
    }

    /// Move backlogged entries into the submission queue, submitting as it
    /// fills. Stops (to let the loop reap) if the kernel refuses more.
    fn flush_backlog(&mut self) {
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

    fn arm_recv(&mut self, key: Key, io: &mut UringIo) {
        let fd = types::Fd(io.sock.as_raw_fd());
        let sqe = opcode::RecvMulti::new(fd, self.bufs.bgid())
            .build()
            .user_data(user_data(K_RECV, key));
        self.push(sqe);
        io.recv = OpState::Armed;
    }

    fn cancel(&mut self, target: u64, key: Key) {
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
    ) -> Option<io::Result<usize>> {
        let fd = types::Fd(io.sock.as_raw_fd());
        let ud = user_data(K_SEND, key);
        let sqe = if queue.len() == 1 || queue[0].len() >= 64 * 1024 {
            let head = &queue[0];
            opcode::Send::new(fd, head.as_ptr(), head.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(ud)
        } else {
            let n = queue.len().min(MAX_IOV);
            for (iov, buf) in io.iov.iter_mut().zip(queue.iter()) {
                iov.iov_base = buf.as_ptr() as *mut libc::c_void;
                iov.iov_len = buf.len();
            }
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

    fn watch_connect(&mut self, key: Key, fd: std::os::fd::RawFd) {
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
            .build()
            .user_data(user_data(K_CONNECT, key));
        self.push(sqe);
    }

    fn unwatch_connect(&mut self, key: Key, _fd: std::os::fd::RawFd) -> bool {
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

/// One IO thread on io_uring.
struct UringThread<H: Handler> {
    core: Core<H, UringIo>,
    be: Ring,
    acceptor: Option<Acceptor>,
    connector: Connector,
    listener: Option<std::net::TcpListener>,
    accept: OpState,
    stop: StopState,
    wake: OpState,
    /// Where the eventfd read lands; boxed so its address is stable.
    wake_buf: Box<u64>,
    mail: bool,
}

/// Run an IO thread on io_uring until it is stopped.
pub(crate) fn run<H: Handler>(
    ctx: ThreadCtx<H>,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<()> {
    // The ring is created on its own thread: SINGLE_ISSUER ties it to this task.
    let setup = build_ring(ctx.config.ring_entries).and_then(|ring| {
        let bufs = BufRing::new(&ring, &ctx.pool, ctx.config.ring_buffers, BGID)?;
        Ok((ring, bufs))
    });
    let (ring, bufs) = match setup {
        Ok(setup) => {
            ctx.stats
                .ring_buffers
                .store(setup.1.held() as u64, Ordering::Relaxed);
            setup
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let _ = ready.send(Ok(()));
    let mut t = UringThread {
        core: ctx.core(),
        be: Ring {
            ring,
            bufs,
            pool: ctx.pool.clone(),
            inflight: 0,
            backlog: VecDeque::new(),
        },
        acceptor: ctx
            .listener
            .as_ref()
            .map(|l| Acceptor::new(ctx.mailboxes.clone(), ctx.config.nodelay, l)),
        connector: Connector::new(ctx.config.nodelay),
        listener: ctx.listener,
        accept: OpState::Idle,
        stop: StopState::default(),
        wake: OpState::Idle,
        wake_buf: Box::new(0),
        mail: true,
    };
    let res = t.run();
    t.teardown();
    res
}

impl<H: Handler> UringThread<H> {
    fn run(&mut self) -> io::Result<()> {
        loop {
            self.reap();
            if self.mail {
                self.mail = false;
                thread::drain_mailbox(
                    &mut self.core,
                    &mut self.be,
                    &mut self.acceptor,
                    &mut self.connector,
                    &mut self.stop,
                );
            }
            self.stop.check(&mut self.core, &mut self.be);
            let stopping = self.core.is_stopping();
            self.connector
                .expire(&mut self.core, &mut self.be, Instant::now(), stopping);
            self.reconcile_accept();
            if self.core.is_stopping()
                && self.core.live() == 0
                && self.connector.is_idle()
                && self.accept == OpState::Idle
                && self.listener.is_none()
            {
                return Ok(());
            }
            // Re-armed only here, just before sleeping: a wake-up reaped in
            // this pass has already been acted on by the drain above.
            if self.wake == OpState::Idle {
                self.arm_wake();
            }
            self.enter(thread::next_timer(
                &self.acceptor,
                &self.connector,
                &self.stop,
            ))?;
        }
    }

    fn arm_wake(&mut self) {
        let fd = types::Fd(self.core.mailbox.eventfd().raw());
        let buf: *mut u64 = &mut *self.wake_buf;
        let sqe = opcode::Read::new(fd, buf.cast(), 8)
            .build()
            .user_data(K_WAKE);
        self.be.push(sqe);
        self.wake = OpState::Armed;
    }

    /// Submit what is queued and wait for at least one completion (or the timer).
    fn enter(&mut self, timer: Option<Instant>) -> io::Result<()> {
        if self.be.bufs.refill(&self.be.pool) {
            let held = self.be.bufs.held() as u64;
            self.core.stats.ring_buffers.store(held, Ordering::Relaxed);
        }
        self.be.flush_backlog();
        let want = usize::from(self.be.ring.completion().is_empty());
        let res = match timer {
            Some(at) => {
                let d = at.saturating_duration_since(Instant::now());
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.be.ring.submitter().submit_with_args(want, &args)
            }
            None => self.be.ring.submit_and_wait(want),
        };
        match res {
            Ok(_) => Ok(()),
            Err(err) => match err.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(err),
            },
        }
    }

    /// Handle every completion that is ready.
    fn reap(&mut self) {
        loop {
            let batch: [Option<cqueue::Entry>; 64] = {
                let mut cq = self.be.ring.completion();
                std::array::from_fn(|_| cq.next())
            };
            let mut n = 0;
            for cqe in batch.into_iter().flatten() {
                n += 1;
                self.complete(cqe.user_data(), cqe.result(), cqe.flags());
            }
            if n < 64 {
                return;
            }
        }
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.be.inflight -= 1;
        }
        let (kind, key) = decode(ud);
        match kind {
            K_RECV => self.on_recv(key, res, flags, more),
            K_SEND => self.on_send(key, res),
            K_ACCEPT => self.on_accept(res, more),
            K_CONNECT => self.connector.ready(&mut self.core, &mut self.be, key),
            K_WAKE => {
                self.wake = OpState::Idle;
                self.mail = true;
            }
            K_CLOSE if res < 0 => {
                let err = io::Error::from_raw_os_error(-res);
                tracing::debug!(%err, "closing a released socket failed");
            }
            _ => {} // K_CANCEL: the cancel request's own result; K_CLOSE
        }
    }

    fn on_recv(&mut self, key: Key, res: i32, flags: u32, more: bool) {
        let buf = cqueue::buffer_select(flags)
            .and_then(|bid| self.be.bufs.take(bid, res.max(0) as usize));
        if res == -libc::ENOBUFS {
            self.be.bufs.ran_dry();
        }
        let Some(io) = self.core.io_mut(key) else {
            return; // stale: the buffer just goes back to the pool
        };
        if !more {
            io.recv = OpState::Idle;
        }
        if io.closing {
            if !io.busy() {
                self.core.released(&mut self.be, key);
            }
            return;
        }
        match res {
            n if n > 0 => {
                if let Some(buf) = buf {
                    self.core.on_data(&mut self.be, key, buf.freeze());
                }
            }
            0 => self.core.on_eof(&mut self.be, key),
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => {}
            e => {
                let err = io::Error::from_raw_os_error(-e);
                self.core.on_read_error(&mut self.be, key, err);
            }
        }
        // Re-arm a receive that ended while the connection still wants data
        // (buffer ring ran dry, the kernel ended the multishot, or a resume
        // came while a pause's cancel was in flight). The submission goes
        // out with this batch, after the ring has been topped up (in
        // `enter`, or in `submit_early` if the queue fills first).
        if let Some(io) = self.core.io_mut(key)
            && io.want_read
            && io.recv == OpState::Idle
            && !io.closing
            && res != 0
        {
            self.be.arm_recv(key, io);
        }
    }

    fn on_send(&mut self, key: Key, res: i32) {
        let Some(io) = self.core.io_mut(key) else {
            return;
        };
        io.sending = false;
        if io.closing {
            if !io.busy() {
                self.core.released(&mut self.be, key);
            }
            return;
        }
        let res = if res >= 0 {
            Ok(res as usize)
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        self.core.on_write(&mut self.be, key, res);
    }

    fn on_accept(&mut self, res: i32, more: bool) {
        if !more {
            self.accept = OpState::Idle;
        }
        let Some(acceptor) = self.acceptor.as_mut() else {
            return;
        };
        if res >= 0 {
            // SAFETY: the kernel just created this descriptor for us; nothing
            // else owns it.
            let stream = unsafe { TcpStream::from_raw_fd(res) };
            if acceptor.stopped {
                return; // accepted while being cancelled: closed unserved
            }
            match stream.peer_addr() {
                Ok(peer) => acceptor.route(&mut self.core, &mut self.be, stream, peer),
                Err(err) => tracing::debug!(%err, "accepted socket has no peer"),
            }
        } else if res != -libc::ECANCELED {
            let err = io::Error::from_raw_os_error(-res);
            if acceptor.failed(&err, &*self.core.handler) && more {
                self.cancel_accept();
            }
        }
    }

    fn cancel_accept(&mut self) {
        self.be.cancel(K_ACCEPT, THREAD_OP);
        self.accept = OpState::Cancelling;
    }

    /// Arm or cancel the multishot accept to match the accept policy.
    fn reconcile_accept(&mut self) {
        let Some(acceptor) = self.acceptor.as_mut() else {
            return;
        };
        let want = acceptor.wants_accept(Instant::now()) && self.listener.is_some();
        let stopped = acceptor.stopped;
        match (want, self.accept) {
            (true, OpState::Idle) => {
                let fd = types::Fd(self.listener.as_ref().map_or(-1, |l| l.as_raw_fd()));
                let sqe = opcode::AcceptMulti::new(fd)
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(K_ACCEPT);
                self.be.push(sqe);
                self.accept = OpState::Armed;
            }
            (false, OpState::Armed) => self.cancel_accept(),
            _ => {}
        }
        if stopped && self.accept == OpState::Idle {
            self.listener = None; // stop listening: close the socket
        }
    }

    /// Collect the final completions of what is still in flight, then let
    /// the buffer ring go.
    fn teardown(&mut self) {
        if self.wake == OpState::Armed {
            self.be.cancel(K_WAKE, THREAD_OP);
            self.wake = OpState::Cancelling;
        }
        if self.core.live() > 0 {
            self.core.abort_all(&mut self.be);
        }
        if self.accept == OpState::Armed {
            self.be.cancel(K_ACCEPT, THREAD_OP);
        }
        let give_up = Instant::now() + Duration::from_secs(5);
        while self.be.inflight > 0 && Instant::now() < give_up {
            if self
                .enter(Some(Instant::now() + Duration::from_millis(100)))
                .is_err()
            {
                break;
            }
            self.reap();
        }
        if self.be.inflight > 0 {
            tracing::error!(
                inflight = self.be.inflight,
                "io_uring operations still in flight at exit"
            );
        }
        self.be.bufs.unregister(&self.be.ring);
        self.core.stats.ring_buffers.store(0, Ordering::Relaxed);
    }
}
