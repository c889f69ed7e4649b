//! Responses produced in pieces: streamed messages, listings, and sizes
//! checked and corrected as messages are read.

use std::io::Write as _;

use super::*;
use crate::session::{Body, BodyError, Fill, MIN_FILL_ROOM, Response, WHOLE_MESSAGE_LIMIT};

/// The piece size a server would use.
const PIECE: usize = 64 * 1024;

/// A message larger than [`WHOLE_MESSAGE_LIMIT`], with LF line ends and
/// lines that need dot-stuffing.
fn large_message() -> Vec<u8> {
    let mut raw = b"Subject: large\nFrom: someone\n\n".to_vec();
    let mut i = 0;
    while raw.len() as u64 <= WHOLE_MESSAGE_LIMIT + 100_000 {
        let line = match i % 5 {
            0 => format!(".dot line {i}\n"),
            1 => ".\n".to_owned(),
            _ => format!("line {i} {}\n", "y".repeat(i % 120)),
        };
        raw.extend_from_slice(line.as_bytes());
        i += 1;
    }
    raw
}

/// The canonical (CRLF) form of an LF message.
fn crlf(raw: &[u8]) -> Vec<u8> {
    String::from_utf8(raw.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

/// Runs `line` and produces its body in pieces of at most `limit` octets
/// (checking that bound); returns the head and the pieces.
fn in_pieces(
    s: &mut Session,
    line: &str,
    limit: usize,
) -> (String, Result<Vec<Vec<u8>>, BodyError>) {
    let Response { head, body, after } = s.respond(line.as_bytes());
    assert_eq!(after, After::Continue);
    let head = String::from_utf8(head).unwrap();
    let Some(mut body) = body else {
        return (head, Ok(Vec::new()));
    };
    (head, drain(s, &mut body, limit))
}

fn drain(s: &mut Session, body: &mut Body, limit: usize) -> Result<Vec<Vec<u8>>, BodyError> {
    let mut pieces = Vec::new();
    loop {
        let mut out = Vec::new();
        let fill = s.fill(body, &mut out, limit)?;
        let most = limit.max(MIN_FILL_ROOM);
        assert!(out.len() <= most, "{} > {most}", out.len());
        pieces.push(out);
        if fill == Fill::Done {
            return Ok(pieces);
        }
    }
}

fn deliver_large(f: &Fixture, name: &str) -> (PathBuf, Vec<u8>) {
    let raw = large_message();
    deliver(&f.root, "bob", name, &raw);
    (f.root.join("bob").join(name), raw)
}

#[test]
fn a_large_message_streams_byte_exact_in_bounded_pieces() {
    let f = fixture();
    let (_, raw) = deliver_large(&f, "new/1700000000.large.host");
    let expected = crlf(&raw);
    let mut s = f.login("bob", "builder");
    let (head, pieces) = in_pieces(&mut s, "RETR 1", PIECE);
    assert_eq!(head, format!("+OK {} octets\r\n", expected.len()));
    let pieces = pieces.unwrap();
    assert!(pieces.len() >= 5, "{} pieces", pieces.len());
    assert_eq!(unstuff(&pieces.concat()).unwrap(), expected);
    // The same through the whole-reply API.
    let whole = s.handle_line(b"RETR 1").bytes;
    assert_eq!(whole, [head.as_bytes(), &pieces.concat()].concat());
    // And in tiny pieces.
    let (_, tiny) = in_pieces(&mut s, "RETR 1", 7);
    assert_eq!(tiny.unwrap().concat(), pieces.concat());
}

#[test]
fn top_of_a_large_message_stops_early() {
    let f = fixture();
    let (_, raw) = deliver_large(&f, "new/1700000000.large.host");
    let mut s = f.login("bob", "builder");
    let (head, pieces) = in_pieces(&mut s, "TOP 1 3", PIECE);
    assert_eq!(head, "+OK top of message follows\r\n");
    let lines: Vec<&[u8]> = raw.split_inclusive(|&b| b == b'\n').take(6).collect();
    assert_eq!(
        unstuff(&pieces.unwrap().concat()).unwrap(),
        crlf(&lines.concat())
    );
}

#[test]
fn a_large_message_changed_in_place_while_sent_is_cut_off_and_corrected() {
    let f = fixture();
    let (path, raw) = deliver_large(&f, "new/1700000000.large.host");
    let mut s = f.login("bob", "builder");
    let Response { head, body, .. } = s.respond(b"RETR 1");
    let announced = crlf(&raw).len();
    assert_eq!(head, format!("+OK {announced} octets\r\n").into_bytes());
    let mut body = body.unwrap();
    let mut out = Vec::new();
    assert_eq!(s.fill(&mut body, &mut out, PIECE).unwrap(), Fill::More);
    // Another program appends to the file while it is being sent.
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"appended\n")
        .unwrap();
    let err = drain(&mut s, &mut body, PIECE).unwrap_err();
    let actual = announced as u64 + 10;
    assert!(
        matches!(err, BodyError::Changed { number: 1, announced: a, actual: b } if a == announced as u64 && b == actual),
        "{err:?}"
    );
    // The session and the next login know the new size; a retry works.
    assert_eq!(send(&mut s, "LIST 1"), format!("+OK 1 {actual}\r\n"));
    let (head, pieces) = in_pieces(&mut s, "RETR 1", PIECE);
    assert_eq!(head, format!("+OK {actual} octets\r\n"));
    assert_eq!(
        pieces.unwrap().concat().len() as u64,
        actual + 3 + dots(&raw)
    );
    drop(s);
    let mut s = f.login("bob", "builder");
    assert_eq!(send(&mut s, "LIST 1"), format!("+OK 1 {actual}\r\n"));
}

/// The dot-stuffing octets of an LF message.
fn dots(raw: &[u8]) -> u64 {
    raw.split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"."))
        .count() as u64
}

#[test]
fn a_large_message_rewritten_to_the_same_length_is_caught_at_its_end() {
    let f = fixture();
    let (path, raw) = deliver_large(&f, "new/1700000000.large.host");
    let mut s = f.login("bob", "builder");
    // Same inode, same length, one LF fewer: the cached size is stale and
    // nothing the snapshot checks can tell.
    let mut changed = raw.clone();
    let lf = changed.iter().rposition(|&b| b == b'\n').unwrap() - 1;
    let at = changed[..lf].iter().rposition(|&b| b == b'\n').unwrap();
    changed[at] = b' ';
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&changed)
        .unwrap();
    let (head, pieces) = in_pieces(&mut s, "RETR 1", PIECE);
    let stale = crlf(&raw).len() as u64;
    assert_eq!(head, format!("+OK {stale} octets\r\n"));
    assert!(matches!(pieces, Err(BodyError::Changed { actual, .. }) if actual == stale - 1));
    let (head, pieces) = in_pieces(&mut s, "RETR 1", PIECE);
    assert_eq!(head, format!("+OK {} octets\r\n", stale - 1));
    assert_eq!(unstuff(&pieces.unwrap().concat()).unwrap(), crlf(&changed));
}

#[test]
fn a_large_message_without_a_known_file_size_is_counted_before_its_status_line() {
    let f = fixture();
    // The name promises a POP3 size (wrongly) and no file size.
    let (path, raw) = deliver_large(&f, "new/1700000000.large.host,W=500000");
    let size = crlf(&raw).len() as u64;
    let mut s = f.login("bob", "builder");
    assert_eq!(send(&mut s, "LIST 1"), "+OK 1 500000\r\n");
    let (head, pieces) = in_pieces(&mut s, "RETR 1", PIECE);
    assert_eq!(head, format!("+OK {size} octets\r\n"));
    assert_eq!(unstuff(&pieces.unwrap().concat()).unwrap(), crlf(&raw));
    assert_eq!(send(&mut s, "LIST 1"), format!("+OK 1 {size}\r\n"));
    drop(s);
    // Learnt: the next login lists the right size, and trusts it.
    let mut s = f.login("bob", "builder");
    assert_eq!(send(&mut s, "STAT"), format!("+OK 1 {size}\r\n"));
    let _ = path;
}

#[test]
fn a_small_message_with_a_wrong_size_is_sent_with_the_right_one() {
    let f = fixture();
    let name = "new/1700000000.small.host,S=3,W=4";
    deliver(&f.root, "bob", name, b"Subject: s\n\nbody\n");
    let mut s = f.login("bob", "builder");
    assert_eq!(send(&mut s, "STAT"), "+OK 1 4\r\n");
    assert_eq!(
        send(&mut s, "RETR 1"),
        "+OK 20 octets\r\nSubject: s\r\n\r\nbody\r\n.\r\n"
    );
    assert_eq!(send(&mut s, "STAT"), "+OK 1 20\r\n");
    drop(s);
    let mut s = f.login("bob", "builder");
    assert_eq!(
        send(&mut s, "LIST"),
        "+OK 1 messages (20 octets)\r\n1 20\r\n.\r\n"
    );
}

#[test]
fn listings_in_pieces_are_the_whole_listing() {
    let f = fixture();
    for i in 0..500 {
        deliver(
            &f.root,
            "bob",
            &format!("new/{}.m{i}.host", 1_700_000_000 + i),
            format!("n{i}\n").as_bytes(),
        );
    }
    let mut s = f.login("bob", "builder");
    send(&mut s, "DELE 7");
    for command in ["LIST", "UIDL"] {
        let whole = send(&mut s, command);
        assert_eq!(whole.lines().count(), 1 + 499 + 1);
        let (head, pieces) = in_pieces(&mut s, command, 200);
        let pieces = pieces.unwrap();
        assert!(pieces.len() > 10, "{} pieces", pieces.len());
        let joined = [head.into_bytes(), pieces.concat()].concat();
        assert_eq!(String::from_utf8(joined).unwrap(), whole);
    }
}
