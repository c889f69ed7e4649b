//! Invariant checks for the command parser and the session, shared by the
//! fuzz target in `fuzz/` and its stable run (`tests/fuzz_targets.rs`).
//! Not a stable API.
//!
//! The input is what a client sends: command lines ended by CRLF. Each line
//! goes through the parser's checks ([`check_line`]), then the lines are
//! played to a fresh [`Session`] the way the server plays them, and every
//! reply is checked. The checks panic when an invariant does not hold.

use std::sync::Arc;

use crate::command::{self, Command, MAX_LINE_LEN};
use crate::{After, Config, Session, SessionState, Shared, Users};

thread_local! {
    /// One configuration for every session the checks play.
    static SHARED: Arc<Shared> = Arc::new(Shared::new(config()));
}

/// alice (secret `wonderland`) over a Maildir root that does not exist: she
/// logs in to an empty mailbox, and nothing on disk is read or removed.
fn config() -> Config {
    let users = Users::parse("alice:wonderland\n").expect("a valid users file");
    let name = format!("berth-pop3-check-{}-absent", std::process::id());
    let root = std::env::temp_dir().join(name);
    assert!(!root.exists(), "{} must not exist", root.display());
    Config::new(users, root)
}

/// The lines of `data` that end with CRLF, without it. A last line without
/// CRLF is left out: the server never answers it.
fn crlf_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let at = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..at];
        rest = &rest[at + 2..];
        Some(line)
    })
}

/// The first word of `line`, as the parser finds its keyword.
fn keyword(line: &[u8]) -> Option<&[u8]> {
    line.split(|&b| b == b' ').find(|w| !w.is_empty())
}

/// `line` with the case of the ASCII letters of its keyword swapped.
fn swap_keyword_case(line: &[u8]) -> Vec<u8> {
    let mut out = line.to_vec();
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    for b in out[start..].iter_mut().take_while(|b| **b != b' ') {
        if b.is_ascii_alphabetic() {
            *b ^= 0x20;
        }
    }
    out
}

/// Fuzz check for the parser and the session.
///
/// Input: a client's stream; each CRLF-ended line is checked with
/// [`check_line`] and played to a new session, as the server would: a line
/// longer than 255 octets with its CRLF gets [`Session::line_too_long`].
pub fn check_commands(data: &[u8]) {
    let mut session = Session::new(SHARED.with(Arc::clone));
    let greeting = session.greeting();
    assert!(greeting.starts_with(b"+OK ") && greeting.ends_with(b"\r\n"));
    let mut bad = 0;
    for line in crlf_lines(data) {
        check_line(line);
        play(&mut session, line, &mut bad);
    }
}

/// The parser's properties for one line (without CRLF):
/// - it returns a command or a typed error, and never panics;
/// - a line with a control character is an error;
/// - the keyword's case changes nothing, nor (but for `PASS`, whose
///   argument is the rest of the line) does a trailing space;
/// - a parsed command written back as a line (`Command::to_line`) parses
///   as the same command, under the keyword the line had;
/// - an error's message is one line of printable ASCII.
pub fn check_line(line: &[u8]) {
    let parsed = command::parse(line);
    if line.iter().any(u8::is_ascii_control) {
        assert_eq!(parsed, Err(command::ParseError::ControlCharacter));
    }
    let swapped = swap_keyword_case(line);
    assert_eq!(command::parse(&swapped), parsed, "keyword case matters");
    let keyword = keyword(line).map(<[u8]>::to_ascii_uppercase);
    if keyword.as_deref() != Some(b"PASS") {
        let spaced = [line, b" "].concat();
        assert_eq!(command::parse(&spaced), parsed, "a trailing space matters");
    }
    match parsed {
        Ok(command) => {
            let again = command.to_line();
            assert_eq!(command::parse(&again), Ok(command), "{again:?} reads back");
            assert_eq!(
                again.split(|&b| b == b' ').next(),
                keyword.as_deref(),
                "written under another keyword"
            );
        }
        Err(e) => {
            let message = e.message();
            assert!(!message.is_empty(), "{e:?} has an empty message");
            assert!(
                message.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
                "{e:?} has a message that is not printable ASCII"
            );
        }
    }
}

/// Play `line` to `session` and check the reply: `+OK` or `-ERR`, one CRLF
/// line (a multi-line answer ends with `.` CRLF), the parser's message for
/// a line it rejects, and a close only where the protocol has one or after
/// one bad command (`-ERR` without a response code) more than the cap;
/// `bad` counts them.
fn play(session: &mut Session, line: &[u8], bad: &mut u32) {
    let before = session.state();
    let too_long = line.len() + 2 > MAX_LINE_LEN;
    let (reply, parsed) = if too_long {
        (session.line_too_long(), None)
    } else {
        (session.handle_line(line), Some(command::parse(line)))
    };
    let bytes = &reply.bytes;
    assert!(
        bytes.starts_with(b"+OK") || bytes.starts_with(b"-ERR"),
        "{bytes:?}"
    );
    assert!(bytes.ends_with(b"\r\n"), "{bytes:?}");
    let multi_line = reply.is_ok()
        && matches!(
            parsed,
            Some(Ok(Command::List(None)
                | Command::Uidl(None)
                | Command::Capa
                | Command::Retr(_)
                | Command::Top { .. }))
        );
    if multi_line {
        assert!(bytes.ends_with(b"\r\n.\r\n"), "{bytes:?}");
    } else {
        let first_break = bytes.iter().position(|&b| b == b'\r' || b == b'\n');
        assert_eq!(first_break, Some(bytes.len() - 2), "{bytes:?}");
    }
    if before == SessionState::Closed {
        assert_eq!(&bytes[..], b"-ERR session is closed\r\n");
        assert_eq!(reply.after, After::Close);
        return;
    }
    if bytes.starts_with(b"-ERR") && !bytes.starts_with(b"-ERR [") {
        *bad += 1;
    }
    let cap = SHARED.with(|shared| shared.config().max_bad_commands);
    if *bad > cap {
        assert_eq!(&bytes[..], b"-ERR too many bad commands\r\n");
        assert_eq!(reply.after, After::Close);
        assert_eq!(session.state(), SessionState::Closed);
        return;
    }
    match &parsed {
        None => assert_eq!(&bytes[..], b"-ERR line too long\r\n"),
        Some(Err(e)) => assert_eq!(*bytes, format!("-ERR {}\r\n", e.message()).into_bytes()),
        Some(Ok(_)) => {}
    }
    if reply.after == After::Close {
        assert!(
            matches!(
                parsed,
                Some(Ok(Command::Quit | Command::Pass(_) | Command::Apop { .. }))
            ),
            "{line:?} closed the session"
        );
        assert_eq!(session.state(), SessionState::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_crlf_only() {
        let lines: Vec<&[u8]> = crlf_lines(b"a\r\n\r\nb\nc\rd\r\ntail").collect();
        assert_eq!(lines, [&b"a"[..], b"", b"b\nc\rd"]);
    }

    #[test]
    fn keyword_case_is_swapped_and_nothing_else() {
        assert_eq!(swap_keyword_case(b"  uSeR Bob"), b"  UsEr Bob");
        assert_eq!(swap_keyword_case(b"t0p 1"), b"T0P 1");
        assert_eq!(swap_keyword_case(b""), b"");
    }

    #[test]
    fn a_session_with_login_and_errors_passes() {
        check_commands(
            b"CAPA\r\nUSER alice\r\nPASS wonderland\r\nSTAT\r\nLIST\r\nRETR 1\r\n\
              USER al\0ice\r\nTOP 1 x\r\nUIDL\r\nQUIT\r\nNOOP\r\n",
        );
    }

    #[test]
    fn a_session_of_bad_commands_is_closed_past_the_cap() {
        let mut data = b"USER alice\r\nPASS wrong\r\n".repeat(2);
        data.extend_from_slice(&b"HELO\r\n".repeat(25));
        data.extend_from_slice(b"USER alice\r\n");
        check_commands(&data);
    }
}
