//! A sans-IO POP3 server core: RFC 1939 with the RFC 2449 `CAPA` command and
//! response codes, serving mailboxes stored in Maildir format.
//!
//! The core does no networking (the `server` feature adds it; see below).
//! The connection layer frames CRLF lines, sends [`Session::greeting`] when
//! a connection opens, passes each command line (without its CRLF) to
//! [`Session::handle_line`] and writes the returned [`Reply`], closing the
//! connection when the reply says [`After::Close`]. Lines longer than 255
//! octets are answered with [`Session::line_too_long`] instead.
//!
//! `handle_line` builds each reply whole. A server that must bound its
//! memory (a 200 MB message, the listing of a large mailbox) calls
//! [`Session::respond`] instead, writes the [`Response`]'s status line,
//! and produces its [`Body`] a bounded piece at a time with
//! [`Session::fill`], sending each piece before asking for the next.
//!
//! Logins read no message: sizes come from Maildir++ file names
//! (`,W=`) or from a size cache the snapshot keeps in each mailbox
//! directory ([`SIZE_CACHE_FILE`]), and are checked when messages are
//! read.
//!
//! ```no_run
//! use std::sync::Arc;
//! use berth_pop3::{After, Config, Session, Shared, Users};
//!
//! let users = Users::load("/etc/berth/pop3-users".as_ref())?;
//! let shared = Arc::new(Shared::new(Config::new(users, "/var/mail/maildir")));
//!
//! let mut session = Session::new(Arc::clone(&shared));
//! let greeting = session.greeting();
//! # let _ = greeting;
//! let reply = session.handle_line(b"USER alice");
//! assert_eq!(reply.after, After::Continue);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A session caps the bad commands it answers
//! ([`Config::max_bad_commands`]) and the failed logins
//! ([`Config::max_auth_failures`]). It knows nothing of time or
//! addresses: it reports each login attempt's outcome
//! ([`Session::take_auth_outcome`]), so that the server can hold a failed
//! one's answer back for a delay that grows per client address
//! ([`penalty`], through [`Shared::login_failed`]).
//!
//! With the `server` feature, the `server` module runs sessions on the
//! berth server framework (line framing, a worker pool for all Maildir
//! access, the autologout and pre-login timeouts, the failed-login delay),
//! so that a POP3 server can be embedded in a program in a few lines;
//! `berth pop3` is one such program.
//!
//! Messages marked with `DELE` are removed only when the client sends
//! `QUIT` in the TRANSACTION state. Dropping a [`Session`] for any other
//! reason removes nothing and releases the mailbox lock.
#![forbid(unsafe_code)]

mod command;
mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
mod lock;
mod maildir;
mod message;
pub mod penalty;
#[cfg(feature = "server")]
pub mod server;
mod session;
mod users;

pub use config::{Config, DEFAULT_MAX_AUTH_FAILURES, DEFAULT_MAX_BAD_COMMANDS, Shared};
pub use lock::{LockRegistry, MailboxLock};
pub use maildir::{Mailbox, Maildir, Message, SIZE_CACHE_FILE};
pub use session::{
    After, AuthOutcome, Body, BodyError, Fill, MIN_FILL_ROOM, Reply, Response, Session,
    SessionState, WHOLE_MESSAGE_LIMIT,
};
pub use users::{MalformedReason, Users, UsersError};
