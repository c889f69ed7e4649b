//! Outbound connections, the same on every engine: a non-blocking
//! `connect`, then the engine reports when the socket becomes writable
//! (`Backend::watch_connect`), then the socket's error tells success or
//! failure. A connect that is still pending at its deadline fails with
//! `TimedOut`. A connected socket is adopted like an accepted one and driven
//! by the same handler callbacks.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::driver::backend::Backend;
use crate::driver::core::Core;
use crate::driver::door;
use crate::driver::key::Key;
use crate::handler::Handler;

struct Pending {
    sock: Socket,
    addr: SocketAddr,
    deadline: Instant,
    /// Failed or connected already; the slot waits only for the engine to
    /// finish watching it.
    done: bool,
}

struct Slot {
    generation: u32,
    pending: Option<Pending>,
}

/// The connects in progress on one IO thread.
#[derive(Default)]
pub(crate) struct Connector {
    slots: Vec<Slot>,
    free: Vec<u32>,
    nodelay: bool,
}

impl Connector {
    pub fn new(nodelay: bool) -> Self {
        Connector {
            nodelay,
            ..Default::default()
        }
    }

    /// No connect is in progress (the thread may exit).
    pub fn is_idle(&self) -> bool {
        self.slots.iter().all(|s| s.pending.is_none())
    }

    /// The earliest deadline of a pending connect.
    pub fn timer(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.pending.as_ref().filter(|p| !p.done))
            .map(|p| p.deadline)
            .min()
    }

    /// Begin connecting to `addr`, from `local` if one is given.
    pub fn start<H: Handler, B: Backend>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        timeout: Duration,
    ) {
        let sock = match self.socket(addr, local) {
            Ok(sock) => sock,
            Err(err) => return door::connect_failed(&*core.handler, addr, &err),
        };
        match sock.connect(&addr.into()) {
            Ok(()) => self.connected(core, be, sock, addr),
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {
                let key = self.insert(Pending {
                    sock,
                    addr,
                    deadline: Instant::now() + timeout,
                    done: false,
                });
                let fd = self.fd(key);
                be.watch_connect(key, fd);
            }
            Err(err) => door::connect_failed(&*core.handler, addr, &err),
        }
    }

    fn socket(&self, addr: SocketAddr, local: Option<SocketAddr>) -> io::Result<Socket> {
        // Non-blocking from the start; socket2 adds SOCK_CLOEXEC itself.
        // One system call instead of a socket and four fcntl calls.
        let ty = Type::STREAM.nonblocking();
        let sock = Socket::new(Domain::for_address(addr), ty, Some(Protocol::TCP))?;
        if self.nodelay {
            sock.set_tcp_nodelay(true)?;
        }
        if let Some(local) = local {
            // A local port whose last connection lingers in TIME_WAIT may
            // be bound again; connect still refuses a pair in use.
            sock.set_reuse_address(true)?;
            sock.bind(&local.into())?;
        }
        Ok(sock)
    }

    fn insert(&mut self, pending: Pending) -> Key {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot {
                generation: 0,
                pending: None,
            });
            (self.slots.len() - 1) as u32
        });
        let slot = &mut self.slots[idx as usize];
        slot.pending = Some(pending);
        Key {
            idx,
            generation: slot.generation,
        }
    }

    pub fn fd(&self, key: Key) -> RawFd {
        self.slots
            .get(key.idx as usize)
            .filter(|s| s.generation == key.generation)
            .and_then(|s| s.pending.as_ref())
            .map_or(-1, |p| p.sock.as_raw_fd())
    }

    fn get(&mut self, key: Key) -> Option<&mut Pending> {
        let slot = self.slots.get_mut(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.pending.as_mut()
    }

    fn remove(&mut self, key: Key) -> Option<Pending> {
        let slot = self.slots.get_mut(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let pending = slot.pending.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.idx);
        Some(pending)
    }

    /// The engine finished watching `key` (the socket became writable, or
    /// the watch was cancelled).
    pub fn ready<H: Handler, B: Backend>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        key: Key,
    ) {
        let Some(p) = self.remove(key) else { return };
        if p.done {
            return; // already reported (timed out); the watch just ended
        }
        match p.sock.take_error() {
            Ok(None) => match p.sock.peer_addr() {
                Ok(_) => self.connected(core, be, p.sock, p.addr),
                Err(err) => door::connect_failed(&*core.handler, p.addr, &err),
            },
            Ok(Some(err)) | Err(err) => door::connect_failed(&*core.handler, p.addr, &err),
        }
    }

    fn connected<H: Handler, B: Backend>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        sock: Socket,
        addr: SocketAddr,
    ) {
        // Connected non-blocking; the engine may want the other mode.
        let adopted = if B::NONBLOCKING {
            Ok(())
        } else {
            sock.set_nonblocking(false)
        };
        match adopted.and_then(|()| be.adopt_io(TcpStream::from(sock))) {
            Ok(io) => {
                core.adopt(be, io, addr, false);
            }
            Err(err) => door::connect_failed(&*core.handler, addr, &err),
        }
    }

    /// Fail every connect whose deadline has passed (or all of them, when
    /// the thread is stopping).
    pub fn expire<H: Handler, B: Backend>(
        &mut self,
        core: &mut Core<H, B::Io>,
        be: &mut B,
        now: Instant,
        stopping: bool,
    ) {
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            let key = Key {
                idx: idx as u32,
                generation: slot.generation,
            };
            let Some(p) = self.get(key) else { continue };
            if p.done || (!stopping && p.deadline > now) {
                continue;
            }
            p.done = true;
            let (addr, fd) = (p.addr, p.sock.as_raw_fd());
            let err = if stopping {
                io::Error::new(io::ErrorKind::Interrupted, "server shutting down")
            } else {
                io::Error::new(io::ErrorKind::TimedOut, "connect timed out")
            };
            door::connect_failed(&*core.handler, addr, &err);
            if be.unwatch_connect(key, fd) {
                self.remove(key);
            }
        }
    }
}
