//! `berth pop3` driven by a real POP3 client: Python's standard `poplib`
//! (`tests/pop3_client.py`), plus a raw socket for pipelining. Every server
//! test runs once per engine, on Maildirs built in temporary directories.
//! Every wait is bounded.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Running, berth, both_engines, run_bounded};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pop3_client.py");

both_engines!(
    logs_in_with_user_pass_and_apop,
    too_many_auth_failures_close_the_session,
    retrieves_a_1000_line_message_byte_exact,
    dele_then_quit_removes_exactly_those_files,
    dele_then_dropped_connection_removes_nothing,
    rset_undoes_deletions,
    second_login_on_a_mailbox_in_use_is_refused,
    fifty_concurrent_sessions_on_fifty_mailboxes,
    overlong_line_gets_err_and_the_session_continues,
    pipelined_commands_are_answered_in_order,
    idle_session_is_logged_out_and_nothing_is_deleted,
    sigterm_ends_sessions_without_deleting,
    a_64_mib_message_streams_in_bounded_memory,
    login_timeout_bad_command_cap_and_login_delay_follow_their_flags,
);

/// POP3 client scenarios against a running server.
trait Pop3Client {
    /// Run a client scenario against this server.
    fn client(&self, scenario: &str, args: &[&str]) -> Value;
}

impl Pop3Client for Running {
    fn client(&self, scenario: &str, args: &[&str]) -> Value {
        pop3_client(self.addr, scenario, args)
    }
}

/// Run `pop3_client.py SCENARIO HOST PORT ARGS...` and parse its JSON.
fn pop3_client(addr: SocketAddr, scenario: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(CLIENT)
        .arg(scenario)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args(args);
    let out = run_bounded(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client scenario {scenario} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A users file and a Maildir tree in a temporary directory.
struct Fixture {
    _dir: tempfile::TempDir,
    maildir: PathBuf,
    users: PathBuf,
}

impl Fixture {
    fn new(users: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        fs::create_dir(&maildir).unwrap();
        let users_file = dir.path().join("users");
        let mut text = String::from("# test users\n");
        for (name, secret) in users {
            text.push_str(&format!("{name}:{secret}\n"));
        }
        fs::write(&users_file, text).unwrap();
        Fixture {
            _dir: dir,
            maildir,
            users: users_file,
        }
    }

    /// Deliver `messages` to `user`'s mailbox (message numbers follow the
    /// order given); returns their paths.
    fn mailbox(&self, user: &str, messages: &[Vec<u8>]) -> Vec<PathBuf> {
        let mailbox = self.maildir.join(user);
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(mailbox.join(sub)).unwrap();
        }
        messages
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = mailbox
                    .join("new")
                    .join(format!("{}.M{i}.berth-test", 1_700_000_000 + i));
                fs::write(&path, text).unwrap();
                path
            })
            .collect()
    }

    fn serve(&self, engine: &str, extra: &[&str]) -> Running {
        let mut args = vec![
            "pop3",
            "--listen",
            "127.0.0.1:0",
            "--engine",
            engine,
            "--maildir",
            self.maildir.to_str().unwrap(),
            "--users",
            self.users.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Running::spawn(berth(&args))
    }
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: test@localhost\r\nSubject: {subject}\r\n\r\nHello.\r\n").into_bytes()
}

fn messages(n: usize) -> Vec<Vec<u8>> {
    (1..=n).map(|i| message(&format!("message {i}"))).collect()
}

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn unhex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn stat(v: &Value) -> (u64, u64) {
    (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
}

fn logs_in_with_user_pass_and_apop(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland"), ("bob", "secret with spaces")]);
    fx.mailbox("alice", &messages(3));
    let srv = fx.serve(engine, &["--hostname", "pop.test"]);

    let r = srv.client("login_user", &["alice", "wonderland"]);
    let welcome = str_of(&r["welcome"]);
    assert!(
        welcome.starts_with("+OK") && welcome.ends_with("@pop.test>"),
        "{r}"
    );
    assert!(str_of(&r["pass"]).starts_with("+OK maildrop has 3 messages"));
    assert_eq!(stat(&r["stat"]).0, 3);
    for cap in ["PIPELINING", "RESP-CODES", "TOP", "UIDL", "USER"] {
        assert!(
            r["capa"].as_array().unwrap().iter().any(|c| c == cap),
            "{r}"
        );
    }
    assert!(str_of(&r["quit"]).starts_with("+OK"));

    // A user without a mailbox directory has an empty maildrop.
    let r = srv.client("login_user", &["bob", "secret with spaces"]);
    assert_eq!(stat(&r["stat"]), (0, 0));

    let r = srv.client("login_apop", &["alice", "wonderland"]);
    assert!(str_of(&r["apop"]).starts_with("+OK"), "{r}");
    assert_eq!(stat(&r["stat"]).0, 3);
    assert!(str_of(&r["wrong_apop"]).starts_with("-ERR [AUTH]"), "{r}");
}

fn too_many_auth_failures_close_the_session(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let srv = fx.serve(
        engine,
        &["--max-auth-failures", "2", "--auth-failure-delay", "1"],
    );
    let started = Instant::now();
    let r = srv.client("auth_failures", &["alice", "wonderland", "2"]);
    let replies = r["replies"].as_array().unwrap();
    assert_eq!(str_of(&replies[0]), "-ERR [AUTH] authentication failed");
    assert!(str_of(&replies[1]).contains("too many attempts"), "{r}");
    assert_eq!(r["eof"], true, "the server closes after the last failure");
    // Each answer was held back: 1 s, then twice that.
    assert!(started.elapsed() >= Duration::from_secs(3));
}

/// 1,000 lines, some starting with `.` (one is just `.`), CRLF endings.
fn big_message() -> Vec<u8> {
    let mut text = String::from(
        "From: big@localhost\r\nTo: alice@localhost\r\nSubject: a thousand lines\r\n\r\n",
    );
    for i in 4..1000 {
        let line = match i % 10 {
            _ if i == 500 => ".".to_owned(),
            _ if i == 501 => "..".to_owned(),
            3 => format!(".starts with a dot {i}"),
            7 => format!("..starts with two dots {i}"),
            _ => format!("line {i}: the quick brown fox jumps over the lazy dog"),
        };
        text.push_str(&line);
        text.push_str("\r\n");
    }
    assert_eq!(text.matches("\r\n").count(), 1000);
    text.into_bytes()
}

fn retrieves_a_1000_line_message_byte_exact(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let big = big_message();
    // The same message with LF endings: served with CRLF.
    let lf = String::from_utf8(big.clone())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    let paths = fx.mailbox("alice", &[message("first"), big.clone(), lf]);
    let srv = fx.serve(engine, &[]);

    for number in ["2", "3"] {
        let r = srv.client("fetch", &["alice", "wonderland", number, "10"]);
        let size = big.len() as u64;
        assert_eq!(
            stat(&r["stat"]),
            (3, message("first").len() as u64 + 2 * size)
        );
        assert_eq!(
            r["list"],
            serde_json::json!([
                format!("1 {}", message("first").len()),
                format!("2 {size}"),
                format!("3 {size}")
            ])
        );
        assert_eq!(str_of(&r["list_one"]), format!("+OK {number} {size}"));
        let uidls: Vec<String> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} {}", i + 1, p.file_name().unwrap().to_str().unwrap()))
            .collect();
        assert_eq!(r["uidl"], serde_json::json!(uidls));
        let n: usize = number.parse().unwrap();
        assert_eq!(str_of(&r["uidl_one"]), format!("+OK {}", uidls[n - 1]));

        assert_eq!(str_of(&r["retr_resp"]), format!("+OK {size} octets"));
        let got = unhex(&r["retr"]);
        assert!(got == big, "RETR {number} differs from the message");

        // TOP: the headers, the blank line, then 10 body lines.
        let head_end = big.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut expected = big[..head_end].to_vec();
        let body = &big[head_end..];
        let mut at = 0;
        for _ in 0..10 {
            at += body[at..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        }
        expected.extend_from_slice(&body[..at]);
        assert!(unhex(&r["top"]) == expected, "TOP {number} 10 differs");
        assert!(str_of(&r["quit"]).starts_with("+OK"));
    }
    // Reading deletes nothing.
    assert!(paths.iter().all(|p| p.exists()));
}

fn dele_then_quit_removes_exactly_those_files(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let paths = fx.mailbox("alice", &messages(5));
    let srv = fx.serve(engine, &[]);
    let r = srv.client("dele", &["alice", "wonderland", "2,4", "quit"]);
    assert_eq!(stat(&r["stat"]).0, 3, "{r}");
    assert_eq!(str_of(&r["quit"]), "+OK bye, 2 messages deleted");
    // The reply is sent after the UPDATE state ran.
    for (i, path) in paths.iter().enumerate() {
        let deleted = i == 1 || i == 3;
        assert_eq!(path.exists(), !deleted, "{}", path.display());
    }
    assert_eq!(files_in(&fx.maildir.join("alice/new")).len(), 3);
    assert!(files_in(&fx.maildir.join("alice/tmp")).is_empty());
    // The next session sees the rest, renumbered.
    let r = srv.client("stat_retry", &["alice", "wonderland"]);
    assert_eq!(stat(&r["stat"]).0, 3);
}

fn dele_then_dropped_connection_removes_nothing(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let mut msgs = messages(4);
    msgs[1] = big_message();
    let paths = fx.mailbox("alice", &msgs);
    let srv = fx.serve(engine, &["--workers", "1"]);
    // `flood-reset` leaves commands queued on the worker when the
    // connection goes: they must not run for a session that is gone.
    for ending in ["close", "reset", "flood-reset"] {
        let r = srv.client("dele", &["alice", "wonderland", "1,3", ending]);
        assert_eq!(stat(&r["stat"]).0, 2, "{r}");
        // Logging in again waits for the dropped session to release the
        // mailbox; by then it has ended without an UPDATE.
        let r = srv.client("stat_retry", &["alice", "wonderland"]);
        assert_eq!(stat(&r["stat"]).0, 4, "after {ending}: {r}");
        assert!(paths.iter().all(|p| p.exists()), "after {ending}");
    }
}

fn rset_undoes_deletions(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let paths = fx.mailbox("alice", &messages(4));
    let srv = fx.serve(engine, &[]);
    let r = srv.client("rset", &["alice", "wonderland"]);
    assert_eq!(stat(&r["before"]).0, 4);
    assert_eq!(stat(&r["after_dele"]).0, 2);
    assert_eq!(str_of(&r["retr_deleted"]), "-ERR message 1 already deleted");
    assert!(str_of(&r["rset"]).starts_with("+OK maildrop has 4 messages"));
    assert_eq!(r["after_rset"], r["before"]);
    assert_eq!(str_of(&r["quit"]), "+OK bye, 0 messages deleted");
    assert!(paths.iter().all(|p| p.exists()));
}

fn second_login_on_a_mailbox_in_use_is_refused(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    fx.mailbox("alice", &messages(2));
    let srv = fx.serve(engine, &[]);
    let r = srv.client("in_use", &["alice", "wonderland"]);
    assert!(str_of(&r["second"]).starts_with("-ERR [IN-USE]"), "{r}");
    assert!(str_of(&r["first_quit"]).starts_with("+OK"));
    assert!(str_of(&r["second_retry"]).starts_with("+OK"), "{r}");
    assert_eq!(stat(&r["after_release"]).0, 2);
}

fn fifty_concurrent_sessions_on_fifty_mailboxes(engine: &str) {
    let names: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    let users: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "pw")).collect();
    let fx = Fixture::new(&users);
    for name in &names {
        fx.mailbox(name, &[message(&format!("for {name}")), message("second")]);
    }
    let srv = fx.serve(engine, &["--workers", "4"]);
    let r = srv.client("many", &["m", "pw", "50"]);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 50);
    for (name, res) in names.iter().zip(results) {
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["stat"], 2, "{res}");
        assert_eq!(str_of(&res["subject"]), format!("Subject: for {name}"));
    }
}

fn overlong_line_gets_err_and_the_session_continues(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    fx.mailbox("alice", &messages(2));
    let srv = fx.serve(engine, &[]);
    let r = srv.client("long_line", &["alice", "wonderland"]);
    assert_eq!(str_of(&r["auth_long"]), "-ERR line too long", "{r}");
    assert_eq!(str_of(&r["tx_long"]), "-ERR line too long", "{r}");
    // 255 octets with CRLF pass the framing; the session then refuses the
    // over-long argument itself.
    assert!(
        str_of(&r["at_limit"]).starts_with("-ERR argument too long"),
        "{r}"
    );
    assert_eq!(stat(&r["stat"]).0, 2);
    assert!(str_of(&r["quit"]).starts_with("+OK"));
}

/// Read one response from `r`: a status line, and for a positive
/// multi-line response the lines up to the terminating `.`.
fn response(r: &mut impl BufRead, multi: bool) -> (String, Vec<String>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.ends_with("\r\n"), "incomplete response {line:?}");
    line.truncate(line.len() - 2);
    let mut body = Vec::new();
    if multi && line.starts_with("+OK") {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert!(l.ends_with("\r\n"), "unterminated multi-line response");
            if l == ".\r\n" {
                break;
            }
            body.push(l.trim_end_matches("\r\n").to_owned());
        }
    }
    (line, body)
}

fn pipelined_commands_are_answered_in_order(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let paths = fx.mailbox("alice", &messages(3));
    let srv = fx.serve(engine, &[]);
    let mut s = srv.connect();
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let (greeting, _) = response(&mut r, false);
    assert!(greeting.starts_with("+OK"));

    let long = format!("NOOP {}", "x".repeat(300));
    let commands: [(&str, bool, &str); 14] = [
        ("CAPA", true, "+OK capability list follows"),
        ("STAT", false, "-ERR not logged in"),
        ("USER alice", false, "+OK send PASS"),
        ("PASS wonderland", false, "+OK maildrop has 3 messages"),
        ("STAT", false, "+OK 3 "),
        (&long, false, "-ERR line too long"),
        ("LIST", true, "+OK 3 messages"),
        ("UIDL 2", false, "+OK 2 1700000001.M1.berth-test"),
        ("RETR 1", true, "+OK "),
        ("DELE 1", false, "+OK message 1 deleted"),
        ("STAT", false, "+OK 2 "),
        ("RSET", false, "+OK maildrop has 3 messages"),
        ("NOOP", false, "+OK"),
        ("QUIT", false, "+OK bye, 0 messages deleted"),
    ];
    let mut batch = String::new();
    for (command, _, _) in &commands {
        batch.push_str(command);
        batch.push_str("\r\n");
    }
    // All the commands in one write, before reading any response.
    s.write_all(batch.as_bytes()).unwrap();
    for (command, multi, expected) in &commands {
        let (status, body) = response(&mut r, *multi);
        assert!(
            status.starts_with(expected),
            "{command:.20}: expected {expected:?}, got {status:?}"
        );
        if *command == "LIST" {
            assert_eq!(body.len(), 3);
        }
        if *command == "RETR 1" {
            assert!(body.contains(&"Subject: message 1".to_owned()), "{body:?}");
        }
    }
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "after QUIT: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(paths.iter().all(|p| p.exists()));
}

fn idle_session_is_logged_out_and_nothing_is_deleted(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let paths = fx.mailbox("alice", &messages(3));
    let mut srv = fx.serve(engine, &["--idle-timeout", "1"]);
    // Active for 2.5 s (longer than the timeout): not logged out. Then idle.
    let r = srv.client("idle", &["alice", "wonderland", "2.5"]);
    assert!(str_of(&r["dele"]).starts_with("+OK"));
    assert!(r["noops"].as_u64().unwrap() >= 5, "{r}");
    assert_eq!(
        str_of(&r["unsolicited"]),
        "-ERR autologout; idle for too long\r\n"
    );
    let idle = r["idle_secs"].as_f64().unwrap();
    assert!((0.5..10.0).contains(&idle), "logged out after {idle} s");
    assert_eq!(r["eof"], true);
    srv.wait_for("POP3 autologout");
    // The DELE was not carried out, and the mailbox is free again.
    assert!(paths.iter().all(|p| p.exists()));
    let r = srv.client("stat_retry", &["alice", "wonderland"]);
    assert_eq!(stat(&r["stat"]).0, 3);
}

fn sigterm_ends_sessions_without_deleting(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let paths = fx.mailbox("alice", &messages(2));
    let mut srv = fx.serve(engine, &["--drain-timeout", "5"]);
    let mut s = srv.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(response(&mut r, false).0.starts_with("+OK"));
    for (command, expected) in [
        ("USER alice", "+OK"),
        ("PASS wonderland", "+OK maildrop has 2"),
        ("DELE 1", "+OK message 1 deleted"),
    ] {
        s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let (status, _) = response(&mut r, false);
        assert!(status.starts_with(expected), "{command}: {status}");
    }
    srv.signal("-TERM");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    // The process exits (the worker threads stop).
    assert!(srv.wait_exit().success());
    srv.wait_for("stopped");
    assert!(paths.iter().all(|p| p.exists()));
}

/// A kilobyte-or-so line per step: some lines start with `.`, LF line ends.
fn huge_line(i: usize) -> String {
    match i % 11 {
        0 => format!(".{i} starts with a dot\n"),
        5 => ".\n".to_owned(),
        _ => format!("{i:08} {}\n", "abcdefghij".repeat(i % 100)),
    }
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// RETR of a message far larger than the buffers (4 KiB blocks here) is
/// streamed: the server's peak memory grows by a small fraction of the
/// message, however slowly the client reads.
fn a_64_mib_message_streams_in_bounded_memory(engine: &str) {
    const SIZE: usize = 64 << 20;
    const HEADER: &str = "Subject: huge\n\n";
    let fx = Fixture::new(&[("alice", "wonderland")]);
    fx.mailbox("alice", &[]);
    let path = fx.maildir.join("alice/new/1700000000.huge.berth-test");
    // The POP3 size (CRLF line ends) and the body's length on the wire.
    let (mut size, mut wire) = (HEADER.len() + 2, HEADER.len() + 2);
    let mut lines = 0;
    {
        let mut file = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        file.write_all(HEADER.as_bytes()).unwrap();
        while size < SIZE {
            let line = huge_line(lines);
            file.write_all(line.as_bytes()).unwrap();
            size += line.len() + 1;
            wire += line.len() + 1 + usize::from(line.starts_with('.'));
            lines += 1;
        }
        file.flush().unwrap();
    }
    let srv = fx.serve(engine, &["--buffer-size", "4096", "--workers", "1"]);
    let pid = srv.child.id();
    let mut s = srv.connect();
    let mut r = BufReader::with_capacity(256 << 10, s.try_clone().unwrap());
    assert!(response(&mut r, false).0.starts_with("+OK"));
    s.write_all(b"USER alice\r\nPASS wonderland\r\n").unwrap();
    assert!(response(&mut r, false).0.starts_with("+OK"));
    let (pass, _) = response(&mut r, false);
    assert_eq!(pass, format!("+OK maildrop has 1 messages ({size} octets)"));
    // Peak memory from here on (writing 5 resets VmHWM to the current RSS).
    let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let baseline = status_kib(pid, "VmRSS:");

    s.write_all(b"RETR 1\r\n").unwrap();
    assert_eq!(response(&mut r, false).0, format!("+OK {size} octets"));
    // Read the body line by line, checking each, and look at the server's
    // memory every few megabytes (the server waits for this reader).
    let mut line = Vec::new();
    let mut got = 0;
    for i in 0..lines + 3 {
        line.clear();
        r.read_until(b'\n', &mut line).unwrap();
        got += line.len();
        let want = match i {
            0 => "Subject: huge\r\n".to_owned(),
            1 => "\r\n".to_owned(),
            _ if i == lines + 2 => ".\r\n".to_owned(),
            _ => {
                let want = huge_line(i - 2);
                let want = want.trim_end_matches('\n');
                let dot = if want.starts_with('.') { "." } else { "" };
                format!("{dot}{want}\r\n")
            }
        };
        assert!(
            line == want.as_bytes(),
            "line {i}: {:?}",
            String::from_utf8_lossy(&line)
        );
        if i % 4096 == 0 {
            let rss = status_kib(pid, "VmRSS:");
            assert!(
                rss < baseline + 16 * 1024,
                "RSS {rss} KiB, from {baseline} KiB"
            );
        }
    }
    assert_eq!(got, wire + 3);
    let peak = status_kib(pid, "VmHWM:");
    assert!(
        peak < baseline + 16 * 1024,
        "peak RSS {peak} KiB from {baseline} KiB while sending {size} octets"
    );
    s.write_all(b"TOP 1 1\r\nQUIT\r\n").unwrap();
    let (top, body) = response(&mut r, true);
    assert_eq!(top, "+OK top of message follows");
    assert_eq!(body, ["Subject: huge", "", "..0 starts with a dot"]);
    assert!(response(&mut r, false).0.starts_with("+OK bye"));
}

/// Read from `s` until the server closes; return what came.
fn rest_of(s: &mut std::net::TcpStream) -> String {
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    rest
}

fn login_timeout_bad_command_cap_and_login_delay_follow_their_flags(engine: &str) {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    fx.mailbox("alice", &messages(1));
    let strict = fx.serve(engine, &["--login-timeout", "1"]);
    let srv = fx.serve(
        engine,
        &["--max-bad-commands", "2", "--auth-failure-delay", "1"],
    );

    // No login within the second: closed, however busy the client is.
    let started = Instant::now();
    let mut s = strict.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(response(&mut r, false).0.starts_with("+OK"));
    s.write_all(b"CAPA\r\n").unwrap();
    assert!(response(&mut r, true).0.starts_with("+OK"));
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "-ERR disconnected: no login within 1 second\r\n");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // The third bad command closes the session.
    let mut s = srv.connect();
    s.write_all(b"HELO\r\nSTAT\r\nNOOP\r\nCAPA\r\n").unwrap();
    let rest = rest_of(&mut s);
    let lines: Vec<&str> = rest.split_inclusive("\r\n").collect();
    assert_eq!(
        lines[1..],
        [
            "-ERR unknown command\r\n",
            "-ERR not logged in\r\n",
            "-ERR too many bad commands\r\n"
        ],
        "{rest:?}"
    );

    // A failed login is answered after the delay; what was pipelined
    // behind it after that.
    let mut s = srv.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(response(&mut r, false).0.starts_with("+OK"));
    let started = Instant::now();
    s.write_all(b"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS wonderland\r\nQUIT\r\n")
        .unwrap();
    assert_eq!(response(&mut r, false).0, "+OK send PASS");
    assert_eq!(
        response(&mut r, false).0,
        "-ERR [AUTH] authentication failed"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(response(&mut r, false).0, "+OK send PASS");
    assert!(response(&mut r, false).0.starts_with("+OK maildrop has 1 "));
    assert!(response(&mut r, false).0.starts_with("+OK bye"));
}

#[test]
fn pop3_help_lists_the_hardening_flags() {
    let out = run_bounded(berth(&["pop3", "--help"]));
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, default) in [
        ("--login-timeout <SECS>", "[default: 180]"),
        ("--max-bad-commands <N>", "[default: 20]"),
        ("--auth-failure-delay <SECS>", "[default: 2]"),
        ("--max-auth-failures <N>", "[default: 3]"),
    ] {
        let entry: String = help
            .lines()
            .skip_while(|l| !l.contains(flag))
            .take(5)
            .collect();
        assert!(entry.contains(default), "{flag}: {entry:?} in {help}");
    }
    assert!(help.contains("--idle-timeout <SECS>"), "{help}");
}

/// Run `berth` expecting a startup failure; return its one-line error.
fn startup_error(args: &[&str]) -> String {
    let out = run_bounded(berth(args));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn startup_errors_are_one_clear_line() {
    let fx = Fixture::new(&[("alice", "wonderland")]);
    let maildir = fx.maildir.to_str().unwrap();
    let users = fx.users.to_str().unwrap();
    let base = |maildir: &str, users: &str| {
        vec![
            "pop3",
            "--listen",
            "127.0.0.1:0",
            "--maildir",
            maildir,
            "--users",
            users,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let run =
        |args: Vec<String>| startup_error(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let malformed = fx.maildir.parent().unwrap().join("bad-users");
    fs::write(&malformed, "alice:wonderland\n# a comment\n\nbob\n").unwrap();
    let err = run(base(maildir, malformed.to_str().unwrap()));
    assert!(
        err.contains("users file line 4") && err.contains("no `:`"),
        "{err}"
    );

    let missing = fx.maildir.join("no-such-dir");
    let err = run(base(missing.to_str().unwrap(), users));
    assert!(
        err.contains("maildir") && err.contains("does not exist"),
        "{err}"
    );

    let err = run(base(users, users));
    assert!(err.contains("is not a directory"), "{err}");

    let err = run(base(maildir, missing.to_str().unwrap()));
    assert!(err.contains("cannot read users file"), "{err}");
}

#[test]
fn demo_prints_a_command_that_serves_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let out = run_bounded(berth(&["pop3-demo", demo.to_str().unwrap()]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("alice / wonderland"), "{text}");
    assert!(text.contains("in clear"), "{text}");
    let command = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("berth pop3 "))
        .unwrap_or_else(|| panic!("no command in {text}"));
    // The printed command, on a free port.
    let args: Vec<&str> = command
        .split_whitespace()
        .skip(1)
        .map(|w| {
            if w == "127.0.0.1:1110" {
                "127.0.0.1:0"
            } else {
                w
            }
        })
        .collect();
    let srv = Running::spawn(berth(&args));
    let r = srv.client("login_user", &["alice", "wonderland"]);
    assert_eq!(stat(&r["stat"]).0, 5, "{r}");
}
