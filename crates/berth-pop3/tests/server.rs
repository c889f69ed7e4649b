//! `berth_pop3::server` embedded in a test: the library API over loopback
//! sockets, once per engine. (`berth pop3`'s end-to-end tests, driven by
//! Python's poplib, live in `crates/berth-cli/tests/pop3.rs`.) Every wait
//! is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth::EngineChoice;
use berth_pop3::Users;
use berth_pop3::demo::create_demo_maildir;
use berth_pop3::server::{Pop3Server, Pop3ServerBuilder, ServerError};

/// The bound on every wait.
const TIMEOUT: Duration = Duration::from_secs(10);

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

both_engines!(
    idle_session_is_logged_out_and_its_mailbox_unlocked,
    dropped_connection_unlocks_the_mailbox,
    shutdown_ends_sessions_without_deleting,
    malformed_lines_are_answered_and_the_session_goes_on,
);

/// A demo Maildir with `alice` / `wonderland` and two messages.
struct Fixture {
    _dir: tempfile::TempDir,
    maildir: PathBuf,
    users: Users,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let demo = create_demo_maildir(dir.path(), &[("alice", "wonderland")], 2).unwrap();
        Fixture {
            users: Users::load(&demo.users_file).unwrap(),
            maildir: demo.maildir,
            _dir: dir,
        }
    }

    fn builder(&self) -> Pop3ServerBuilder {
        Pop3Server::builder(self.users.clone(), &self.maildir).workers(2)
    }

    /// The files of alice's mailbox (`new/` and `cur/`).
    fn messages(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|sub| {
                std::fs::read_dir(self.maildir.join("alice").join(sub))
                    .unwrap()
                    .count()
            })
            .sum()
    }
}

fn start(builder: Pop3ServerBuilder, engine: EngineChoice) -> Pop3Server {
    let server = berth::Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .io_threads(2)
        .engine(engine);
    builder.start(server).expect("server starts")
}

/// A client that has read the greeting.
struct Client {
    stream: TcpStream,
    replies: BufReader<TcpStream>,
}

impl Client {
    fn connect(server: &Pop3Server) -> Client {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let replies = BufReader::new(stream.try_clone().unwrap());
        let mut client = Client { stream, replies };
        assert!(client.line().starts_with("+OK"));
        client
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.replies.read_line(&mut line).unwrap();
        line
    }

    /// Send `command` and return the first line of its reply.
    fn command(&mut self, command: &str) -> String {
        self.stream
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.line()
    }

    fn login(&mut self) {
        assert!(self.command("USER alice").starts_with("+OK"));
        let pass = self.command("PASS wonderland");
        assert!(pass.starts_with("+OK maildrop has 2"), "{pass}");
    }

    /// Read until the server closes; return what came.
    fn rest(mut self) -> String {
        let mut rest = String::new();
        self.replies.read_to_string(&mut rest).unwrap();
        rest
    }
}

/// Wait until alice's mailbox is unlocked.
fn wait_unlocked(server: &Pop3Server) {
    let locks = server.server().handler().inner().shared().locks();
    let end = Instant::now() + TIMEOUT;
    while locks.locked_count() != 0 {
        assert!(Instant::now() < end, "the mailbox stays locked");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn idle_session_is_logged_out_and_its_mailbox_unlocked(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(
        fx.builder().idle_timeout(Duration::from_millis(200)),
        engine,
    );
    let mut client = Client::connect(&server);
    client.login();
    assert!(client.command("DELE 1").starts_with("+OK"));
    let started = Instant::now();
    assert_eq!(client.rest(), "-ERR autologout; idle for too long\r\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
    wait_unlocked(&server);
    assert_eq!(fx.messages(), 2, "the autologout deletes nothing");
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn dropped_connection_unlocks_the_mailbox(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut first = Client::connect(&server);
    first.login();
    assert!(first.command("DELE 2").starts_with("+OK"));
    let mut second = Client::connect(&server);
    assert!(second.command("USER alice").starts_with("+OK"));
    assert!(
        second
            .command("PASS wonderland")
            .starts_with("-ERR [IN-USE]")
    );
    drop(first);
    wait_unlocked(&server);
    drop(second);
    let mut third = Client::connect(&server);
    third.login();
    assert!(third.command("QUIT").starts_with("+OK"));
    assert_eq!(fx.messages(), 2);
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn shutdown_ends_sessions_without_deleting(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut client = Client::connect(&server);
    client.login();
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(server.shutdown(Duration::from_millis(200)));
    assert_eq!(client.rest(), "");
    assert_eq!(fx.messages(), 2);
}

/// A NUL in a command and 1 MiB without CRLF each get `-ERR`; the rest of
/// the long line is skipped, and this session and another go on. (The
/// server's memory meanwhile is measured in berth's `tests/malformed.rs`,
/// on a line codec configured as this server's.)
fn malformed_lines_are_answered_and_the_session_goes_on(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut client = Client::connect(&server);
    client.login();
    assert_eq!(
        client.command("STAT\0"),
        "-ERR command contains a control character\r\n"
    );
    client.stream.write_all(&vec![b'x'; 1 << 20]).unwrap();
    assert_eq!(client.line(), "-ERR line too long\r\n");
    let mut other = Client::connect(&server);
    assert_eq!(other.command("USER alice"), "+OK send PASS\r\n");
    // The CRLF ends the long line, which gets no second answer.
    client.stream.write_all(b"\r\n").unwrap();
    assert!(client.command("STAT").starts_with("+OK 2 "));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_eq!(client.rest(), "");
    assert!(other.command("QUIT").starts_with("+OK"));
    assert_eq!(fx.messages(), 2);
    assert!(server.shutdown(Duration::from_secs(1)));
}

#[test]
fn zero_workers_is_a_typed_error() {
    let fx = Fixture::new();
    let err = fx.builder().workers(0).build().unwrap_err();
    assert!(matches!(err, ServerError::Workers(_)), "{err:?}");
}

#[test]
fn address_in_use_is_a_typed_error() {
    let fx = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = berth::Server::builder()
        .listen(taken.local_addr().unwrap())
        .io_threads(1);
    let err = fx.builder().start(server).unwrap_err();
    assert!(matches!(err, ServerError::Start(_)), "{err:?}");
}
