//! The io_uring engine: one ring per IO thread, multishot accept, multishot
//! receive into a provided-buffer ring, one `io_uring_enter` per batch
//! (released sockets are closed in the batch too).
//!
//! Every submission carries `user_data` = generation | slot | kind, so a
//! completion that arrives late never reaches the slot's next connection.
//! Every submission ends in exactly one final completion (one without
//! `IORING_CQE_F_MORE`); `inflight` counts them, and a connection is released
//! only when none of its operations is still in flight.
//!
//! - `submit.rs`: the ring, its backlog, the per-connection operations
//!   (`Backend`);
//! - this file: the thread's loop half (`Engine`): reaping completions,
//!   the accept, the wake-up, waiting;
//! - `ops.rs`: what a submission carries (`user_data`) and an operation's state;
//! - `bufring.rs`: the provided-buffer ring.

mod bufring;
mod ops;
mod submit;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, types};

use crate::driver::event_loop::{self, Engine, IoThread, ThreadCtx};
use crate::driver::key::Key;
use crate::handler::Handler;
pub(crate) use bufring::BufRing;
use ops::{BGID, K_ACCEPT, K_CLOSE, K_CONNECT, K_RECV, K_SEND, K_WAKE, OpState, THREAD_OP, decode};
use submit::Ring;

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
    let mut th = ctx.io_thread();
    let mut engine = Ring::new(
        ring,
        bufs,
        ctx.pool.clone(),
        Arc::clone(&ctx.stats),
        Arc::clone(&ctx.mailboxes[ctx.index]),
        ctx.listener,
    );
    event_loop::run(&mut engine, &mut th)
}

impl Engine for Ring {
    /// Handle every completion that is ready.
    fn dispatch<H: Handler>(&mut self, th: &mut IoThread<H, Self::Io>) {
        loop {
            let batch: [Option<cqueue::Entry>; 64] = {
                let mut cq = self.ring.completion();
                std::array::from_fn(|_| cq.next())
            };
            let mut n = 0;
            for cqe in batch.into_iter().flatten() {
                n += 1;
                self.complete(th, cqe.user_data(), cqe.result(), cqe.flags());
            }
            if n < 64 {
                return;
            }
        }
    }

    /// Arm or cancel the multishot accept to match the accept policy, and
    /// close the listener when accepting ends: after a handover, once the
    /// multishot accept's final completion is reaped (every connection it
    /// took routed), with the queue emptied by non-blocking accepts first.
    fn sync_accept<H: Handler>(&mut self, th: &mut IoThread<H, Self::Io>) {
        let Some(acceptor) = th.acceptor.as_mut() else {
            return;
        };
        let now = Instant::now();
        let close = acceptor.handover.should_close(now);
        let want = !close && acceptor.wants_accept(now) && self.listener.is_some();
        match (want, self.accept) {
            (true, OpState::Idle) => {
                let fd = types::Fd(self.listener.as_ref().map_or(-1, |l| l.as_raw_fd()));
                let sqe = opcode::AcceptMulti::new(fd)
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(K_ACCEPT);
                self.push(sqe);
                self.accept = OpState::Armed;
            }
            (false, OpState::Armed) => self.cancel_accept(),
            _ => {}
        }
        if !close || self.accept != OpState::Idle {
            return;
        }
        // Out of `self` while draining: routing a connection to this thread
        // submits its receive.
        let Some(listener) = self.listener.take() else {
            return;
        };
        // Accepting from here on may only take what is already queued.
        let drainable = listener
            .set_nonblocking(true)
            .inspect_err(|err| tracing::warn!(%err, "cannot drain the listener's queue"))
            .is_ok();
        acceptor.close(&mut th.core, self, listener, |l: &TcpListener| {
            if drainable {
                l.accept()
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        });
    }

    fn listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(AsFd::as_fd)
    }

    fn is_quiet(&self) -> bool {
        self.accept == OpState::Idle && self.listener.is_none()
    }

    /// Submit what is queued and wait for at least one completion (or the
    /// deadline).
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        // Re-armed only here, just before sleeping: a wake-up reaped in
        // this pass has already been acted on by the mailbox drain.
        if self.wake == OpState::Idle {
            self.arm_wake();
        }
        self.enter(deadline)
    }

    /// Collect the final completions of what is still in flight, then let
    /// the buffer ring go.
    fn teardown<H: Handler>(&mut self, th: &mut IoThread<H, Self::Io>) {
        if self.wake == OpState::Armed {
            self.cancel(K_WAKE, THREAD_OP);
            self.wake = OpState::Cancelling;
        }
        if th.core.live() > 0 {
            th.core.abort_all(self);
        }
        if self.accept == OpState::Armed {
            self.cancel(K_ACCEPT, THREAD_OP);
        }
        let give_up = Instant::now() + Duration::from_secs(5);
        while self.inflight > 0 && Instant::now() < give_up {
            if self
                .enter(Some(Instant::now() + Duration::from_millis(100)))
                .is_err()
            {
                break;
            }
            self.dispatch(th);
        }
        if self.inflight > 0 {
            tracing::error!(
                inflight = self.inflight,
                "io_uring operations still in flight at exit"
            );
        }
        self.bufs.unregister(&self.ring);
        self.stats.ring_buffers.store(0, Ordering::Relaxed);
    }
}

impl Ring {
    fn arm_wake(&mut self) {
        let fd = types::Fd(self.mailbox.eventfd().raw());
        let buf: *mut u64 = &mut *self.wake_buf;
        let sqe = opcode::Read::new(fd, buf.cast(), 8)
            .build()
            .user_data(K_WAKE);
        self.push(sqe);
        self.wake = OpState::Armed;
    }

    /// Submit what is queued and wait for at least one completion (or the timer).
    fn enter(&mut self, timer: Option<Instant>) -> io::Result<()> {
        if self.bufs.refill(&self.pool) {
            let held = self.bufs.held() as u64;
            self.stats.ring_buffers.store(held, Ordering::Relaxed);
        }
        self.flush_backlog();
        let want = usize::from(self.ring.completion().is_empty());
        let res = match timer {
            Some(at) => {
                let d = at.saturating_duration_since(Instant::now());
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None => self.ring.submit_and_wait(want),
        };
        match res {
            Ok(_) => Ok(()),
            Err(err) => match err.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(err),
            },
        }
    }

    fn complete<H: Handler>(
        &mut self,
        th: &mut IoThread<H, submit::UringIo>,
        ud: u64,
        res: i32,
        flags: u32,
    ) {
        let more = cqueue::more(flags);
        if !more {
            self.inflight -= 1;
        }
        let (kind, key) = decode(ud);
        match kind {
            K_RECV => self.on_recv(th, key, res, flags, more),
            K_SEND => self.on_send(th, key, res),
            K_ACCEPT => self.on_accept(th, res, more),
            K_CONNECT => th.connector.ready(&mut th.core, self, key),
            K_WAKE => {
                self.wake = OpState::Idle;
                th.mail = true;
            }
            K_CLOSE if res < 0 => {
                let err = io::Error::from_raw_os_error(-res);
                tracing::debug!(%err, "closing a released socket failed");
            }
            _ => {} // K_CANCEL: the cancel request's own result; K_CLOSE
        }
    }

    fn on_recv<H: Handler>(
        &mut self,
        th: &mut IoThread<H, submit::UringIo>,
        key: Key,
        res: i32,
        flags: u32,
        more: bool,
    ) {
        let core = &mut th.core;
        let buf =
            cqueue::buffer_select(flags).and_then(|bid| self.bufs.take(bid, res.max(0) as usize));
        if res == -libc::ENOBUFS {
            self.bufs.ran_dry();
        }
        let Some(io) = core.io_mut(key) else {
            return; // stale: the buffer just goes back to the pool
        };
        if !more {
            io.recv = OpState::Idle;
        }
        let uncapped = self.uncap_recv(res);
        if io.closing {
            if !io.busy() {
                core.released(self, key);
            }
            return;
        }
        match res {
            n if n > 0 => {
                if let Some(buf) = buf {
                    core.on_data(self, key, buf.freeze());
                }
            }
            0 => core.on_eof(self, key),
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED || uncapped => {}
            e => {
                let err = io::Error::from_raw_os_error(-e);
                core.on_read_error(self, key, err);
            }
        }
        // Re-arm a receive that ended while the connection still wants data
        // (buffer ring ran dry, the kernel ended the multishot, or a resume
        // came while a pause's cancel was in flight). The submission goes
        // out with this batch, after the ring has been topped up (in
        // `enter`, or in `submit_early` if the queue fills first).
        if let Some(io) = core.io_mut(key)
            && io.want_read
            && io.recv == OpState::Idle
            && !io.closing
            && res != 0
        {
            self.arm_recv(key, io);
        }
    }

    fn on_send<H: Handler>(&mut self, th: &mut IoThread<H, submit::UringIo>, key: Key, res: i32) {
        let core = &mut th.core;
        let Some(io) = core.io_mut(key) else {
            return;
        };
        io.sending = false;
        if io.closing {
            if !io.busy() {
                core.released(self, key);
            }
            return;
        }
        let res = if res >= 0 {
            Ok(res as usize)
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        core.on_write(self, key, res);
    }

    fn on_accept<H: Handler>(
        &mut self,
        th: &mut IoThread<H, submit::UringIo>,
        res: i32,
        more: bool,
    ) {
        if !more {
            self.accept = OpState::Idle;
        }
        let Some(acceptor) = th.acceptor.as_mut() else {
            return;
        };
        if res >= 0 {
            // SAFETY: the kernel just created this descriptor for us; nothing
            // else owns it.
            let stream = unsafe { TcpStream::from_raw_fd(res) };
            if acceptor.handover.is_stopped() {
                return; // accepted while being cancelled: closed unserved
            }
            match stream.peer_addr() {
                Ok(peer) => acceptor.route(&mut th.core, self, stream, peer),
                Err(err) => tracing::debug!(%err, "accepted socket has no peer"),
            }
        } else if res != -libc::ECANCELED {
            let err = io::Error::from_raw_os_error(-res);
            if acceptor.failed(&err, &*th.core.handler) && more {
                self.cancel_accept();
            }
        }
    }

    fn cancel_accept(&mut self) {
        self.cancel(K_ACCEPT, THREAD_OP);
        self.accept = OpState::Cancelling;
    }
}
