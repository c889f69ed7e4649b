//! The bad-command cap, and the login outcomes a server delays by.

use super::*;

const TOO_MANY: &str = "-ERR too many bad commands\r\n";

#[test]
fn the_bad_command_past_the_cap_closes_the_session() {
    let f = fixture();
    let mut s = f.session();
    let bad = ["HELO", "", "STAT", "PASS x", "USER \0", "RETR 1", "XTND"];
    for i in 0..crate::DEFAULT_MAX_BAD_COMMANDS as usize {
        let reply = send(&mut s, bad[i % bad.len()]);
        assert!(
            reply.starts_with("-ERR ") && !reply.contains('['),
            "{reply}"
        );
    }
    assert_eq!(send_closing(&mut s, "NOOP"), TOO_MANY);
    assert_eq!(s.state(), SessionState::Closed);
    assert_eq!(
        send_closing(&mut s, "USER alice"),
        "-ERR session is closed\r\n"
    );
}

#[test]
fn bad_commands_are_counted_across_the_login_and_nothing_is_deleted() {
    let f = fixture_with(|c| c.max_bad_commands = 3);
    let mut s = f.session();
    assert_eq!(send(&mut s, "NOOP"), "-ERR not logged in\r\n");
    assert_eq!(s.line_too_long().after, After::Continue);
    send(&mut s, "USER alice");
    assert!(send(&mut s, "PASS wonderland").starts_with("+OK"));
    assert_eq!(send(&mut s, "DELE 1"), "+OK message 1 deleted\r\n");
    // Good commands in between change nothing: the count is per session.
    assert_eq!(send(&mut s, "DELE 1"), "-ERR message 1 already deleted\r\n");
    assert_eq!(send(&mut s, "STAT"), "+OK 2 60\r\n");
    assert_eq!(send_closing(&mut s, "RETR 9"), TOO_MANY);
    assert_eq!(s.state(), SessionState::Closed);
    drop(s);
    assert_eq!(f.files("alice").len(), 3, "no UPDATE: nothing deleted");
    assert_eq!(f.shared.locks().locked_count(), 0, "the mailbox is free");
}

#[test]
fn an_overlong_line_past_the_cap_closes_the_session() {
    let f = fixture_with(|c| c.max_bad_commands = 1);
    let mut s = f.session();
    assert_eq!(s.line_too_long(), Reply::err("line too long"));
    let last = s.line_too_long();
    assert_eq!(last.bytes, TOO_MANY.as_bytes());
    assert_eq!(last.after, After::Close);
}

#[test]
fn a_cap_of_zero_closes_at_the_first_bad_command() {
    let f = fixture_with(|c| c.max_bad_commands = 0);
    let mut s = f.session();
    assert!(send(&mut s, "CAPA").starts_with("+OK"));
    assert_eq!(send_closing(&mut s, "HELO"), TOO_MANY);
}

#[test]
fn failed_logins_and_refusals_with_a_code_are_not_bad_commands() {
    let f = fixture_with(|c| {
        c.max_bad_commands = 1;
        c.max_auth_failures = 100;
    });
    let holder = f.login("alice", "wonderland");
    let mut s = f.session();
    for _ in 0..5 {
        send(&mut s, "USER alice");
        assert!(send(&mut s, "PASS wrong").starts_with("-ERR [AUTH] "));
        send(&mut s, "USER alice");
        assert!(send(&mut s, "PASS wonderland").starts_with("-ERR [IN-USE] "));
    }
    assert_eq!(send(&mut s, "STAT"), "-ERR not logged in\r\n");
    assert_eq!(send_closing(&mut s, "STAT"), TOO_MANY);
    drop(holder);
}

#[test]
fn login_outcomes_are_reported_once_each() {
    let f = fixture();
    let mut s = f.session();
    assert_eq!(s.take_auth_outcome(), None);
    send(&mut s, "USER alice");
    assert_eq!(s.take_auth_outcome(), None, "USER is no attempt");
    send(&mut s, "PASS wrong");
    assert_eq!(s.take_auth_outcome(), Some(AuthOutcome::Failed));
    assert_eq!(s.take_auth_outcome(), None);
    // A PASS without USER is a bad command, not an attempt.
    send(&mut s, "PASS wonderland");
    assert_eq!(s.take_auth_outcome(), None);
    // An unknown user fails like a wrong password.
    send(&mut s, "USER nobody");
    send(&mut s, "PASS wonderland");
    assert_eq!(s.take_auth_outcome(), Some(AuthOutcome::Failed));

    // Right credentials succeed even when the mailbox is in use.
    let holder = f.login("alice", "wonderland");
    send(&mut s, "USER alice");
    assert!(send(&mut s, "PASS wonderland").starts_with("-ERR [IN-USE]"));
    assert_eq!(s.take_auth_outcome(), Some(AuthOutcome::Succeeded));
    drop(holder);

    let digest = hex_md5(format!("{}wonderland", s.apop_timestamp()).as_bytes());
    assert!(send(&mut s, &format!("APOP alice {digest}")).starts_with("+OK"));
    assert_eq!(s.take_auth_outcome(), Some(AuthOutcome::Succeeded));

    // The closing failure is reported too.
    let strict = fixture_with(|c| c.max_auth_failures = 1);
    let mut s = strict.session();
    send(&mut s, "USER alice");
    assert!(send_closing(&mut s, "PASS nope").contains("too many attempts"));
    assert_eq!(s.take_auth_outcome(), Some(AuthOutcome::Failed));
}
