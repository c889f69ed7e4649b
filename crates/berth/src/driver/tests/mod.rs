//! The core's rules pinned against a fake engine, with no sockets: each
//! test drives a [`Core`] by reporting the events an engine would (data,
//! end of stream, write completions, errors, releases, mailbox commands)
//! and asserts exactly which callbacks ran ([`Cb`]) and which requests the
//! engine got ([`Req`]). Everything is deterministic and single-threaded.
//!
//! | file | what it holds |
//! |---|---|
//! | `fake.rs` | [`FakeBackend`]: records every request, checks the core's promises to engines |
//! | `recorder.rs` | [`Recorder`]: the handler; logs every callback, runs the test's script |
//! | `half_close.rs` | `client_closed`: once, after every byte before the EOF |
//! | `shutdown.rs` | `shutdown(Write)` only after every queued write completed |
//! | `closing.rs` | the closing hook and its one chance |
//! | `close_mode.rs` | graceful vs abortive close; resets and errors from the engine |
//! | `write_order.rs` | writes from handles and callbacks kept in order |
//! | `release.rs` | a close waits for operations in flight; no calls after close |
//! | `stale_key.rs` | a late completion never reaches the slot's next connection |
//! | `pause.rs` | pause and resume of reading; stashed data in order |
//! | `sides.rs` | whether each side is still connected (`Conn` and `ConnHandle`) |

mod fake;
mod recorder;

mod close_mode;
mod closing;
mod half_close;
mod pause;
mod release;
mod shutdown;
mod sides;
mod stale_key;
mod write_order;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::buffer::BufPool;
use crate::conn::{Conn, ConnHandle, ConnId, Shutdown};
use crate::driver::backend::CloseMode;
use crate::driver::core::Core;
use crate::driver::key::Key;
use crate::driver::limits::Limits;
use crate::driver::mailbox::{Command, Mailbox};
use crate::lifecycle::Closing;

use fake::{CloseStyle, FakeBackend, FakeIo, Req};
use recorder::{Cb, Recorder};

const PEER: &str = "192.0.2.1:4000";

/// A core, its fake engine and its recording handler.
struct Harness {
    core: Core<Recorder, FakeIo>,
    be: FakeBackend,
}

impl Harness {
    fn new() -> Self {
        let pool = BufPool::new(64, 16);
        let mailbox = Arc::new(Mailbox::new(true).expect("eventfd"));
        Harness {
            core: Core::new(
                Arc::new(Recorder::default()),
                pool,
                mailbox,
                0,
                4,
                Limits::unlimited(),
            ),
            be: FakeBackend::default(),
        }
    }

    /// A harness whose engine releases connections later (io_uring-like).
    fn deferred() -> Self {
        let mut h = Harness::new();
        h.be.close_style = CloseStyle::Deferred;
        h
    }

    /// What the handler does in its callbacks from now on.
    fn script(&self, hook: impl FnMut(&Cb, &mut Conn<'_>, &mut Vec<ConnHandle>) + Send + 'static) {
        self.core.handler.script(Box::new(hook));
    }

    /// What `closing` returns from now on.
    fn answer_closing(&self, answer: Closing) {
        self.core.handler.answer_closing(answer);
    }

    /// The handles the script kept.
    fn handles(&self) -> Vec<ConnHandle> {
        self.core.handler.take_handles()
    }

    /// A new connection, adopted as the acceptor would (but with a
    /// `FakeIo`, no socket). The log keeps what adopting did.
    fn adopt(&mut self) -> Key {
        self.be.last_attached = None;
        let peer: SocketAddr = PEER.parse().expect("address");
        self.core
            .adopt(&mut self.be, FakeIo::default(), peer, false);
        self.be
            .last_attached
            .expect("adopt attaches the connection")
    }

    /// A new connection, with the usual start checked and cleared from the
    /// logs: opened, established, reading.
    fn open(&mut self) -> Key {
        let k = self.adopt();
        assert_eq!(self.calls(), [Cb::Opened, Cb::Established]);
        assert_eq!(self.reqs(), [Req::Attach(k), Req::StartRead(k)]);
        k
    }

    /// A new connection whose handler keeps a handle from
    /// `connection_established` on and does nothing else; opened as
    /// [`Harness::open`] checks.
    fn open_held(&mut self) -> (Key, ConnHandle) {
        self.script(|cb, conn, handles| {
            if *cb == Cb::Established {
                handles.push(conn.handle());
            }
        });
        let k = self.open();
        (k, self.handles().pop().expect("handle"))
    }

    /// A new connection whose handler keeps a handle and pauses reading in
    /// `connection_established`: opened, established, but reading never
    /// starts.
    fn open_paused(&mut self) -> (Key, ConnHandle) {
        self.script(|cb, conn, handles| {
            if *cb == Cb::Established {
                handles.push(conn.handle());
                conn.pause_reading();
            }
        });
        let k = self.adopt();
        assert_eq!(self.calls(), [Cb::Opened, Cb::Established]);
        assert_eq!(self.reqs(), [Req::Attach(k)], "reading never starts");
        (k, self.handles().pop().expect("handle"))
    }

    /// The engine received `data`.
    fn data(&mut self, key: Key, data: &str) {
        let mut buf = self.core.pool.alloc();
        assert_eq!(buf.extend_from_slice(data.as_bytes()), data.len());
        self.core.on_data(&mut self.be, key, buf.freeze());
    }

    /// The engine saw the peer's end of stream.
    fn eof(&mut self, key: Key) {
        self.core.on_eof(&mut self.be, key);
    }

    /// A read failed with the OS error `errno`.
    fn read_error(&mut self, key: Key, errno: i32) {
        let err = io::Error::from_raw_os_error(errno);
        self.core.on_read_error(&mut self.be, key, err);
    }

    /// The write in flight wrote `n` bytes.
    fn wrote(&mut self, key: Key, n: usize) {
        self.write_done(key, Ok(n));
    }

    /// The write in flight failed with the OS error `errno`.
    fn write_failed(&mut self, key: Key, errno: i32) {
        self.write_done(key, Err(io::Error::from_raw_os_error(errno)));
    }

    fn write_done(&mut self, key: Key, res: io::Result<usize>) {
        let queue = &self.core.entry(key).expect("live connection").st.wq;
        self.be.finish_write(key, queue);
        self.core.on_write(&mut self.be, key, res);
    }

    /// The engine's last operation of the closed `key` completed.
    fn released(&mut self, key: Key) {
        let queue = &self.core.entry(key).expect("connection not released").st.wq;
        self.be.finish_close(key, queue);
        self.core.released(&mut self.be, key);
    }

    /// Apply what the handles queued, as the IO thread does when woken.
    fn drain(&mut self) {
        let mailbox = Arc::clone(&self.core.mailbox);
        mailbox.drain(|cmd| match cmd {
            Command::Conn { key, op } => self.core.on_op(&mut self.be, key, op),
            other => panic!("unexpected command {other:?}"),
        });
    }

    /// The server began a graceful shutdown.
    fn stop(&mut self) {
        self.core.stop(&mut self.be);
    }

    /// The shutdown deadline passed.
    fn abort_all(&mut self) {
        self.core.abort_all(&mut self.be);
    }

    /// The callbacks made since the last look.
    fn calls(&self) -> Vec<Cb> {
        let log = self.core.handler.take_log();
        log.into_iter().map(|(_, cb)| cb).collect()
    }

    /// The callbacks made since the last look, with their connection.
    fn calls_by_conn(&self) -> Vec<(ConnId, Cb)> {
        self.core.handler.take_log()
    }

    /// The engine requests made since the last look.
    fn reqs(&mut self) -> Vec<Req> {
        std::mem::take(&mut self.be.reqs)
    }

    /// The connection's write queue now.
    fn queue(&mut self, key: Key) -> Vec<String> {
        let e = self.core.entry(key).expect("live connection");
        e.st.wq
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// The connection's id.
    fn id(&mut self, key: Key) -> ConnId {
        self.core.entry(key).expect("live connection").st.id
    }

    /// Nothing happened since the last look.
    fn assert_quiet(&mut self) {
        assert_eq!(self.calls(), []);
        assert_eq!(self.reqs(), []);
    }

    /// Every pooled buffer is back: nothing queued, stashed or leaked.
    fn assert_pool_baseline(&self) {
        assert_eq!(self.core.pool.stats().in_use, 0, "buffers still in use");
    }
}

/// `Read(text)`.
fn read(text: &str) -> Cb {
    Cb::Read(text.into())
}

/// `WriteCompleted(text)`.
fn wrote(text: &str) -> Cb {
    Cb::WriteCompleted(text.into())
}

/// `StartWrite(key, queue)`.
fn start_write(key: Key, queue: &[&str]) -> Req {
    Req::StartWrite(key, queue.iter().map(|s| s.to_string()).collect())
}
