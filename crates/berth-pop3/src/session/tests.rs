//! Tests of the session state machine over temporary Maildir trees.

use super::*;
use crate::config::Config;
use crate::lock::LockRegistry;
use crate::message::unstuff;
use crate::users::Users;
use std::fs;
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    shared: Arc<Shared>,
}

/// alice (secret "wonderland") has three messages; bob ("builder") has
/// none and no mailbox directory at all.
fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(adjust: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("maildir");
    deliver(
        &root,
        "alice",
        "new/1700000001.one.host",
        b"Subject: one\n\nfirst\n",
    );
    deliver(
        &root,
        "alice",
        "cur/1700000002.two.host:2,S",
        b"Subject: two\r\n\r\nsecond\r\n.dot\r\n",
    );
    deliver(
        &root,
        "alice",
        "new/1700000003.three.host",
        b"Subject: three\n\n3a\n3b\n3c\n",
    );
    let users = Users::parse("alice:wonderland\nbob:builder\n").unwrap();
    let mut config = Config::new(users, &root);
    config.hostname = "pop.example".to_owned();
    config.implementation = "berth-pop3-test".to_owned();
    adjust(&mut config);
    Fixture {
        _dir: dir,
        root,
        shared: Arc::new(Shared::new(config)),
    }
}

fn deliver(root: &Path, user: &str, name: &str, contents: &[u8]) {
    let mailbox = root.join(user);
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(mailbox.join(sub)).unwrap();
    }
    fs::write(mailbox.join(name), contents).unwrap();
}

impl Fixture {
    fn session(&self) -> Session {
        let mut session = Session::new(Arc::clone(&self.shared));
        let greeting = session.greeting();
        assert!(greeting.starts_with(b"+OK "));
        session
    }

    fn login(&self, user: &str, secret: &str) -> Session {
        let mut session = self.session();
        assert_eq!(
            send(&mut session, &format!("USER {user}")),
            "+OK send PASS\r\n"
        );
        let reply = send(&mut session, &format!("PASS {secret}"));
        assert!(reply.starts_with("+OK "), "{reply}");
        assert_eq!(session.state(), SessionState::Transaction);
        session
    }

    /// The message files of `user`, relative to the mailbox, sorted.
    fn files(&self, user: &str) -> Vec<String> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = fs::read_dir(self.root.join(user).join(sub)) {
                for entry in entries {
                    files.push(format!(
                        "{sub}/{}",
                        entry.unwrap().file_name().to_string_lossy()
                    ));
                }
            }
        }
        files.sort();
        files
    }
}

fn send(session: &mut Session, line: &str) -> String {
    let reply = session.handle_line(line.as_bytes());
    assert_eq!(
        reply.after,
        After::Continue,
        "{line} -> {:?}",
        String::from_utf8_lossy(&reply.bytes)
    );
    String::from_utf8(reply.bytes).unwrap()
}

fn send_closing(session: &mut Session, line: &str) -> String {
    let reply = session.handle_line(line.as_bytes());
    assert_eq!(reply.after, After::Close, "{line}");
    String::from_utf8(reply.bytes).unwrap()
}

fn timestamp_of(greeting: &[u8]) -> String {
    let text = std::str::from_utf8(greeting).unwrap();
    let start = text.find('<').unwrap();
    let end = text.find('>').unwrap();
    text[start..=end].to_owned()
}

mod auth;
mod limits;
mod streaming;
mod writers;

#[test]
fn list_stat_uidl_top_and_retr() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    assert_eq!(
        send(&mut s, "LIST"),
        "+OK 3 messages (83 octets)\r\n1 23\r\n2 30\r\n3 30\r\n.\r\n"
    );
    assert_eq!(send(&mut s, "LIST 2"), "+OK 2 30\r\n");
    assert_eq!(
        send(&mut s, "UIDL"),
        "+OK unique-id listing follows\r\n1 1700000001.one.host\r\n2 1700000002.two.host\r\n\
         3 1700000003.three.host\r\n.\r\n"
    );
    assert_eq!(send(&mut s, "UIDL 3"), "+OK 3 1700000003.three.host\r\n");
    assert_eq!(
        send(&mut s, "RETR 1"),
        "+OK 23 octets\r\nSubject: one\r\n\r\nfirst\r\n.\r\n"
    );
    assert_eq!(
        send(&mut s, "RETR 2"),
        "+OK 30 octets\r\nSubject: two\r\n\r\nsecond\r\n..dot\r\n.\r\n"
    );
    assert_eq!(
        send(&mut s, "TOP 3 0"),
        "+OK top of message follows\r\nSubject: three\r\n\r\n.\r\n"
    );
    assert_eq!(
        send(&mut s, "top 3 2"),
        "+OK top of message follows\r\nSubject: three\r\n\r\n3a\r\n3b\r\n.\r\n"
    );
    assert_eq!(send(&mut s, "NOOP"), "+OK\r\n");
    for bad in [
        "LIST 0",
        "LIST 4",
        "RETR 9",
        "TOP 0 1",
        "UIDL 4",
        "DELE 99999999999999999999",
    ] {
        assert_eq!(
            send(&mut s, bad),
            "-ERR no such message, only 3 messages in maildrop\r\n",
            "{bad}"
        );
    }
    assert_eq!(send(&mut s, "RETR x"), "-ERR invalid number\r\n");
}

#[test]
fn large_message_with_dot_lines_round_trips_byte_exact() {
    let f = fixture();
    let mut raw = b"Subject: big\n\n".to_vec();
    for i in 0..1000 {
        let line = match i % 4 {
            0 => format!(".line {i}\n"),
            1 => format!("..line {i}\r\n"),
            2 => ".\n".to_owned(),
            _ => format!("plain line {i} {}\n", "x".repeat(i % 97)),
        };
        raw.extend_from_slice(line.as_bytes());
    }
    deliver(&f.root, "bob", "new/1700000000.big.host", &raw);
    let expected = {
        let text = String::from_utf8(raw.clone()).unwrap();
        text.replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes()
    };
    let mut s = f.login("bob", "builder");
    assert_eq!(
        send(&mut s, "LIST 1"),
        format!("+OK 1 {}\r\n", expected.len())
    );

    let reply = s.handle_line(b"RETR 1").bytes;
    let header = format!("+OK {} octets\r\n", expected.len());
    let body = reply
        .strip_prefix(header.as_bytes())
        .expect("RETR status line");
    assert_eq!(unstuff(body).expect("well-formed body"), expected);
    // No line of the body may be a lone "." before the end.
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    assert_eq!(lines.iter().filter(|l| **l == b".\r").count(), 1);

    let top = s.handle_line(b"TOP 1 10").bytes;
    let top_body = top
        .strip_prefix(b"+OK top of message follows\r\n".as_slice())
        .unwrap();
    let top_expected: Vec<u8> = expected
        .split_inclusive(|&b| b == b'\n')
        .take(12)
        .flatten()
        .copied()
        .collect();
    assert_eq!(unstuff(top_body).unwrap(), top_expected);
}

#[test]
fn dele_then_quit_removes_exactly_the_marked_files() {
    let f = fixture();
    let before = f.files("alice");
    let mut s = f.login("alice", "wonderland");
    assert_eq!(send(&mut s, "DELE 1"), "+OK message 1 deleted\r\n");
    assert_eq!(send(&mut s, "DELE 2"), "+OK message 2 deleted\r\n");
    assert_eq!(
        send_closing(&mut s, "QUIT"),
        "+OK bye, 2 messages deleted\r\n"
    );
    assert_eq!(s.state(), SessionState::Closed);
    assert_eq!(
        f.files("alice"),
        vec!["new/1700000003.three.host".to_owned()]
    );
    assert_eq!(before.len(), 3);
    assert!(!f.shared.locks().is_locked("alice"));
}

#[test]
fn dele_then_dropped_session_removes_nothing() {
    let f = fixture();
    let before = f.files("alice");
    let mut s = f.login("alice", "wonderland");
    send(&mut s, "DELE 1");
    send(&mut s, "DELE 3");
    assert!(f.shared.locks().is_locked("alice"));
    drop(s);
    assert_eq!(f.files("alice"), before);
    assert!(!f.shared.locks().is_locked("alice"));
}

#[test]
fn deleted_messages_are_hidden_and_rset_restores_them() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    send(&mut s, "DELE 2");
    for cmd in ["LIST 2", "UIDL 2", "RETR 2", "TOP 2 1", "DELE 2"] {
        assert_eq!(
            send(&mut s, cmd),
            "-ERR message 2 already deleted\r\n",
            "{cmd}"
        );
    }
    assert_eq!(send(&mut s, "STAT"), "+OK 2 53\r\n");
    assert_eq!(
        send(&mut s, "LIST"),
        "+OK 2 messages (53 octets)\r\n1 23\r\n3 30\r\n.\r\n"
    );
    assert!(!send(&mut s, "UIDL").contains("two"));
    assert_eq!(
        send(&mut s, "RSET"),
        "+OK maildrop has 3 messages (83 octets)\r\n"
    );
    assert_eq!(send(&mut s, "LIST 2"), "+OK 2 30\r\n");
    send_closing(&mut s, "QUIT");
    assert_eq!(f.files("alice").len(), 3, "RSET means QUIT removes nothing");
}

#[test]
fn overlong_arguments_and_lines_are_rejected_without_closing() {
    let f = fixture();
    let mut s = f.session();
    let long_user = format!("USER {}", "a".repeat(41));
    assert_eq!(
        send(&mut s, &long_user),
        "-ERR argument too long (at most 40 characters)\r\n"
    );
    let reply = s.line_too_long();
    assert_eq!(reply.bytes, b"-ERR line too long\r\n");
    assert_eq!(reply.after, After::Continue);
    let mut s = f.login("alice", "wonderland");
    assert_eq!(s.line_too_long().after, After::Continue);
    assert_eq!(
        send(&mut s, &format!("RETR {}", "1".repeat(41))),
        "-ERR argument too long (at most 40 characters)\r\n"
    );
    assert_eq!(send(&mut s, "STAT"), "+OK 3 83\r\n");
}

#[test]
fn nul_and_other_control_characters_are_rejected_without_closing() {
    let f = fixture();
    let mut s = f.session();
    let err = "-ERR command contains a control character\r\n";
    assert_eq!(send(&mut s, "USER al\0ice"), err);
    assert_eq!(send(&mut s, "\0"), err);
    assert_eq!(send(&mut s, "USER alice"), "+OK send PASS\r\n");
    assert_eq!(send(&mut s, "PASS wonder\0land"), err);
    // The rejected line came between: PASS no longer follows USER.
    assert_eq!(
        send(&mut s, "PASS wonderland"),
        "-ERR PASS must directly follow USER\r\n"
    );
    let mut s = f.login("alice", "wonderland");
    assert_eq!(send(&mut s, "DELE 1\0"), err);
    assert_eq!(send(&mut s, "DELE\t2"), err);
    assert_eq!(send(&mut s, "QUIT\r"), err);
    assert_eq!(send(&mut s, "STAT"), "+OK 3 83\r\n", "nothing deleted");
}

#[test]
fn unknown_and_empty_commands() {
    let f = fixture();
    let mut s = f.session();
    assert_eq!(send(&mut s, "HELO there"), "-ERR unknown command\r\n");
    assert_eq!(send(&mut s, ""), "-ERR empty command\r\n");
    let mut s = f.login("alice", "wonderland");
    assert_eq!(send(&mut s, "XTND XMIT"), "-ERR unknown command\r\n");
    assert_eq!(send(&mut s, "STAT extra"), "-ERR usage: STAT\r\n");
}

#[test]
fn commands_in_the_wrong_state() {
    let f = fixture();
    let mut s = f.session();
    for cmd in [
        "STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL",
    ] {
        assert_eq!(send(&mut s, cmd), "-ERR not logged in\r\n", "{cmd}");
    }
    let mut s = f.login("alice", "wonderland");
    for cmd in [
        "USER alice",
        "PASS wonderland",
        "APOP alice 0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(send(&mut s, cmd), "-ERR already logged in\r\n", "{cmd}");
    }
    send_closing(&mut s, "QUIT");
    assert_eq!(send_closing(&mut s, "STAT"), "-ERR session is closed\r\n");
    assert_eq!(s.line_too_long().after, After::Close);
}

#[test]
fn capa_lists_capabilities_in_both_states() {
    let f = fixture();
    let expected = "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
                    PIPELINING\r\nIMPLEMENTATION berth-pop3-test\r\n.\r\n";
    let mut s = f.session();
    assert_eq!(send(&mut s, "CAPA"), expected);
    let mut s = f.login("alice", "wonderland");
    assert_eq!(send(&mut s, "capa"), expected);
}

#[test]
fn uidls_are_stable_across_sessions() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    let first = send(&mut s, "UIDL");
    send(&mut s, "DELE 1");
    send_closing(&mut s, "QUIT");

    // A new message and a flag change by another client in between.
    deliver(
        &f.root,
        "alice",
        "new/1700000004.four.host",
        b"Subject: four\n\n",
    );
    fs::rename(
        f.root.join("alice/new/1700000003.three.host"),
        f.root.join("alice/cur/1700000003.three.host:2,S"),
    )
    .unwrap();

    let mut s = f.login("alice", "wonderland");
    let second = send(&mut s, "UIDL");
    let uids = |listing: &str| -> Vec<String> {
        listing
            .lines()
            .skip(1)
            .filter(|l| *l != ".")
            .map(|l| l.split(' ').nth(1).unwrap().to_owned())
            .collect()
    };
    let (before, after) = (uids(&first), uids(&second));
    assert_eq!(after[..2], before[1..]);
    assert_eq!(after[2], "1700000004.four.host");
}

#[test]
fn failed_removal_reports_sys_temp_and_still_closes() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    send(&mut s, "DELE 1");
    send(&mut s, "DELE 3");
    // Make message 1 impossible to unlink: replace it by a non-empty
    // directory (this works even when the tests run as root).
    let path = f.root.join("alice/new/1700000001.one.host");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), b"x").unwrap();
    let reply = send_closing(&mut s, "QUIT");
    assert_eq!(
        reply,
        "-ERR [SYS/TEMP] 1 deleted messages could not be removed\r\n"
    );
    assert!(!f.root.join("alice/new/1700000003.three.host").exists());
    assert!(!f.shared.locks().is_locked("alice"));
}

#[test]
fn vanished_message_is_reported_not_fatal() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    fs::remove_file(f.root.join("alice/new/1700000001.one.host")).unwrap();
    assert_eq!(
        send(&mut s, "RETR 1"),
        "-ERR message 1 no longer exists\r\n"
    );
    send(&mut s, "DELE 1");
    assert_eq!(
        send_closing(&mut s, "QUIT"),
        "+OK bye, 1 messages deleted\r\n"
    );
}

#[test]
fn user_without_mailbox_directory_has_an_empty_maildrop() {
    let f = fixture();
    let mut s = f.session();
    send(&mut s, "USER bob");
    assert_eq!(
        send(&mut s, "PASS builder"),
        "+OK maildrop has 0 messages (0 octets)\r\n"
    );
    assert_eq!(send(&mut s, "LIST"), "+OK 0 messages (0 octets)\r\n.\r\n");
    assert_eq!(
        send(&mut s, "UIDL"),
        "+OK unique-id listing follows\r\n.\r\n"
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let f = fixture();
    let mut s = f.session();
    let replies: Vec<String> = ["USER alice", "PASS wonderland", "STAT", "LIST 1", "UIDL 1"]
        .iter()
        .map(|line| send(&mut s, line))
        .collect();
    assert_eq!(replies[2], "+OK 3 83\r\n");
    assert_eq!(replies[3], "+OK 1 23\r\n");
    assert_eq!(replies[4], "+OK 1 1700000001.one.host\r\n");
}

#[test]
fn sessions_can_move_between_worker_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<Session>();
    assert_send::<Reply>();
    assert_send_sync::<Shared>();
    assert_send_sync::<LockRegistry>();

    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    let s = std::thread::spawn(move || {
        send(&mut s, "DELE 1");
        s
    })
    .join()
    .unwrap();
    drop(s);
    assert_eq!(f.files("alice").len(), 3);
}
