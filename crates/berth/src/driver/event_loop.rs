//! The IO thread's loop, written once for every engine.
//!
//! An [`IoThread`] holds what is the same on every engine: the connection
//! table ([`Core`]), the accept policy, the connector, the timers and the
//! mailbox. An [`Engine`] adds only what touches the kernel: dispatching
//! the events its last wait collected, keeping the listener in line with
//! the accept policy, and submitting what is pending while it waits for
//! the next events until a deadline. [`run`] is the loop:
//!
//! 1. read the clock (once a pass) and dispatch the events (completions or
//!    readiness) into the core;
//! 2. drain the mailbox if it was signalled;
//! 3. fire the deadlines that passed (shutdown, connects, connection timers);
//! 4. bring accepting in line with the policy; after a handover
//!    (`handover.rs`), stop the IO threads once it has settled;
//! 5. exit once stopped with nothing live or in flight;
//! 6. wait for events until the nearest deadline.

use std::io;
use std::net::TcpListener;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buffer::BufPool;
use crate::driver::acceptor::{self, Acceptor};
use crate::driver::admission::Admission;
use crate::driver::backend::Backend;
use crate::driver::connector::Connector;
use crate::driver::core::Core;
use crate::driver::door;
use crate::driver::handover;
use crate::driver::limits::Limits;
use crate::driver::mailbox::{Command, Mailbox};
use crate::driver::stats::ThreadStats;
use crate::driver::timers::Timers;
use crate::engine::sys;
use crate::handler::Handler;
use crate::lifecycle::ServerEvent;

/// Settings an IO thread needs from the builder.
#[derive(Debug, Clone)]
pub(crate) struct ThreadConfig {
    pub max_pooled_conns: usize,
    pub ring_buffers: u16,
    pub ring_entries: u32,
    pub nodelay: bool,
    /// Accepted connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Write limits and timeouts for every connection.
    pub limits: Limits,
    /// The grace period of a handover when accepting stops, for a
    /// listener shared with `SO_REUSEPORT` (`handover.rs`); `None`: the
    /// listener closes at once.
    pub handover: Option<Duration>,
}

/// Everything an IO thread is started with.
pub(crate) struct ThreadCtx<H: Handler> {
    pub index: usize,
    pub handler: Arc<H>,
    pub pool: BufPool,
    pub mailboxes: Arc<[Arc<Mailbox>]>,
    /// The listener, for the accepting thread (thread 0) only.
    pub listener: Option<TcpListener>,
    pub config: ThreadConfig,
    pub stats: Arc<ThreadStats>,
    /// The server's connection limits (accepted connections only).
    pub admission: Arc<Admission>,
}

impl<H: Handler> ThreadCtx<H> {
    /// The engine-independent half of the thread this context starts.
    pub fn io_thread<I>(&self) -> IoThread<H, I> {
        let threads = self.mailboxes.len().max(1);
        let mut core = Core::new(
            Arc::clone(&self.handler),
            self.pool.clone(),
            Arc::clone(&self.mailboxes[self.index]),
            self.index,
            self.config.max_pooled_conns.div_ceil(threads),
            self.config.limits,
        );
        core.stats = Arc::clone(&self.stats);
        core.admission = Some(Arc::clone(&self.admission));
        core.proxy_protocol = self.config.proxy_protocol;
        IoThread {
            core,
            acceptor: self.listener.as_ref().map(|l| {
                Acceptor::new(
                    Arc::clone(&self.mailboxes),
                    self.config.nodelay,
                    l,
                    Arc::clone(&self.admission),
                    self.config.handover,
                )
            }),
            connector: Connector::new(self.config.nodelay),
            timers: Timers::default(),
            mail: true,
        }
    }
}

/// The kernel half of an IO thread's loop (the per-connection half is
/// [`Backend`]).
pub(crate) trait Engine: Backend + Sized {
    /// Handle every event the last [`Engine::wait`] collected, and any
    /// work an earlier pass left over (a readiness engine's read budget),
    /// calling into `th`. A mailbox wake-up sets `th.mail`.
    fn dispatch<H: Handler>(&mut self, th: &mut IoThread<H, Self::Io>);
    /// Bring the listener in line with `th.acceptor`: arm or cancel an
    /// accept, or accept what is waiting, and close the listener once
    /// accepting has stopped for good.
    fn sync_accept<H: Handler>(&mut self, th: &mut IoThread<H, Self::Io>);
    /// The listener, while it is open.
    fn listener_fd(&self) -> Option<BorrowedFd<'_>>;
    /// The listener is closed and no operation of the thread's own is in
    /// flight (the thread may exit).
    fn is_quiet(&self) -> bool;
    /// Submit what is pending and wait for events until `deadline` (`None`:
    /// until one arrives). Returns at once if work is left over.
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()>;
    /// After the loop: end what is left and collect final completions.
    fn teardown<H: Handler>(&mut self, th: &mut IoThread<H, Self::Io>) {
        let _ = th;
    }
}

/// The engine-independent state of one IO thread.
pub(crate) struct IoThread<H: Handler, I> {
    pub core: Core<H, I>,
    /// The accept policy, on the accepting thread only.
    pub acceptor: Option<Acceptor>,
    pub connector: Connector,
    pub timers: Timers,
    /// The mailbox was signalled: drain it in this pass.
    pub mail: bool,
}

/// Run the loop until the thread is stopped and idle, then tear down.
pub(crate) fn run<H: Handler, E: Engine>(
    engine: &mut E,
    th: &mut IoThread<H, E::Io>,
) -> io::Result<()> {
    let res = run_loop(engine, th);
    engine.teardown(th);
    res
}

fn run_loop<H: Handler, E: Engine>(engine: &mut E, th: &mut IoThread<H, E::Io>) -> io::Result<()> {
    loop {
        let now = Instant::now();
        th.core.set_now(now);
        engine.dispatch(th);
        if th.mail {
            th.mail = false;
            th.drain_mailbox(engine);
        }
        th.expire(engine, now);
        engine.sync_accept(th);
        th.settle(engine);
        if th.is_done() && engine.is_quiet() {
            return Ok(());
        }
        engine.wait(th.next_deadline())?;
    }
}

impl<H: Handler, I> IoThread<H, I> {
    /// Stopped, with no connection and no connect left.
    fn is_done(&self) -> bool {
        self.core.is_stopping() && self.core.live() == 0 && self.connector.is_idle()
    }

    /// The nearest deadline the thread keeps.
    pub fn next_deadline(&self) -> Option<Instant> {
        let accept = self.acceptor.as_ref().and_then(Acceptor::timer);
        let wheel = self.core.wheel.next_deadline();
        self.timers.nearest([accept, self.connector.timer(), wheel])
    }

    /// Fire what is due at `now`: the shutdown deadline, connect timeouts,
    /// connection timers.
    fn expire<B: Backend<Io = I>>(&mut self, be: &mut B, now: Instant) {
        self.core.fire_timers(be, now);
        if self.timers.stop_due(now, self.core.live()) {
            tracing::info!(
                live = self.core.live(),
                "shutdown deadline passed; closing the rest abortively"
            );
            self.core.abort_all(be);
        }
        let stopping = self.core.is_stopping();
        self.connector.expire(&mut self.core, be, now, stopping);
    }

    /// Apply every command queued by other threads, in order.
    fn drain_mailbox<E: Engine<Io = I>>(&mut self, be: &mut E) {
        let mailbox = Arc::clone(&self.core.mailbox);
        mailbox.drain(|cmd| match cmd {
            Command::Conn { key, op } => self.core.on_op(be, key, op),
            Command::Adopt { stream, peer } => acceptor::adopt(&mut self.core, be, stream, peer),
            Command::Connect {
                addr,
                local,
                timeout,
            } => {
                if self.core.is_stopping() {
                    let err = io::Error::new(io::ErrorKind::Interrupted, "server shutting down");
                    door::connect_failed(&*self.core.handler, addr, &err);
                } else {
                    self.connector
                        .start(&mut self.core, be, addr, local, timeout);
                }
            }
            Command::PauseAccept => self.set_paused(true),
            Command::ResumeAccept => self.set_paused(false),
            Command::Stop { deadline } => self.on_stop(be, deadline),
            Command::Hurry { deadline } => self.timers.hurry(deadline),
        });
    }

    /// A graceful shutdown was asked for. The accepting thread of a shared
    /// listener steers new connections away from it and hands over
    /// (`handover.rs`): the IO threads are stopped only when that has
    /// settled ([`IoThread::settle`]). Otherwise they are stopped now.
    fn on_stop<E: Engine<Io = I>>(&mut self, be: &mut E, deadline: Instant) {
        if let Some(a) = self.acceptor.as_mut() {
            if a.handover.steers()
                && let Some(fd) = be.listener_fd()
            {
                steer_away(fd);
            }
            if !a.handover.stop(Instant::now(), deadline) {
                return;
            }
        }
        self.stop_threads(be, deadline);
    }

    /// After a handover: stop the IO threads once it has settled.
    fn settle<B: Backend<Io = I>>(&mut self, be: &mut B) {
        let now = Instant::now();
        let due = self.acceptor.as_mut().and_then(|a| a.handover.settled(now));
        if let Some(deadline) = due {
            tracing::info!("handover settled; draining connections");
            self.stop_threads(be, deadline);
        }
    }

    /// Stop this thread (and, from the accepting thread, the others): no
    /// new connections; each open one finishes its writes and closes.
    fn stop_threads<B: Backend<Io = I>>(&mut self, be: &mut B, deadline: Instant) {
        if let Some(a) = self.acceptor.as_mut() {
            // Forwarded after every hand-over already queued, so no
            // connection reaches a thread after it stopped.
            for mb in a.mailboxes.iter().skip(1) {
                mb.push(Command::Stop { deadline });
            }
        }
        self.timers.set_stop(deadline);
        self.core.stop(be);
        self.connector
            .expire(&mut self.core, be, Instant::now(), true);
    }

    fn set_paused(&mut self, paused: bool) {
        let Some(a) = self.acceptor.as_mut() else {
            return;
        };
        if a.paused == paused {
            return;
        }
        a.paused = paused;
        let event = if paused {
            tracing::info!("accepting paused; new connections wait in the backlog");
            ServerEvent::AcceptingPaused
        } else {
            tracing::info!("accepting resumed");
            ServerEvent::AcceptingResumed
        };
        door::server_event(&*self.core.handler, event);
    }
}

/// Attach the steering program to the listener's reuseport group, so new
/// connections go to the newest listener (`handover.rs`).
fn steer_away(listener: BorrowedFd<'_>) {
    match sys::attach_reuseport_cbpf(listener, &handover::steering_program()) {
        Ok(()) => tracing::info!(
            index = handover::STEER_TO_INDEX,
            "handing over: new connections go to the newer listener on this address"
        ),
        Err(err) => tracing::warn!(
            %err,
            "could not steer new connections away (SO_ATTACH_REUSEPORT_CBPF); \
             some may reach this listener until it closes"
        ),
    }
}
