//! The listening socket: the default one, or one the user supplies (the
//! seed's `CreateListeningSocket`).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, Socket, Type};

/// A listening socket supplied by the user instead of the default one.
#[derive(Debug)]
pub enum ListenerSource {
    /// A socket2 socket, bound (and possibly already listening); the server
    /// calls `listen` with the configured backlog.
    Socket(Socket),
    /// A std listener, already listening.
    Std(TcpListener),
    /// An inherited descriptor of a listening TCP socket (for example from
    /// systemd socket activation).
    Fd(OwnedFd),
}

impl From<Socket> for ListenerSource {
    fn from(s: Socket) -> Self {
        ListenerSource::Socket(s)
    }
}

impl From<TcpListener> for ListenerSource {
    fn from(l: TcpListener) -> Self {
        ListenerSource::Std(l)
    }
}

impl From<OwnedFd> for ListenerSource {
    fn from(fd: OwnedFd) -> Self {
        ListenerSource::Fd(fd)
    }
}

impl ListenerSource {
    pub(crate) fn into_listener(self, backlog: i32) -> io::Result<TcpListener> {
        match self {
            ListenerSource::Socket(s) => {
                s.listen(backlog)?;
                Ok(s.into())
            }
            ListenerSource::Std(l) => Ok(l),
            ListenerSource::Fd(fd) => {
                let s = Socket::from(fd);
                if s.r#type()? != Type::STREAM {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "inherited descriptor is not a stream socket",
                    ));
                }
                Ok(s.into())
            }
        }
    }
}

/// The default listener: IPv4 or IPv6 per `addr`, `SO_REUSEADDR`, `backlog`;
/// with `reuse_port`, `SO_REUSEPORT` too, so that a newer process can listen
/// on the same address beside this one.
pub(crate) fn default_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}
