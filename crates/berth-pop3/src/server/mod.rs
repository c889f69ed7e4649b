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
//! start it with `ServerBuilder::start(Framed::new(handler))`.
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
//! - A small thread closes sessions idle for longer than
//!   [`Pop3ServerBuilder::idle_timeout`] (the RFC 1939 autologout timer)
//!   without entering the UPDATE state.
//!
//! The connection's state owns the session. Queued jobs and the autologout
//! timer hold only weak references, so when the connection closes for any
//! reason other than `QUIT` (the client went away, a reset, the
//! autologout, server shutdown) the session is dropped, which releases the
//! mailbox lock and deletes nothing; jobs still queued for it then do
//! nothing.
//!
//! Log events use the `tracing` target `berth::pop3`.

mod autologout;
mod builder;
mod conn;
mod error;
mod handler;
mod pump;
mod running;

pub use builder::{DEFAULT_IDLE_TIMEOUT, DEFAULT_WORKERS, Pop3ServerBuilder};
pub use conn::ConnState;
pub use error::ServerError;
pub use handler::{MAX_LINE, Pop3Handler};
pub use running::{Pop3Server, WORKER_SHUTDOWN_TIMEOUT};

/// The `tracing` target of the server's log events (as `berth pop3` has
/// always logged them).
const LOG_TARGET: &str = "berth::pop3";
