//! The POP3 server on [`berth`]: the [`Session`](crate::Session)
//! connected to the network. Requires the `server` feature.
//!
//! A server of a demo Maildir on a free loopback port, and a client
//! talking to it:
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use berth_pop3::Users;
//! use berth_pop3::demo::create_demo_maildir;
//! use berth_pop3::server::Pop3Server;
//!
//! let dir = tempfile::tempdir()?;
//! let demo = create_demo_maildir(dir.path(), &[("alice", "wonderland")], 2)?;
//! let users = Users::load(&demo.users_file)?;
//!
//! let server = Pop3Server::builder(users, &demo.maildir)
//!     .workers(2)
//!     .idle_timeout(Duration::from_secs(60))
//!     .start(berth::Server::builder().listen("127.0.0.1:0".parse()?))?;
//!
//! let mut client = TcpStream::connect(server.local_addr())?;
//! client.set_read_timeout(Some(Duration::from_secs(10)))?;
//! let mut replies = BufReader::new(client.try_clone()?);
//! let mut line = String::new();
//! replies.read_line(&mut line)?;
//! assert!(line.starts_with("+OK"), "{line}");
//! client.write_all(b"USER alice\r\nPASS wonderland\r\nSTAT\r\nQUIT\r\n")?;
//! let mut stat = String::new();
//! for _ in 0..3 {
//!     stat.clear();
//!     replies.read_line(&mut stat)?;
//! }
//! assert!(stat.starts_with("+OK 2 "), "{stat}");
//! line.clear();
//! replies.read_line(&mut line)?;
//! assert!(line.starts_with("+OK"), "{line}");
//!
//! assert!(server.shutdown(Duration::from_secs(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! To run it under your own control (signals, several servers on one
//! process), [`Pop3ServerBuilder::build`] gives the [`Pop3Handler`] alone:
//! start it with
//! `handler.configure(server_builder).start(Framed::new(handler))`
//! ([`Pop3Handler::configure`] sets the idle timeout the autologout is).
//!
//! # How it works
//!
//! - The IO threads only frame CRLF lines (`LineCodec`, at most
//!   [`MAX_LINE`] octets including CRLF, RFC 2449) and write the greeting.
//! - The command lines of one read are queued together and run by one job
//!   on a [`berth::WorkerPool`], in order; the responses are gathered into
//!   64 KiB chunks, so pipelined commands cost one worker hop and, when
//!   their responses are short, one write. Everything that touches the
//!   Maildir (the login snapshot, `RETR`, `TOP`, `QUIT`'s UPDATE) runs on
//!   a worker, never on an IO thread.
//! - Long responses (a large message, the listing of a large mailbox) are
//!   produced a chunk at a time, with at most two chunks queued for
//!   writing per connection: the next is produced when `write_completed`
//!   reports one written. So a session's memory stays bounded even for a
//!   200 MB message or a client that does not read.
//! - The timeouts are the IO threads' timers, no thread of their own: the
//!   berth server's idle timeout is the RFC 1939 autologout timer
//!   ([`Pop3ServerBuilder::idle_timeout`], ten minutes): an idle session
//!   is closed without entering the UPDATE state. Each connection's own
//!   timer serves the rest.
//!
//! # Hardening
//!
//! With Dovecot's defaults as the anchor:
//!
//! - **Pre-login timeout** ([`Pop3ServerBuilder::login_timeout`], three
//!   minutes): a session that has not logged in by then is closed, however
//!   busy it keeps the connection.
//! - **Bad commands** ([`Pop3ServerBuilder::max_bad_commands`], 20): the
//!   bad command past the cap closes the session (see
//!   [`Config::max_bad_commands`](crate::Config::max_bad_commands)).
//! - **Failed-login delay** ([`Pop3ServerBuilder::auth_failure_delay`]):
//!   the answer to a failed `PASS`/`APOP` is held back 2 s after a client
//!   address's first failure, doubling with each further one up to 15 s,
//!   until a login from that address succeeds (see [`crate::penalty`]).
//!   No thread waits: the worker leaves the answer with the connection
//!   and sets its timer, and the IO thread writes it when the timer
//!   fires. Commands pipelined behind a failed attempt wait for its
//!   answer, so pipelining does not get around the delay; parallel
//!   connections from one address each wait the delay the address has
//!   earned (bound them with
//!   [`max_connections_per_ip`](berth::ServerBuilder::max_connections_per_ip)).
//!
//! The connection's state owns the session. Queued jobs hold only weak
//! references, so when the connection closes for any reason other than
//! `QUIT` (the client went away, a reset, a timeout, server shutdown) the
//! session is dropped, which releases the mailbox lock and deletes
//! nothing; jobs still queued for it then do nothing.
//!
//! Log events use the `tracing` target `berth::pop3`.

mod builder;
mod conn;
mod error;
mod flow;
mod handler;
mod pump;
mod running;
mod timers;

pub use builder::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_TIMEOUT, DEFAULT_WORKERS, Pop3ServerBuilder,
};
pub use conn::ConnState;
pub use error::ServerError;
pub use handler::{MAX_LINE, Pop3Handler};
pub use running::{Pop3Server, WORKER_SHUTDOWN_TIMEOUT};

/// The `tracing` target of the server's log events (as `berth pop3` has
/// always logged them).
const LOG_TARGET: &str = "berth::pop3";
