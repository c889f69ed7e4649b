//! A sans-IO POP3 server core: RFC 1939 with the RFC 2449 `CAPA` command and
//! response codes, serving mailboxes stored in Maildir format (work in
//! progress).
#![forbid(unsafe_code)]

mod lock;
mod maildir;
mod message;
mod users;
pub use lock::{LockRegistry, MailboxLock};
pub use maildir::{Mailbox, Maildir, Message};
pub use users::{MalformedReason, Users, UsersError};
