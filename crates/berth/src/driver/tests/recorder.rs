//! [`Recorder`]: the test handler. It logs every callback in order and
//! runs the test's script, which may do in a callback whatever a handler
//! can (write, shut down, close, abort, take a handle, pause, ...).

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use crate::buffer::IoBuf;
use crate::conn::{Conn, ConnHandle, ConnId};
use crate::handler::Handler;
use crate::lifecycle::{Closing, Lifecycle, ServerEvent};

/// One callback (or server event) the core made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cb {
    /// `ServerEvent::ConnectionOpened`.
    Opened,
    Established,
    Read(String),
    ClientClosed,
    WriteCompleted(String),
    Closing,
    /// `connection_reset`, with the OS error number.
    Reset(i32),
    /// `connection_error`, with the OS error number.
    Error(i32),
    /// `ServerEvent::ConnectionClosed`: the slot was freed.
    Closed,
}

/// What a test does in a callback: it sees the callback, the connection,
/// and the handles the test keeps (push a `conn.handle()` to keep one).
pub(super) type Hook = Box<dyn FnMut(&Cb, &mut Conn<'_>, &mut Vec<ConnHandle>) + Send>;

#[derive(Default)]
pub(super) struct Recorder {
    log: Mutex<Vec<(ConnId, Cb)>>,
    hook: Mutex<Option<Hook>>,
    handles: Mutex<Vec<ConnHandle>>,
    closing: Mutex<Closing>,
}

/// A poisoned lock (a panicking hook) still holds good data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

fn errno(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(-1)
}

impl Recorder {
    pub fn script(&self, hook: Hook) {
        *lock(&self.hook) = Some(hook);
    }

    pub fn answer_closing(&self, answer: Closing) {
        *lock(&self.closing) = answer;
    }

    /// The callbacks made since the last call, in order.
    pub fn take_log(&self) -> Vec<(ConnId, Cb)> {
        std::mem::take(&mut *lock(&self.log))
    }

    /// The handles the script kept.
    pub fn take_handles(&self) -> Vec<ConnHandle> {
        std::mem::take(&mut *lock(&self.handles))
    }

    fn record(&self, conn: &mut Conn<'_>, cb: Cb) {
        lock(&self.log).push((conn.id(), cb.clone()));
        if let Some(hook) = lock(&self.hook).as_mut() {
            hook(&cb, conn, &mut lock(&self.handles));
        }
    }
}

impl Lifecycle for Recorder {
    type State = ();

    fn write_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.record(conn, Cb::WriteCompleted(text(&buf)));
    }

    fn closing(&self, conn: &mut Conn<'_>, _: &mut ()) -> Closing {
        self.record(conn, Cb::Closing);
        *lock(&self.closing)
    }

    fn connection_reset(&self, conn: &mut Conn<'_>, _: &mut (), err: &io::Error) {
        self.record(conn, Cb::Reset(errno(err)));
    }

    fn connection_error(&self, conn: &mut Conn<'_>, _: &mut (), err: &io::Error) {
        self.record(conn, Cb::Error(errno(err)));
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        let entry = match event {
            ServerEvent::ConnectionOpened { id, .. } => (id, Cb::Opened),
            ServerEvent::ConnectionClosed { id, .. } => (id, Cb::Closed),
            _ => return,
        };
        lock(&self.log).push(entry);
    }
}

impl Handler for Recorder {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _peer: SocketAddr) {
        self.record(conn, Cb::Established);
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.record(conn, Cb::Read(text(&buf)));
    }

    fn client_closed(&self, conn: &mut Conn<'_>, _: &mut ()) {
        self.record(conn, Cb::ClientClosed);
    }
}
