//! The readiness engine: epoll through mio, edge-triggered.
//!
//! Reads happen when the socket is readable and the connection wants data;
//! each connection gets at most [`READ_BUDGET`] reads per loop pass, and a
//! connection that still has data goes to the back of the ready queue, so
//! one flooding peer cannot starve the others. A read buffer is taken from
//! the pool only for the read itself, so an idle connection holds none.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream as MioStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::buffer::{BufPool, IoBuf};
use crate::driver::backend::{Backend, CloseMode};
use crate::driver::event_loop::{self, Engine, IoThread, ThreadCtx};
use crate::driver::key::Key;
use crate::driver::mailbox::Mailbox;
use crate::handler::Handler;

/// Reads per connection per loop pass.
const READ_BUDGET: usize = 16;
/// Accepts per loop pass.
const ACCEPT_BUDGET: usize = 256;
/// Most buffers gathered into one `writev`.
const MAX_IOV: usize = 64;

const WAKE: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
/// Set in the tokens of connects in progress.
const CONNECTING: usize = 1 << 62;

fn token(key: Key) -> Token {
    Token(((key.generation as usize) << 32) | key.idx as usize)
}

fn key_of(token: Token) -> Key {
    Key {
        idx: (token.0 & 0xffff_ffff) as u32,
        generation: (token.0 >> 32) as u32,
    }
}

/// Per-connection engine state.
pub(crate) struct EpollIo {
    sock: MioStream,
    /// Readable as far as we know (edge-triggered: until a read says EAGAIN).
    readable: bool,
    /// The peer's end of stream (or an error) was reported: keep reading
    /// until the read that returns it, whatever the size of earlier reads.
    read_closed: bool,
    writable: bool,
    want_read: bool,
    queued: bool,
}

/// One IO thread's epoll instance and listener: the engine of an epoll thread.
pub(crate) struct Epoll {
    registry: Registry,
    /// Connections with data to read, in turn.
    ready: VecDeque<Key>,
    poll: Poll,
    /// The events of the last wait; `None` while they are dispatched.
    events: Option<Events>,
    pool: BufPool,
    mailbox: Arc<Mailbox>,
    /// The listener, on the accepting thread, until accepting stops.
    listener: Option<TcpListener>,
    /// The listener may have connections waiting (edge-triggered).
    accept_ready: bool,
    /// Connections may be waiting and accepting is wanted: do not sleep.
    accept_more: bool,
}

impl Epoll {
    fn schedule(&mut self, key: Key, io: &mut EpollIo) {
        if io.readable && io.want_read && !io.queued {
            io.queued = true;
            self.ready.push_back(key);
        }
    }
}

impl Backend for Epoll {
    type Io = EpollIo;
    // mio's accept creates sockets non-blocking (accept4, SOCK_NONBLOCK).
    const NONBLOCKING: bool = true;
    const PAUSE_SLACK: usize = 0;

    fn adopt_io(&mut self, stream: TcpStream) -> io::Result<EpollIo> {
        Ok(EpollIo {
            sock: MioStream::from_std(stream),
            readable: true,
            read_closed: false,
            writable: true,
            want_read: false,
            queued: false,
        })
    }

    fn attach(&mut self, key: Key, io: &mut EpollIo) {
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(err) = self.registry.register(&mut io.sock, token(key), interest) {
            tracing::warn!(%err, "epoll registration failed");
        }
    }

    fn start_read(&mut self, key: Key, io: &mut EpollIo) {
        io.want_read = true;
        self.schedule(key, io);
    }

    fn stop_read(&mut self, _key: Key, io: &mut EpollIo) {
        io.want_read = false;
    }

    fn start_write(
        &mut self,
        _key: Key,
        io: &mut EpollIo,
        queue: &VecDeque<IoBuf>,
        sent: usize,
    ) -> Option<io::Result<usize>> {
        if !io.writable {
            return None;
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let n = queue.len().min(MAX_IOV);
        for (slice, buf) in slices.iter_mut().zip(queue.iter()) {
            *slice = IoSlice::new(buf);
        }
        slices[0] = IoSlice::new(&queue[0][sent..]);
        loop {
            return match io.sock.write_vectored(&slices[..n]) {
                Ok(n) => Some(Ok(n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    io.writable = false;
                    None
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => Some(Err(err)),
            };
        }
    }

    fn shutdown(&mut self, io: &mut EpollIo, how: std::net::Shutdown) -> io::Result<()> {
        io.sock.shutdown(how)
    }

    fn watch_connect(&mut self, key: Key, fd: std::os::fd::RawFd) {
        let t = Token(token(key).0 | CONNECTING);
        if let Err(err) = self
            .registry
            .register(&mut SourceFd(&fd), t, Interest::WRITABLE)
        {
            tracing::warn!(%err, "epoll registration of a connect failed");
        }
    }

    fn unwatch_connect(&mut self, _key: Key, fd: std::os::fd::RawFd) -> bool {
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        true
    }

    fn close(&mut self, _key: Key, io: &mut EpollIo, mode: CloseMode) -> bool {
        if mode == CloseMode::Abortive {
            let _ = socket2::SockRef::from(&io.sock).set_linger(Some(Duration::ZERO));
        }
        let _ = self.registry.deregister(&mut io.sock);
        io.want_read = false;
        // Nothing is in flight: the socket closes when the core drops `io`.
        true
    }
}

/// Run an IO thread on epoll until it is stopped.
pub(crate) fn run<H: Handler>(
    ctx: ThreadCtx<H>,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<()> {
    match setup(&ctx) {
        Ok(mut engine) => {
            let _ = ready.send(Ok(()));
            let mut th = ctx.io_thread();
            drop(ctx.listener); // the mio clone in the engine is the one in use
            event_loop::run(&mut engine, &mut th)
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            Ok(())
        }
    }
}

fn setup<H: Handler>(ctx: &ThreadCtx<H>) -> io::Result<Epoll> {
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let mailbox = Arc::clone(&ctx.mailboxes[ctx.index]);
    registry.register(
        &mut SourceFd(&mailbox.eventfd().raw()),
        WAKE,
        Interest::READABLE,
    )?;
    let mut listener = match ctx.listener.as_ref() {
        Some(l) => {
            let l = l.try_clone()?;
            l.set_nonblocking(true)?;
            Some(TcpListener::from_std(l))
        }
        None => None,
    };
    if let Some(l) = listener.as_mut() {
        registry.register(l, LISTENER, Interest::READABLE)?;
    }
    Ok(Epoll {
        registry,
        ready: VecDeque::new(),
        poll,
        events: Some(Events::with_capacity(1024)),
        pool: ctx.pool.clone(),
        mailbox,
        listener,
        accept_ready: true,
        accept_more: false,
    })
}

impl Engine for Epoll {
    /// The events of the last wait, then one pass over the connections
    /// with data: at most `READ_BUDGET` reads each.
    fn dispatch<H: Handler>(&mut self, th: &mut IoThread<H, EpollIo>) {
        if let Some(events) = self.events.take() {
            for event in events.iter() {
                match event.token() {
                    WAKE => {
                        self.mailbox.eventfd().drain();
                        th.mail = true;
                    }
                    LISTENER => self.accept_ready = true,
                    Token(t) if t & CONNECTING != 0 => {
                        let key = key_of(Token(t & !CONNECTING));
                        let fd = th.connector.fd(key);
                        let _ = self.registry.deregister(&mut SourceFd(&fd));
                        th.connector.ready(&mut th.core, self, key);
                    }
                    t => self.on_event(th, key_of(t), event),
                }
            }
            self.events = Some(events);
        }
        self.read_ready(th);
    }

    fn sync_accept<H: Handler>(&mut self, th: &mut IoThread<H, EpollIo>) {
        self.accept_more = false;
        let Some(acceptor) = th.acceptor.as_mut() else {
            return;
        };
        if acceptor.handover.should_close(Instant::now()) {
            // Out of `self` while draining, as below.
            let Some(mut listener) = self.listener.take() else {
                return;
            };
            let _ = self.registry.deregister(&mut listener);
            acceptor.close(&mut th.core, self, listener, |l| {
                let (stream, peer) = l.accept()?;
                Ok((TcpStream::from(OwnedFd::from(stream)), peer))
            });
            return;
        }
        // Out of `self` while accepting: routing a connection to this
        // thread registers it with the engine.
        let Some(listener) = self.listener.take() else {
            return;
        };
        for _ in 0..ACCEPT_BUDGET {
            if !self.accept_ready || !acceptor.wants_accept(Instant::now()) {
                break;
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    let stream = TcpStream::from(OwnedFd::from(stream));
                    acceptor.route(&mut th.core, self, stream, peer);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    acceptor.failed(&err, &*th.core.handler);
                }
            }
        }
        self.listener = Some(listener);
        // The budget may have run out with connections still waiting.
        self.accept_more = self.accept_ready && acceptor.wants_accept(Instant::now());
    }

    fn listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(AsFd::as_fd)
    }

    fn is_quiet(&self) -> bool {
        self.listener.is_none()
    }

    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = if !self.ready.is_empty() || self.accept_more {
            Some(Duration::ZERO)
        } else {
            deadline.map(|t| t.saturating_duration_since(Instant::now()))
        };
        let Some(events) = self.events.as_mut() else {
            return Ok(());
        };
        match self.poll.poll(events, timeout) {
            Err(err) if err.kind() != io::ErrorKind::Interrupted => Err(err),
            _ => Ok(()),
        }
    }
}

impl Epoll {
    fn on_event<H: Handler>(
        &mut self,
        th: &mut IoThread<H, EpollIo>,
        key: Key,
        event: &mio::event::Event,
    ) {
        let Some(io) = th.core.io_mut(key) else {
            return;
        };
        let closed = event.is_read_closed() || event.is_error();
        let readable = event.is_readable() || closed;
        let writable = event.is_writable();
        io.read_closed |= closed;
        if readable {
            io.readable = true;
            self.schedule(key, io);
        }
        if writable {
            io.writable = true;
            th.core.retry_write(self, key);
        }
    }

    /// One pass over the connections with data: at most `READ_BUDGET` reads each.
    fn read_ready<H: Handler>(&mut self, th: &mut IoThread<H, EpollIo>) {
        let core = &mut th.core;
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                return;
            };
            let Some(io) = core.io_mut(key) else {
                continue;
            };
            io.queued = false;
            for _ in 0..READ_BUDGET {
                let Some(io) = core.reader(key) else {
                    break;
                };
                let mut buf = self.pool.alloc();
                match io.sock.read(buf.spare_mut()) {
                    Ok(0) => {
                        io.readable = false;
                        core.on_eof(self, key);
                        break;
                    }
                    Ok(n) => {
                        // A short read emptied the socket: skip the read that
                        // would only say EAGAIN (the next arrival is a new
                        // edge) — unless the end of stream was reported, which
                        // brings no further edge and needs its own read.
                        let drained = n < buf.remaining() && !io.read_closed;
                        if drained {
                            io.readable = false;
                        }
                        buf.advance(n);
                        core.on_data(self, key, buf.freeze());
                        if drained {
                            break;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        io.readable = false;
                        break;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        io.readable = false;
                        core.on_read_error(self, key, err);
                        break;
                    }
                }
            }
            if let Some(io) = core.io_mut(key) {
                self.schedule(key, io);
            }
        }
    }
}

impl AsRawFd for EpollIo {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}
