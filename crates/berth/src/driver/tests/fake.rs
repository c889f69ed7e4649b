//! [`FakeBackend`]: an engine with no kernel behind it. It records every
//! request the core makes, completes nothing by itself (the test reports
//! each completion, as an engine would), and checks the promises the core
//! makes to engines (`backend.rs`): a panic here fails the test.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::RawFd;

use crate::buffer::IoBuf;
use crate::driver::backend::{Backend, CloseMode};
use crate::driver::key::Key;

/// The engine's per-connection state: no socket, just the key it was
/// attached with.
#[derive(Debug, Default)]
pub(super) struct FakeIo {
    pub key: Option<Key>,
}

/// One request the core made of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Req {
    Attach(Key),
    StartRead(Key),
    StopRead(Key),
    /// The bytes of every buffer in the queue, front first.
    StartWrite(Key, Vec<String>),
    Shutdown(Key, Shutdown),
    Close(Key, CloseMode),
    Release(Key),
}

/// What `close` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum CloseStyle {
    /// Released at once (`close` returns `true`), as on epoll.
    #[default]
    AtOnce,
    /// Operations are in flight (`close` returns `false`); the test reports
    /// `released` later, as io_uring does after the final completion.
    Deferred,
}

/// Where a buffer of an in-flight write starts, and its length.
type Span = (usize, usize);

#[derive(Debug, Default)]
pub(super) struct FakeBackend {
    /// Every request, in order (the tests drain it).
    pub reqs: Vec<Req>,
    /// What `close` answers.
    pub close_style: CloseStyle,
    /// Results `start_write` returns at once, in order; when empty, the
    /// write stays in flight until the test reports it.
    pub write_at_once: VecDeque<io::Result<usize>>,
    /// The key of the last connection attached.
    pub last_attached: Option<Key>,
    /// The queue each in-flight write was started with.
    in_flight: HashMap<Key, Vec<Span>>,
    closed: HashSet<Key>,
    released: HashSet<Key>,
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

impl FakeBackend {
    /// Promise 4: after `close`, nothing for that key but `release`.
    fn check_open(&self, key: Key, what: &str) {
        assert!(
            !self.closed.contains(&key),
            "promise 4 broken: {what} for {key:?} after close"
        );
    }

    /// Whether a write of `key` is in flight.
    pub fn writing(&self, key: Key) -> bool {
        self.in_flight.contains_key(&key)
    }

    /// Whether `key` was closed (and not yet released).
    pub fn awaits_release(&self, key: Key) -> bool {
        self.closed.contains(&key) && !self.released.contains(&key)
    }

    /// Promise 2 (and 3, when called at release): the buffers an in-flight
    /// write was started with are still at the front of `queue`, neither
    /// popped, advanced, shortened nor dropped. Only the last may have
    /// grown (an append into the same block).
    pub fn check_untouched(&self, key: Key, queue: &VecDeque<IoBuf>) {
        let Some(sent) = self.in_flight.get(&key) else {
            return;
        };
        assert!(
            queue.len() >= sent.len(),
            "promise 2 broken: a buffer of the write in flight left the queue"
        );
        for (i, (&(ptr, len), buf)) in sent.iter().zip(queue).enumerate() {
            assert_eq!(
                buf.as_ptr() as usize,
                ptr,
                "promise 2 broken: buffer {i} of the write in flight moved or advanced"
            );
            if i + 1 == sent.len() {
                assert!(
                    buf.len() >= len,
                    "promise 2 broken: the last buffer of the write in flight shrank"
                );
            } else {
                assert_eq!(
                    buf.len(),
                    len,
                    "promise 2 broken: buffer {i} of the write in flight changed length"
                );
            }
        }
    }

    /// The engine reports the write in flight: it must have one.
    pub fn finish_write(&mut self, key: Key, queue: &VecDeque<IoBuf>) {
        assert!(self.writing(key), "no write of {key:?} is in flight");
        self.check_untouched(key, queue);
        self.in_flight.remove(&key);
    }

    /// The engine finished closing `key` (before telling the core).
    pub fn finish_close(&mut self, key: Key, queue: &VecDeque<IoBuf>) {
        assert!(
            self.awaits_release(key),
            "{key:?} is not closed, or was already released"
        );
        self.check_untouched(key, queue);
        self.in_flight.remove(&key);
    }
}

impl Backend for FakeBackend {
    type Io = FakeIo;
    const NONBLOCKING: bool = true;
    const PAUSE_SLACK: usize = 0;

    fn adopt_io(&mut self, _stream: TcpStream) -> io::Result<FakeIo> {
        unreachable!("the core tests build their FakeIo directly")
    }

    fn attach(&mut self, key: Key, io: &mut FakeIo) {
        assert!(io.key.is_none(), "attached twice");
        self.check_open(key, "attach");
        io.key = Some(key);
        self.last_attached = Some(key);
        self.reqs.push(Req::Attach(key));
    }

    fn start_read(&mut self, key: Key, _io: &mut FakeIo) {
        self.check_open(key, "start_read");
        self.reqs.push(Req::StartRead(key));
    }

    fn stop_read(&mut self, key: Key, _io: &mut FakeIo) {
        self.check_open(key, "stop_read");
        self.reqs.push(Req::StopRead(key));
    }

    fn start_write(
        &mut self,
        key: Key,
        _io: &mut FakeIo,
        queue: &VecDeque<IoBuf>,
        sent: usize,
    ) -> Option<io::Result<usize>> {
        self.check_open(key, "start_write");
        assert!(
            !self.writing(key),
            "promise 2 broken: start_write while a write of {key:?} is in flight"
        );
        assert!(!queue.is_empty(), "start_write with an empty queue");
        assert!(
            sent < queue[0].len(),
            "the head's written part covers it all"
        );
        // What the kernel is asked to write: the head from `sent` on.
        let unsent = queue
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 0 { text(&b[sent..]) } else { text(b) });
        self.reqs.push(Req::StartWrite(key, unsent.collect()));
        let res = self.write_at_once.pop_front();
        if res.is_none() {
            let spans = queue.iter().map(|b| (b.as_ptr() as usize, b.len()));
            self.in_flight.insert(key, spans.collect());
        }
        res
    }

    fn shutdown(&mut self, io: &mut FakeIo, how: Shutdown) -> io::Result<()> {
        let key = io.key.expect("shutdown of an attached connection");
        self.check_open(key, "shutdown");
        assert!(
            !self.writing(key),
            "shutdown of {key:?} while a write is in flight"
        );
        self.reqs.push(Req::Shutdown(key, how));
        Ok(())
    }

    fn close(&mut self, key: Key, _io: &mut FakeIo, mode: CloseMode) -> bool {
        assert!(
            self.closed.insert(key),
            "promise 4 broken: close of {key:?} twice"
        );
        self.reqs.push(Req::Close(key, mode));
        match self.close_style {
            // Nothing stays in flight: a pending write is simply forgotten.
            CloseStyle::AtOnce => {
                self.in_flight.remove(&key);
                true
            }
            CloseStyle::Deferred => false,
        }
    }

    fn release(&mut self, io: FakeIo) {
        let key = io.key.expect("release of an attached connection");
        assert!(
            self.closed.contains(&key),
            "release of {key:?}, which was never closed"
        );
        assert!(
            self.released.insert(key),
            "promise 4 broken: release of {key:?} twice"
        );
        assert!(
            !self.writing(key),
            "promise 3 broken: {key:?} released while its write is in flight"
        );
        self.reqs.push(Req::Release(key));
    }

    fn watch_connect(&mut self, _key: Key, _fd: RawFd) {
        unreachable!("the core tests make no outbound connects")
    }

    fn unwatch_connect(&mut self, _key: Key, _fd: RawFd) -> bool {
        unreachable!("the core tests make no outbound connects")
    }
}
