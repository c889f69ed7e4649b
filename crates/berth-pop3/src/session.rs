//! The POP3 state machine of one connection (RFC 1939, RFC 2449 CAPA and
//! response codes, RFC 3206 `[AUTH]`).
//!
//! A session starts in the AUTHORIZATION state. A successful `PASS` or
//! `APOP` locks the user's mailbox, takes a snapshot of it and enters the
//! TRANSACTION state, in which messages may be listed, retrieved and marked
//! as deleted. Only `QUIT` in the TRANSACTION state enters the UPDATE state
//! and removes the marked messages. A session that is dropped without
//! `QUIT` (lost connection, timeout, shutdown) removes nothing; dropping it
//! releases the mailbox lock.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use crate::command::{self, Command};
use crate::config::Shared;
use crate::lock::MailboxLock;
use crate::maildir::{Mailbox, Message, hex_md5};
use crate::message::{Sizes, WireEncoder, measure};

mod body;
mod reply;

pub use body::{Body, BodyError, Fill, MIN_FILL_ROOM};
use body::{MessageBody, read_some};
pub use reply::{After, Reply, Response};

/// Messages up to this many octets are read whole before their `RETR`
/// response starts, so its octet count is exact; larger ones are read as
/// they are sent (see [`Session::fill`]).
pub const WHOLE_MESSAGE_LIMIT: u64 = 256 * 1024;

/// The outcome of a login attempt (`PASS` or `APOP`), reported by
/// [`Session::take_auth_outcome`] so that the server can delay a failed
/// attempt's answer per client address (see [`crate::penalty`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials were right (the login may still have been refused
    /// because the mailbox is in use or cannot be opened).
    Succeeded,
    /// The credentials were wrong (or the user does not exist).
    Failed,
}

/// The reply to the bad command that goes over
/// [`Config::max_bad_commands`](crate::Config::max_bad_commands).
const TOO_MANY_BAD_COMMANDS: &str = "too many bad commands";

/// The protocol state of a [`Session`], for logging and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the client to authenticate.
    Authorization,
    /// Logged in, with the mailbox locked.
    Transaction,
    /// `QUIT` was processed or the session was ended; no more commands.
    Closed,
}

/// The mailbox of a logged-in session.
struct Transaction {
    user: String,
    mailbox: Mailbox,
    deleted: Vec<bool>,
    /// Held for the lifetime of the TRANSACTION state.
    _lock: MailboxLock,
}

enum State {
    Authorization {
        /// The name from a `USER` command directly before this command.
        pending_user: Option<String>,
    },
    Transaction(Box<Transaction>),
    Closed,
}

/// One POP3 session, driven by the connection that owns it.
///
/// Call [`greeting`](Self::greeting) once when the connection opens, then
/// [`handle_line`](Self::handle_line) for every command line, in order.
pub struct Session {
    shared: Arc<Shared>,
    /// The APOP timestamp announced in the greeting, `<...@host>`.
    timestamp: String,
    state: State,
    auth_failures: u32,
    /// Commands answered `-ERR` for the client's own mistake (see
    /// [`Config::max_bad_commands`](crate::Config::max_bad_commands)).
    bad_commands: u32,
    /// The outcome of the last login attempt, until taken.
    auth_outcome: Option<AuthOutcome>,
}

/// Compared against when a user does not exist, so that the work done for
/// an unknown user looks like the work done for a wrong password.
const DUMMY_SECRET: &str = "berth-pop3-no-such-user";

impl Session {
    /// A new session in the AUTHORIZATION state, with a fresh APOP
    /// timestamp.
    #[must_use]
    pub fn new(shared: Arc<Shared>) -> Self {
        let timestamp = shared.next_timestamp();
        Self {
            shared,
            timestamp,
            state: State::Authorization { pending_user: None },
            auth_failures: 0,
            bad_commands: 0,
            auth_outcome: None,
        }
    }

    /// The greeting to send when the connection opens; it carries the
    /// session's APOP timestamp.
    pub fn greeting(&mut self) -> Vec<u8> {
        format!("+OK POP3 server ready {}\r\n", self.timestamp).into_bytes()
    }

    /// The APOP timestamp of this session, including the angle brackets.
    #[must_use]
    pub fn apop_timestamp(&self) -> &str {
        &self.timestamp
    }

    /// The current protocol state.
    #[must_use]
    pub fn state(&self) -> SessionState {
        match self.state {
            State::Authorization { .. } => SessionState::Authorization,
            State::Transaction(_) => SessionState::Transaction,
            State::Closed => SessionState::Closed,
        }
    }

    /// The logged-in user, if any.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Transaction(tx) => Some(&tx.user),
            _ => None,
        }
    }

    /// The state every session of this one's server shares.
    #[must_use]
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The outcome of the last `PASS` or `APOP` attempt answered since
    /// the last call, if any: a server that delays failed logins (see
    /// [`crate::penalty`]) asks after every command. The session does not
    /// know the client's address; the server does.
    pub fn take_auth_outcome(&mut self) -> Option<AuthOutcome> {
        self.auth_outcome.take()
    }

    /// The reply for a command line that the framing layer found to be
    /// longer than 255 octets including CRLF (RFC 2449). The session
    /// continues, unless that makes too many bad commands
    /// ([`Config::max_bad_commands`](crate::Config::max_bad_commands)).
    pub fn line_too_long(&mut self) -> Reply {
        let reply = match &mut self.state {
            State::Closed => closed_reply(),
            State::Authorization { pending_user } => {
                *pending_user = None;
                Reply::err("line too long")
            }
            State::Transaction(_) => Reply::err("line too long"),
        };
        self.count_bad(reply.into()).into_reply()
    }

    /// Handles one command line, given without its CRLF, and returns the
    /// whole reply (a message retrieved is read into memory whole; see
    /// [`Session::respond`] to send it in pieces).
    pub fn handle_line(&mut self, line: &[u8]) -> Reply {
        let Response { head, body, after } = self.respond(line);
        let mut bytes = head;
        if let Some(mut body) = body {
            let mark = bytes.len();
            loop {
                match self.fill(&mut body, &mut bytes, usize::MAX) {
                    Ok(Fill::Done) => break,
                    Ok(Fill::More) => {}
                    Err(e) => {
                        tracing::warn!(user = ?self.user(), error = %e, "cannot send message");
                        bytes.truncate(mark);
                        return Reply::err("[SYS/TEMP] cannot read the message, try again");
                    }
                }
            }
        }
        Reply { bytes, after }
    }

    /// Handles one command line, given without its CRLF. The response's
    /// [`Body`], if any, is then produced in pieces with [`Session::fill`]
    /// (before the next command).
    ///
    /// A command answered `-ERR` for the client's own mistake counts
    /// towards [`Config::max_bad_commands`](crate::Config::max_bad_commands);
    /// the one past it is answered `-ERR too many bad commands` instead,
    /// and the session ends (without the UPDATE state).
    pub fn respond(&mut self, line: &[u8]) -> Response {
        let response = self.command(line);
        self.count_bad(response)
    }

    /// Produces the next piece of `body` (from the [`Response`] to the
    /// command just handled) into `out`, which it does not let grow past
    /// `limit` octets, nor past `out.len() + MIN_FILL_ROOM` if that is
    /// more (so every call makes progress). [`Fill::More`]: send `out`,
    /// then call again; [`Fill::Done`]: the response is complete. Call it
    /// until the body is done before the session handles the next command.
    ///
    /// # Errors
    ///
    /// [`BodyError`]: the message could not be sent whole; end the
    /// connection abortively, without the terminator.
    pub fn fill(
        &mut self,
        body: &mut Body,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<Fill, BodyError> {
        // A listing lists the transaction's messages: none without one.
        let (messages, deleted) = match &self.state {
            State::Transaction(tx) => (tx.mailbox.messages(), &tx.deleted[..]),
            _ => (&[][..], &[][..]),
        };
        body.fill(messages, deleted, out, limit).map_err(|failure| {
            if let (Some(c), State::Transaction(tx)) = (failure.correction, &mut self.state) {
                tx.mailbox.correct(c.number, c.sizes, c.ino);
            }
            failure.error
        })
    }

    /// Counts `response` if it answers a bad command, and replaces it if
    /// that makes one too many.
    fn count_bad(&mut self, response: Response) -> Response {
        if response.after == After::Close || !is_bad(&response.head) {
            return response;
        }
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands <= self.shared.config().max_bad_commands {
            return response;
        }
        tracing::info!(user = ?self.user(), bad_commands = self.bad_commands,
            "POP3 session closed: too many bad commands");
        // Dropping the transaction (if logged in) releases the mailbox
        // lock and deletes nothing.
        self.state = State::Closed;
        Reply::err(TOO_MANY_BAD_COMMANDS).closing().into()
    }

    fn command(&mut self, line: &[u8]) -> Response {
        let parsed = command::parse(line);
        match &mut self.state {
            State::Closed => closed_reply().into(),
            State::Authorization { pending_user } => {
                let pending = pending_user.take();
                match parsed {
                    Ok(command) => self.authorization(command, pending).into(),
                    Err(e) => Reply::err(e.message()).into(),
                }
            }
            State::Transaction(tx) => match parsed {
                Ok(Command::Quit) => self.update().into(),
                Ok(command) => transaction(tx, command, &self.shared),
                Err(e) => Reply::err(e.message()).into(),
            },
        }
    }

    fn authorization(&mut self, command: Command<'_>, pending: Option<String>) -> Reply {
        match command {
            Command::User(name) => {
                // Accepted whether or not the user exists: the answer must
                // not reveal which names are valid.
                self.state = State::Authorization {
                    pending_user: Some(name.to_owned()),
                };
                Reply::ok("send PASS")
            }
            Command::Pass(password) => match pending {
                None => Reply::err("PASS must directly follow USER"),
                Some(name) => {
                    let secret = self.shared.config().users.secret(&name);
                    let expected = secret.unwrap_or(DUMMY_SECRET);
                    let matches = constant_time_eq(expected.as_bytes(), password);
                    self.authenticated(name, matches && secret.is_some())
                }
            },
            Command::Apop { name, digest } => {
                let secret = self.shared.config().users.secret(name);
                let mut input = self.timestamp.clone();
                input.push_str(secret.unwrap_or(DUMMY_SECRET));
                let expected = hex_md5(input.as_bytes());
                let matches =
                    constant_time_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes());
                self.authenticated(name.to_owned(), matches && secret.is_some())
            }
            Command::Quit => {
                self.state = State::Closed;
                Reply::ok("bye").closing()
            }
            Command::Capa => capabilities(&self.shared),
            Command::Stat
            | Command::List(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Noop
            | Command::Rset
            | Command::Top { .. }
            | Command::Uidl(_) => Reply::err("not logged in"),
        }
    }

    /// Finishes a `PASS` or `APOP` attempt.
    fn authenticated(&mut self, user: String, success: bool) -> Reply {
        self.auth_outcome = Some(if success {
            AuthOutcome::Succeeded
        } else {
            AuthOutcome::Failed
        });
        if !success {
            self.auth_failures += 1;
            let limit = self.shared.config().max_auth_failures.max(1);
            tracing::info!(user = ?user, failures = self.auth_failures, "POP3 authentication failed");
            if self.auth_failures >= limit {
                self.state = State::Closed;
                return Reply::err("[AUTH] authentication failed, too many attempts").closing();
            }
            return Reply::err("[AUTH] authentication failed");
        }
        let Some(lock) = self.shared.locks().try_lock(&user) else {
            tracing::info!(user = %user, "POP3 mailbox already in use");
            return Reply::err("[IN-USE] mailbox is already in use by another session");
        };
        let mailbox = match self.shared.maildir().snapshot(&user) {
            Ok(mailbox) => mailbox,
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "cannot open POP3 mailbox");
                return Reply::err("[SYS/TEMP] cannot open mailbox");
            }
        };
        let tx = Transaction {
            deleted: vec![false; mailbox.len()],
            user,
            mailbox,
            _lock: lock,
        };
        let (count, octets) = tx.totals();
        tracing::info!(user = %tx.user, messages = count, octets, "POP3 login");
        self.state = State::Transaction(Box::new(tx));
        Reply::ok(&format!("maildrop has {count} messages ({octets} octets)"))
    }

    /// `QUIT` in the TRANSACTION state: the UPDATE state.
    fn update(&mut self) -> Reply {
        let State::Transaction(tx) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!("update() is only called in the TRANSACTION state");
        };
        let mut removed = 0_usize;
        let mut failed = 0_usize;
        for message in tx.marked() {
            match tx.mailbox.remove(message) {
                Ok(()) => removed += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(user = %tx.user, path = %message.path().display(), error = %e,
                        "cannot remove deleted message");
                }
            }
        }
        tracing::info!(user = %tx.user, removed, failed, "POP3 logout");
        // Dropping `tx` releases the mailbox lock.
        drop(tx);
        if failed > 0 {
            Reply::err(&format!(
                "[SYS/TEMP] {failed} deleted messages could not be removed"
            ))
            .closing()
        } else {
            Reply::ok(&format!("bye, {removed} messages deleted")).closing()
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let State::Transaction(tx) = &self.state {
            let pending = tx.marked().count();
            if pending > 0 {
                tracing::info!(user = %tx.user, pending,
                    "POP3 session ended without QUIT; no messages deleted");
            }
        }
    }
}

impl Transaction {
    /// Number and total size of the messages not marked as deleted.
    fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, size), m| (n + 1, size + m.size()))
    }

    fn live(&self) -> impl Iterator<Item = &Message> {
        self.mailbox
            .messages()
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| !**d)
            .map(|(m, _)| m)
    }

    fn marked(&self) -> impl Iterator<Item = &Message> {
        self.mailbox
            .messages()
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| **d)
            .map(|(m, _)| m)
    }

    /// Message `number`, if it exists and is not marked as deleted.
    fn message(&self, number: usize) -> Result<&Message, Reply> {
        let message = self.mailbox.get(number).ok_or_else(|| {
            Reply::err(&format!(
                "no such message, only {} messages in maildrop",
                self.mailbox.len()
            ))
        })?;
        if self.deleted[number - 1] {
            return Err(Reply::err(&format!("message {number} already deleted")));
        }
        Ok(message)
    }

    /// Opens the file of message `number`, if it exists and is not marked
    /// as deleted.
    fn open(&self, number: usize) -> Result<(File, fs::Metadata), Reply> {
        let message = self.message(number)?;
        let opened = self
            .mailbox
            .open(message)
            .and_then(|file| file.metadata().map(|meta| (file, meta)));
        opened.map_err(|e| self.read_failed(number, &e))
    }

    /// The reply when message `number` cannot be read.
    fn read_failed(&self, number: usize, e: &io::Error) -> Reply {
        if let Some(message) = self.mailbox.get(number) {
            tracing::warn!(user = %self.user, path = %message.path().display(), error = %e,
                "cannot read message");
        }
        if e.kind() == io::ErrorKind::NotFound {
            Reply::err(&format!("message {number} no longer exists"))
        } else {
            Reply::err(&format!("[SYS/TEMP] cannot read message {number}"))
        }
    }

    /// `RETR`: the `+OK` line with the exact size, and the message as a
    /// body. A message of up to [`WHOLE_MESSAGE_LIMIT`] octets is read
    /// whole first and its size counted; a larger one is streamed, with the
    /// size the snapshot has if the file is the one it sized (same inode,
    /// same length), or else counted in a first pass. Either way a size
    /// found wrong is corrected in the snapshot and the size cache.
    fn retr(&mut self, number: usize) -> Result<Response, Reply> {
        let message = self.message(number)?;
        let known = message.size();
        let mut file = self
            .mailbox
            .open(message)
            .map_err(|e| self.read_failed(number, &e))?;
        if known <= WHOLE_MESSAGE_LIMIT {
            // The POP3 size is at least the file's length (CRLF only adds
            // octets), and a read of a regular file comes back short only
            // at its end: one read has it all, without a stat.
            let mut data = vec![0; usize::try_from(known).unwrap_or(0) + 1];
            let n = read_some(&mut file, &mut data).map_err(|e| self.read_failed(number, &e))?;
            if n < data.len() {
                data.truncate(n);
                return Ok(self.whole(number, &file, data));
            }
            // Longer than the snapshot says: as if it had said nothing.
            file.rewind().map_err(|e| self.read_failed(number, &e))?;
        }
        let meta = file.metadata().map_err(|e| self.read_failed(number, &e))?;
        if meta.len() <= WHOLE_MESSAGE_LIMIT {
            let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
            file.read_to_end(&mut data)
                .map_err(|e| self.read_failed(number, &e))?;
            return Ok(self.whole(number, &file, data));
        }
        let size = if self.mailbox.messages()[number - 1].matches(&meta) {
            known
        } else {
            let sizes = measure(&file)
                .and_then(|sizes| file.rewind().map(|()| sizes))
                .map_err(|e| self.read_failed(number, &e))?;
            self.mailbox.correct(number, sizes, meta.ino());
            sizes.wire
        };
        let body = MessageBody::file(
            number,
            file,
            meta.len(),
            meta.ino(),
            WireEncoder::message(),
            Some(size),
        );
        Ok(Response {
            head: format!("+OK {size} octets\r\n").into_bytes(),
            body: Some(Body::message(body)),
            after: After::Continue,
        })
    }

    /// The `RETR` response for message `number` read whole into `data`
    /// (from `file`): converted, its size counted on the way, and
    /// corrected if the snapshot's is wrong.
    fn whole(&mut self, number: usize, file: &File, data: Vec<u8>) -> Response {
        let mut encoder = WireEncoder::message();
        let mut wire = Vec::with_capacity(data.len() + data.len() / 16 + WireEncoder::FINISH_LEN);
        encoder.encode(&data, &mut wire, usize::MAX);
        let sizes = Sizes {
            raw: data.len() as u64,
            wire: encoder.final_len(),
        };
        encoder.finish(&mut wire);
        drop(data);
        if self
            .mailbox
            .get(number)
            .is_some_and(|m| m.size() != sizes.wire)
        {
            match file.metadata() {
                Ok(meta) => self.mailbox.correct(number, sizes, meta.ino()),
                Err(e) => tracing::warn!(user = %self.user, error = %e, "cannot stat message"),
            }
        }
        Response {
            head: format!("+OK {} octets\r\n", sizes.wire).into_bytes(),
            body: Some(Body::message(MessageBody::ready(number, wire))),
            after: After::Continue,
        }
    }

    /// `TOP`: streamed from the file, which is read only as far as needed.
    fn top(&self, number: usize, lines: usize) -> Result<Response, Reply> {
        let (file, meta) = self.open(number)?;
        let body = MessageBody::file(
            number,
            file,
            meta.len(),
            meta.ino(),
            WireEncoder::top(lines),
            None,
        );
        Ok(Response {
            head: b"+OK top of message follows\r\n".to_vec(),
            body: Some(Body::message(body)),
            after: After::Continue,
        })
    }
}

/// A command in the TRANSACTION state (other than `QUIT`).
fn transaction(tx: &mut Transaction, command: Command<'_>, shared: &Shared) -> Response {
    let reply = match command {
        Command::Stat => {
            let (count, octets) = tx.totals();
            Reply::ok(&format!("{count} {octets}"))
        }
        Command::List(Some(n)) => match tx.message(n) {
            Ok(m) => Reply::ok(&format!("{n} {}", m.size())),
            Err(reply) => reply,
        },
        Command::List(None) => {
            let (count, octets) = tx.totals();
            return listing(&format!("{count} messages ({octets} octets)"), false);
        }
        Command::Uidl(Some(n)) => match tx.message(n) {
            Ok(m) => Reply::ok(&format!("{n} {}", m.uidl())),
            Err(reply) => reply,
        },
        Command::Uidl(None) => return listing("unique-id listing follows", true),
        Command::Retr(n) => return tx.retr(n).unwrap_or_else(Response::from),
        Command::Top { msg, lines } => return tx.top(msg, lines).unwrap_or_else(Response::from),
        Command::Dele(n) => match tx.message(n) {
            Ok(_) => {
                tx.deleted[n - 1] = true;
                Reply::ok(&format!("message {n} deleted"))
            }
            Err(reply) => reply,
        },
        Command::Noop => Reply::ok(""),
        Command::Rset => {
            tx.deleted.fill(false);
            let (count, octets) = tx.totals();
            Reply::ok(&format!("maildrop has {count} messages ({octets} octets)"))
        }
        Command::Capa => capabilities(shared),
        Command::User(_) | Command::Pass(_) | Command::Apop { .. } => {
            Reply::err("already logged in")
        }
        Command::Quit => unreachable!("QUIT is handled by Session::update"),
    };
    reply.into()
}

/// The `+OK` line of `LIST` or `UIDL`, and the listing as a body.
fn listing(header: &str, uidls: bool) -> Response {
    Response {
        head: format!("+OK {header}\r\n").into_bytes(),
        body: Some(Body::listing(uidls)),
        after: After::Continue,
    }
}

/// A multi-line `+OK` response.
fn multi_line(header: &str, lines: impl Iterator<Item = String>) -> Reply {
    let mut text = format!("+OK {header}\r\n");
    for line in lines {
        let _ = write!(text, "{line}\r\n");
    }
    text.push_str(".\r\n");
    Reply {
        bytes: text.into_bytes(),
        after: After::Continue,
    }
}

/// The `CAPA` response. RFC 2449 requires capabilities of the
/// AUTHORIZATION state to be announced in both states, so it is the same in
/// both.
fn capabilities(shared: &Shared) -> Reply {
    let implementation: String = shared
        .config()
        .implementation
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut capabilities = vec![
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    if !implementation.trim().is_empty() {
        capabilities.push(format!("IMPLEMENTATION {}", implementation.trim()));
    }
    multi_line("capability list follows", capabilities.into_iter())
}

/// Whether `head` answers a bad command: `-ERR` without a response code.
/// The codes mark what is not a mistake in the command: `[AUTH]` (a
/// failed login, capped on its own), `[IN-USE]`, `[SYS/TEMP]`.
fn is_bad(head: &[u8]) -> bool {
    head.starts_with(b"-ERR") && !head.starts_with(b"-ERR [")
}

fn closed_reply() -> Reply {
    Reply::err("session is closed").closing()
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

#[cfg(test)]
mod tests;
