//! The accepting thread's policy, the same on every engine: pause and
//! resume, backing off when descriptors run out (EMFILE/ENFILE) instead of
//! spinning, `TCP_NODELAY` inherited from the listener, spreading accepted
//! connections over the IO threads round-robin, and how accepting stops
//! (at once, or handing over to a newer listener: `handover.rs`).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::driver::admission::Admission;
use crate::driver::backend::Backend;
use crate::driver::core::Core;
use crate::driver::door;
use crate::driver::handover::Handover;
use crate::driver::mailbox::{Command, Mailbox};
use crate::driver::stats::{CloseReason, ThreadStats};
use crate::handler::Handler;
use crate::lifecycle::{Lifecycle, Refusal, ServerEvent};

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// The accepting thread's policy.
pub(crate) struct Acceptor {
    pub paused: bool,
    /// How accepting stops.
    pub handover: Handover,
    retry_at: Option<Instant>,
    backoff: Duration,
    next: usize,
    pub(super) mailboxes: Arc<[Arc<Mailbox>]>,
    nodelay: NoDelay,
    admission: Arc<Admission>,
}

/// Accepted sockets without an inherited `TCP_NODELAY`, in a row, after
/// which each is given it without checking first.
const NODELAY_MISSES: u8 = 16;

/// The most connections taken from the queue just before the listener
/// closes after a handover. Only a listener that new connections still
/// reach (no newer listener to steer them to) can have more; they are
/// reset when it closes, as they would be without a handover.
const CLOSE_DRAIN_MAX: usize = 4096;

/// How accepted sockets get `TCP_NODELAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoDelay {
    /// Not wanted: the listener has it off, and so do accepted sockets.
    Off,
    /// Set on the listener, whose accepted sockets inherit it on Linux,
    /// but not yet seen on one: each accepted socket is checked, and given
    /// it if it lacks it (a connection queued before the listener had the
    /// option lacks it). `misses` counts sockets that did, in a row.
    Unverified { misses: u8 },
    /// Seen inherited: no system call per connection.
    Inherited,
    /// Set on each accepted socket (the listener refused it, or sockets
    /// kept coming without it).
    PerSocket,
}

impl Acceptor {
    /// The accept policy for `listener`, whose `TCP_NODELAY` is set to
    /// `nodelay` here so that accepted sockets inherit it. `handover`: the
    /// grace period of a handover when accepting stops, for a listener
    /// shared with `SO_REUSEPORT` (ignored if it is not).
    pub fn new(
        mailboxes: Arc<[Arc<Mailbox>]>,
        nodelay: bool,
        listener: &TcpListener,
        admission: Arc<Admission>,
        handover: Option<Duration>,
    ) -> Self {
        let on_listener = SockRef::from(listener).set_tcp_nodelay(nodelay);
        let nodelay = match (nodelay, on_listener) {
            (false, _) => NoDelay::Off,
            (true, Ok(())) => NoDelay::Unverified { misses: 0 },
            (true, Err(err)) => {
                tracing::debug!(%err, "TCP_NODELAY refused on the listener; setting it per connection");
                NoDelay::PerSocket
            }
        };
        let shared = SockRef::from(listener).reuse_port().unwrap_or(false);
        if handover.is_some() && !shared {
            tracing::warn!(
                "the listener is not shared with SO_REUSEPORT: no handover when accepting stops"
            );
        }
        Acceptor {
            paused: false,
            handover: Handover::new(handover.filter(|_| shared)),
            retry_at: None,
            backoff: BACKOFF_MIN,
            next: 0,
            mailboxes,
            nodelay,
            admission,
        }
    }

    /// Give an accepted socket `TCP_NODELAY` if it wants it and lacks it.
    fn apply_nodelay(&mut self, stream: &TcpStream) {
        match self.nodelay {
            NoDelay::Off | NoDelay::Inherited => {}
            NoDelay::PerSocket => {
                let _ = stream.set_nodelay(true);
            }
            NoDelay::Unverified { misses } => {
                if stream.nodelay().unwrap_or(false) {
                    self.nodelay = NoDelay::Inherited;
                    return;
                }
                let _ = stream.set_nodelay(true);
                self.nodelay = if misses + 1 < NODELAY_MISSES {
                    NoDelay::Unverified { misses: misses + 1 }
                } else {
                    tracing::debug!(
                        "accepted sockets lack the listener's TCP_NODELAY; setting it per connection"
                    );
                    NoDelay::PerSocket
                };
            }
        }
    }

    /// Whether accepting should be active now. Draining before a
    /// handover's close, a paused listener accepts too.
    pub fn wants_accept(&mut self, now: Instant) -> bool {
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
        }
        let h = &self.handover;
        h.accepting() && (!self.paused || h.draining()) && self.retry_at.is_none()
    }

    /// When the back-off or a stage of stopping ends, whichever is first.
    pub fn timer(&self) -> Option<Instant> {
        [self.retry_at, self.handover.timer()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Close `listener` now that accepting has ended. After a handover,
    /// first take what is left in its queue: `accept` (non-blocking) until
    /// the queue is empty, each connection routed as usual so it is served
    /// (at most `CLOSE_DRAIN_MAX`); then the handover settles.
    pub fn close<H: Handler, B: Backend, L>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        listener: L,
        mut accept: impl FnMut(&L) -> io::Result<(TcpStream, SocketAddr)>,
    ) {
        let handover = self.handover.draining();
        if handover {
            self.drain_queue(core, be, || accept(&listener));
        }
        drop(listener); // stop listening: close the socket
        if handover {
            let accepted = self.handover.closed(Instant::now());
            tracing::info!(accepted, "listener closed after the handover");
        }
    }

    fn drain_queue<H: Handler, B: Backend>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        mut accept: impl FnMut() -> io::Result<(TcpStream, SocketAddr)>,
    ) {
        for _ in 0..CLOSE_DRAIN_MAX {
            match accept() {
                Ok((stream, peer)) => self.route(core, be, stream, peer),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    if self.failed(&err, &*core.handler) {
                        return; // out of descriptors: the rest are reset
                    }
                }
            }
        }
        tracing::warn!(
            "connections still arriving as the listener closes (is a newer listener running?)"
        );
    }

    /// A failed accept. Returns true when it means "out of descriptors or
    /// memory": accepting then pauses for a growing interval instead of
    /// spinning, while established connections keep being served.
    pub fn failed<H: Lifecycle>(&mut self, err: &io::Error, handler: &H) -> bool {
        match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                tracing::warn!(%err, "accept failed; backing off");
                door::server_event(handler, ServerEvent::AcceptBackoff { error: err });
                true
            }
            _ => {
                tracing::debug!(%err, "accept failed");
                false
            }
        }
    }

    /// A new connection: keep it here or hand it to another IO thread,
    /// round-robin, so connections spread evenly.
    pub fn route<H: Handler, B: Backend>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        stream: TcpStream,
        peer: SocketAddr,
    ) {
        self.backoff = BACKOFF_MIN;
        if self.handover.draining() {
            self.handover.accepted(Instant::now());
        }
        if let Err(reason) = self.admission.admit(peer.ip()) {
            return refuse(core, stream, peer, reason);
        }
        self.apply_nodelay(&stream);
        let target = self.next;
        self.next = (self.next + 1) % self.mailboxes.len();
        if target == 0 {
            adopt(core, be, stream, peer);
        } else {
            self.mailboxes[target].push(Command::Adopt { stream, peer });
        }
    }
}

/// Close a connection over a limit at once, after the handler's one-line
/// refusal if it has one (sent without waiting: a fresh socket's send
/// buffer is empty). Counted as accepted and closed for `limit`.
#[cold]
fn refuse<H: Handler, I>(
    core: &mut Core<H, I>,
    stream: TcpStream,
    peer: SocketAddr,
    reason: Refusal,
) {
    if let Some(line) = door::refusal(&*core.handler, peer, reason) {
        let _ =
            SockRef::from(&stream).send_with_flags(&line, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    }
    drop(stream);
    let stats = &core.stats;
    ThreadStats::add(&stats.accepted, 1);
    ThreadStats::add(&stats.closed, 1);
    ThreadStats::add(&stats.closed_by[CloseReason::Limit as usize], 1);
    ThreadStats::add(&stats.refused[reason as usize], 1);
    tracing::debug!(%peer, ?reason, "connection refused");
    door::server_event(
        &*core.handler,
        ServerEvent::ConnectionRefused { peer, reason },
    );
}

/// Register an accepted socket with the engine and adopt it into the core.
pub(super) fn adopt<H: Handler, B: Backend>(
    core: &mut Core<H, B::Io>,
    be: &mut B,
    stream: TcpStream,
    peer: SocketAddr,
) {
    match be.adopt_io(stream) {
        Ok(io) => core.adopt(be, io, peer, true),
        Err(err) => {
            tracing::warn!(%err, %peer, "could not register a connection");
            core.release_admission(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acceptor(nodelay: bool, listener: &TcpListener) -> Acceptor {
        let mailbox = Arc::new(Mailbox::new(true).unwrap());
        let admission = Arc::new(Admission::new(usize::MAX, None));
        Acceptor::new(Arc::from([mailbox]), nodelay, listener, admission, None)
    }

    /// Connect to `listener` and accept, both with timeouts.
    fn accept_one(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match listener.accept() {
                Ok((server, _)) => return (client, server),
                Err(err)
                    if err.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(err) => panic!("accept: {err}"),
            }
        }
    }

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut acc = acceptor(true, &listener);
        assert!(SockRef::from(&listener).tcp_nodelay().unwrap());
        for _ in 0..2 {
            let (_client, server) = accept_one(&listener);
            acc.apply_nodelay(&server);
            assert!(server.nodelay().unwrap());
            assert_eq!(acc.nodelay, NoDelay::Inherited);
        }
    }

    #[test]
    fn a_socket_without_the_inherited_nodelay_gets_it_set() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut acc = acceptor(true, &listener);
        // As if the listener's option were not passed on.
        SockRef::from(&listener).set_tcp_nodelay(false).unwrap();
        for misses in 1..=NODELAY_MISSES {
            let (_client, server) = accept_one(&listener);
            assert!(!server.nodelay().unwrap());
            acc.apply_nodelay(&server);
            assert!(server.nodelay().unwrap());
            let want = if misses < NODELAY_MISSES {
                NoDelay::Unverified { misses }
            } else {
                NoDelay::PerSocket
            };
            assert_eq!(acc.nodelay, want);
        }
        let (_client, server) = accept_one(&listener);
        acc.apply_nodelay(&server);
        assert!(server.nodelay().unwrap());
    }

    #[test]
    fn a_socket_queued_before_the_listener_had_nodelay_is_given_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        SockRef::from(&listener).set_tcp_nodelay(false).unwrap();
        let addr = listener.local_addr().unwrap();
        let _early = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        let mut acc = acceptor(true, &listener);
        let (_client, early) = accept_one(&listener);
        acc.apply_nodelay(&early);
        assert!(early.nodelay().unwrap());
        assert_eq!(acc.nodelay, NoDelay::Unverified { misses: 1 });
        // Later sockets inherit it, and checking stops.
        let (_client, later) = accept_one(&listener);
        acc.apply_nodelay(&later);
        assert_eq!(acc.nodelay, NoDelay::Inherited);
    }

    #[test]
    fn nodelay_off_clears_it_on_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        SockRef::from(&listener).set_tcp_nodelay(true).unwrap();
        let mut acc = acceptor(false, &listener);
        let (_client, server) = accept_one(&listener);
        acc.apply_nodelay(&server);
        assert!(!server.nodelay().unwrap());
    }
}
