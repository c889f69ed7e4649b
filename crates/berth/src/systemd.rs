//! Running under systemd, without libsystemd: socket activation (a
//! listener passed by the service manager) and readiness notification
//! (`Type=notify`).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // First thing in `main`, before any thread starts (see take_listener).
//! let inherited = berth::systemd::take_listener()?;
//! let mut builder = berth::Server::builder();
//! if let Some(listener) = inherited {
//!     builder = builder.listener(listener); // instead of binding --listen
//! }
//! let server = builder.start(berth::servers::Echo::default())?;
//! berth::systemd::notify("READY=1")?; // a no-op outside systemd
//! // ... until it is time to stop:
//! berth::systemd::notify("STOPPING=1")?;
//! server.shutdown(std::time::Duration::from_secs(30));
//! # Ok(())
//! # }
//! ```

use std::ffi::OsStr;
use std::io;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use socket2::{Domain, Protocol, Socket, Type};

use crate::engine::sys;

/// The environment variables of socket activation.
const LISTEN_ENV: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Why a socket passed by socket activation cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_PID` or `LISTEN_FDS` is not a number.
    #[error("{name} is not a number: {value:?}")]
    Malformed {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// More than one socket was passed; a berth server has one listener.
    #[error(
        "systemd passed {0} sockets; berth serves one (give the socket unit one ListenStream=)"
    )]
    TooMany(usize),
    /// The passed descriptor is not a listening TCP socket.
    #[error("the socket systemd passed is not a listening TCP socket: {0}")]
    NotATcpListener(&'static str),
    /// A system call on the passed descriptor failed (it is not open, say).
    #[error("the socket systemd passed cannot be used: {0}")]
    Io(#[from] io::Error),
}

/// The listening socket passed by socket activation, if this process was
/// started that way: `LISTEN_PID` is this process's id and `LISTEN_FDS`
/// is 1. The descriptor (3) must be a listening TCP socket; it is taken
/// over (marked close-on-exec, so a child process does not inherit it).
///
/// Returns `None` when nothing was passed, when `LISTEN_PID` names another
/// process (the variables were inherited from a parent), and on any call
/// after the first. Call it early in `main`, before starting threads: the
/// variables are then removed from the environment, as `sd_listen_fds(1)`
/// does. With other threads running, changing the environment is unsound
/// in Rust (they may read it at the same time), so they are left; no
/// child can take the socket anyway, as `LISTEN_PID` is not its id.
pub fn take_listener() -> Result<Option<TcpListener>, ActivationError> {
    let Some(pid) = number_from_env("LISTEN_PID")? else {
        return Ok(None);
    };
    if pid != u64::from(std::process::id()) {
        return Ok(None);
    }
    let count = number_from_env("LISTEN_FDS")?.unwrap_or(0);
    if count == 0 {
        return Ok(None);
    }
    if count > 1 {
        return Err(ActivationError::TooMany(
            usize::try_from(count).unwrap_or(usize::MAX),
        ));
    }
    let Some(mut fds) = sys::take_listen_fds(1)? else {
        return Ok(None);
    };
    sys::remove_env_if_single_threaded(&LISTEN_ENV);
    let socket = Socket::from(fds.remove(0));
    socket.set_cloexec(true)?;
    check_tcp_listener(&socket)?;
    Ok(Some(socket.into()))
}

/// A socket fit to be a server's listener: TCP over IPv4 or IPv6, listening.
fn check_tcp_listener(socket: &Socket) -> Result<(), ActivationError> {
    let not = ActivationError::NotATcpListener;
    match socket.domain() {
        Ok(d) if d == Domain::IPV4 || d == Domain::IPV6 => {}
        Ok(_) => return Err(not("not an IPv4 or IPv6 socket")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Err(not("not a socket")),
        Err(e) => return Err(e.into()),
    }
    if socket.r#type()? != Type::STREAM || socket.protocol()? != Some(Protocol::TCP) {
        return Err(not("not a TCP socket (ListenStream= makes one)"));
    }
    if !socket.is_listener()? {
        return Err(not("not listening"));
    }
    Ok(())
}

fn number_from_env(name: &'static str) -> Result<Option<u64>, ActivationError> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ActivationError::Malformed { name, value }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(ActivationError::Malformed {
            name,
            value: v.to_string_lossy().into_owned(),
        }),
    }
}

/// Send `state` (`"READY=1"`, `"STOPPING=1"`, `"STATUS=..."`, one
/// assignment per line) to the service manager, as `sd_notify` does: one
/// datagram to the Unix socket named by `NOTIFY_SOCKET` (a path, or an
/// abstract address when it starts with `@`). Returns `false`, having sent
/// nothing, when `NOTIFY_SOCKET` is not set (not run by systemd, or not
/// `Type=notify`).
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) {
        Some(target) => send_notification(&target, state).map(|()| true),
        None => Ok(false),
    }
}

/// Send `state` to the notification socket `target` (`NOTIFY_SOCKET`).
fn send_notification(target: &OsStr, state: &str) -> io::Result<()> {
    let bytes = target.as_encoded_bytes();
    let addr = match bytes.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
        Some((b'/', _)) => SocketAddr::from_pathname(target)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET={target:?} is neither a path nor an abstract address"),
            ));
        }
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::time::Duration;

    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_notification_reaches_a_path_or_an_abstract_address() {
        let dir = std::env::temp_dir().join(format!("berth-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let by_path = UnixDatagram::bind(&path).unwrap();
        send_notification(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(received(&by_path), "READY=1");
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("berth-notify-test-{}", std::process::id());
        let abstract_addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let by_name = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        send_notification(&OsString::from(format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(received(&by_name), "STOPPING=1");

        let err = send_notification(&OsString::from("vsock:2:1234"), "READY=1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn only_a_listening_tcp_socket_passes_for_a_listener() {
        let listening = Socket::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        check_tcp_listener(&listening).expect("a listening TCP socket");

        let bound = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        bound
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        let udp = Socket::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let unix = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        for (socket, why) in [
            (bound, "not listening"),
            (udp, "not a TCP socket"),
            (unix, "not an IPv4 or IPv6 socket"),
        ] {
            match check_tcp_listener(&socket) {
                Err(ActivationError::NotATcpListener(got)) => {
                    assert!(got.starts_with(why), "{got}")
                }
                other => panic!("{why}: {other:?}"),
            }
        }
    }
}
