//! What the tests of `berth_pop3::server` share: one test per engine, a
//! Maildir in a temporary directory, a server on a free loopback port and
//! a client whose every read is bounded.

// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::EngineChoice;
use berth_pop3::Users;
use berth_pop3::demo::create_demo_maildir;
use berth_pop3::server::{Pop3Server, Pop3ServerBuilder};

/// The bound on every wait.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The granularity of the core's timer wheel: an idle timeout may run out
/// up to this much before a full period has passed since the last byte.
pub const TICK: Duration = Duration::from_millis(10);

/// Define one `#[test]` per engine for each named function taking the
/// engine.
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $( #[test] fn $name() { super::$name(berth::EngineChoice::Uring) } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name(berth::EngineChoice::Epoll) } )*
        }
    };
}
pub(crate) use both_engines;

/// A Maildir tree and its users in a temporary directory.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub maildir: PathBuf,
    pub users: Users,
}

impl Fixture {
    /// The demo Maildir: `alice` / `wonderland` with two messages.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let demo = create_demo_maildir(dir.path(), &[("alice", "wonderland")], 2).unwrap();
        Fixture {
            users: Users::load(&demo.users_file).unwrap(),
            maildir: demo.maildir,
            _dir: dir,
        }
    }

    /// `alice` / `wonderland` with an empty mailbox.
    pub fn empty() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(maildir.join("alice").join(sub)).unwrap();
        }
        Fixture {
            users: Users::parse("alice:wonderland\n").unwrap(),
            maildir,
            _dir: dir,
        }
    }

    pub fn builder(&self) -> Pop3ServerBuilder {
        Pop3Server::builder(self.users.clone(), &self.maildir).workers(2)
    }

    /// alice's mailbox directory.
    pub fn mailbox(&self) -> PathBuf {
        self.maildir.join("alice")
    }

    /// Deliver `raw` to alice's mailbox as `sub/name` (through `tmp/`).
    pub fn deliver(&self, name: &str, raw: &[u8]) -> PathBuf {
        let temp = self.mailbox().join("tmp").join("delivery");
        fs::write(&temp, raw).unwrap();
        let path = self.mailbox().join(name);
        fs::rename(&temp, &path).unwrap();
        path
    }

    /// The files of alice's mailbox (`new/` and `cur/`).
    pub fn messages(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|sub| fs::read_dir(self.mailbox().join(sub)).unwrap().count())
            .sum()
    }
}

pub fn start(builder: Pop3ServerBuilder, engine: EngineChoice) -> Pop3Server {
    start_with(builder, berth::Server::builder(), engine)
}

pub fn start_with(
    builder: Pop3ServerBuilder,
    server: berth::ServerBuilder,
    engine: EngineChoice,
) -> Pop3Server {
    let server = server
        .listen("127.0.0.1:0".parse().unwrap())
        .io_threads(2)
        .engine(engine);
    builder.start(server).expect("server starts")
}

/// A server with one IO thread (every connection on it).
pub fn start_one_io_thread(builder: Pop3ServerBuilder, engine: EngineChoice) -> Pop3Server {
    let server = berth::Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .io_threads(1)
        .engine(engine);
    builder.start(server).expect("server starts")
}

/// A client that has read the greeting.
pub struct Client {
    pub stream: TcpStream,
    replies: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(server: &Pop3Server) -> Client {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let replies = BufReader::new(stream.try_clone().unwrap());
        let mut client = Client { stream, replies };
        assert!(client.line().starts_with("+OK"));
        client
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.replies.read_line(&mut line).unwrap();
        line
    }

    /// Send `command` and return the first line of its reply.
    pub fn command(&mut self, command: &str) -> String {
        self.send(&format!("{command}\r\n"));
        self.line()
    }

    /// Send raw bytes.
    pub fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).unwrap();
    }

    /// The body of a multi-line response, through its terminator, as sent.
    pub fn body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let start = body.len();
            let n = self.replies.read_until(b'\n', &mut body).unwrap();
            assert!(n > 0, "end of stream inside a multi-line response");
            if &body[start..] == b".\r\n" {
                return body;
            }
        }
    }

    /// Log in as alice; returns the PASS reply.
    pub fn login(&mut self) -> String {
        assert!(self.command("USER alice").starts_with("+OK"));
        let pass = self.command("PASS wonderland");
        assert!(pass.starts_with("+OK maildrop has "), "{pass}");
        pass
    }

    /// Whether anything (a reply, or the end of the stream) has arrived
    /// that is not read yet; does not wait.
    pub fn has_unread(&mut self) -> bool {
        if !self.replies.buffer().is_empty() {
            return true;
        }
        self.stream.set_nonblocking(true).unwrap();
        let peeked = self.stream.peek(&mut [0; 1]);
        self.stream.set_nonblocking(false).unwrap();
        match peeked {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("peek: {e}"),
        }
    }

    /// Send `command`, then read until the server closes; return what came.
    pub fn rest_after(mut self, command: &str) -> String {
        self.send(&format!("{command}\r\n"));
        self.rest()
    }

    /// Read until the server closes; return what came.
    pub fn rest(mut self) -> String {
        let mut rest = String::new();
        self.replies.read_to_string(&mut rest).unwrap();
        rest
    }
}

/// Wait until no mailbox is locked.
pub fn wait_unlocked(server: &Pop3Server) {
    let locks = server.server().handler().inner().shared().locks();
    wait_for("the mailbox to be unlocked", || locks.locked_count() == 0);
}

/// Wait (bounded) until `done` holds.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The lines of a stored message without their line ends (LF, or CR LF).
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split_inclusive(|&b| b == b'\n')
        .map(|line| match line.strip_suffix(b"\n") {
            Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
            None => line,
        })
}

/// The wire form of a stored message: CRLF line ends, dot-stuffed, ended
/// by `.CRLF` (what a `RETR` body must be).
pub fn wire(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 16 + 8);
    for line in lines(raw) {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The size `LIST` reports for a stored message: with CRLF line ends.
pub fn pop3_size(raw: &[u8]) -> usize {
    lines(raw).map(|line| line.len() + 2).sum()
}

/// A message of about `len` octets with LF line ends, some lines starting
/// with `.` (one of them just `.`), distinct for each `seed`.
pub fn message_of(len: usize, seed: usize) -> Vec<u8> {
    let mut raw = format!("From: test@localhost\nSubject: message {seed}\n\n").into_bytes();
    let mut i = 0;
    while raw.len() < len {
        let line = match i % 7 {
            0 => format!(".line {i} of {seed}\n"),
            3 if i % 21 == 3 => ".\n".to_owned(),
            _ => format!("line {i} of {seed}: {}\n", "z".repeat((i * 13 + seed) % 90)),
        };
        raw.extend_from_slice(line.as_bytes());
        i += 1;
    }
    raw
}

/// The path of the size cache of the mailbox `dir`.
pub fn cache_file(dir: &Path) -> PathBuf {
    dir.join(berth_pop3::SIZE_CACHE_FILE)
}
