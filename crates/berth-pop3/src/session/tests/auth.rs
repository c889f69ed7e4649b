//! Tests of the AUTHORIZATION state: login, APOP, failures and locking.

use super::*;

#[test]
fn greeting_carries_a_unique_apop_timestamp() {
    let f = fixture();
    let mut a = f.session();
    let mut b = f.session();
    let (ga, gb) = (a.greeting(), b.greeting());
    assert!(ga.ends_with(b"\r\n"));
    let (ta, tb) = (timestamp_of(&ga), timestamp_of(&gb));
    assert_ne!(ta, tb);
    assert!(ta.ends_with("@pop.example>"));
    assert_eq!(ta, a.apop_timestamp());
}

#[test]
fn user_pass_login() {
    let f = fixture();
    let mut s = f.session();
    assert_eq!(s.user(), None);
    assert_eq!(send(&mut s, "user alice"), "+OK send PASS\r\n");
    assert_eq!(
        send(&mut s, "pass wonderland"),
        "+OK maildrop has 3 messages (83 octets)\r\n"
    );
    assert_eq!(s.state(), SessionState::Transaction);
    assert_eq!(s.user(), Some("alice"));
    assert_eq!(send(&mut s, "STAT"), "+OK 3 83\r\n");
}

#[test]
fn apop_login_with_computed_digest() {
    let f = fixture();
    let mut s = f.session();
    let greeting = s.greeting();
    let digest = hex_md5(format!("{}wonderland", timestamp_of(&greeting)).as_bytes());
    // Another session's digest must not work here.
    let other = f.session();
    let stale = hex_md5(format!("{}wonderland", other.apop_timestamp()).as_bytes());
    assert_eq!(
        send(&mut s, &format!("APOP alice {stale}")),
        "-ERR [AUTH] authentication failed\r\n"
    );
    let reply = send(
        &mut s,
        &format!("APOP alice {}", digest.to_ascii_uppercase()),
    );
    assert!(reply.starts_with("+OK maildrop has 3 messages"), "{reply}");
    assert_eq!(s.user(), Some("alice"));
}

#[test]
fn failed_logins_do_not_reveal_whether_the_user_exists() {
    let f = fixture();
    let mut s = f.session();
    assert_eq!(
        send(&mut s, "USER nobody"),
        send(&mut f.session(), "USER alice")
    );
    let unknown = send(&mut s, "PASS wonderland");
    send(&mut s, "USER alice");
    let wrong = send(&mut s, "PASS wrong");
    assert_eq!(unknown, wrong);
    assert_eq!(wrong, "-ERR [AUTH] authentication failed\r\n");
    let apop_unknown = send(
        &mut f.session(),
        "APOP nobody 00000000000000000000000000000000",
    );
    let apop_wrong = send(
        &mut f.session(),
        "APOP alice 00000000000000000000000000000000",
    );
    assert_eq!(apop_unknown, apop_wrong);
}

#[test]
fn too_many_auth_failures_close_the_session() {
    let f = fixture();
    let mut s = f.session();
    send(&mut s, "USER alice");
    send(&mut s, "PASS one");
    send(&mut s, "APOP alice 0123456789abcdef0123456789abcdef");
    send(&mut s, "USER alice");
    let last = send_closing(&mut s, "PASS three");
    assert!(last.starts_with("-ERR [AUTH] "), "{last}");
    assert_eq!(s.state(), SessionState::Closed);
    // Even the right password is refused now.
    assert_eq!(
        send_closing(&mut s, "USER alice"),
        "-ERR session is closed\r\n"
    );

    let strict = fixture_with(|c| c.max_auth_failures = 0);
    let mut s = strict.session();
    send(&mut s, "USER alice");
    assert!(send_closing(&mut s, "PASS nope").starts_with("-ERR [AUTH] "));
}

#[test]
fn pass_must_directly_follow_user() {
    let f = fixture();
    let mut s = f.session();
    assert_eq!(
        send(&mut s, "PASS wonderland"),
        "-ERR PASS must directly follow USER\r\n"
    );
    send(&mut s, "USER alice");
    send(&mut s, "CAPA");
    assert_eq!(
        send(&mut s, "PASS wonderland"),
        "-ERR PASS must directly follow USER\r\n"
    );
    send(&mut s, "USER alice");
    assert_eq!(s.line_too_long(), Reply::err("line too long"));
    assert_eq!(
        send(&mut s, "PASS wonderland"),
        "-ERR PASS must directly follow USER\r\n"
    );
    // None of these counted as authentication failures.
    send(&mut s, "USER alice");
    assert!(send(&mut s, "PASS wonderland").starts_with("+OK"));
}

#[test]
fn second_login_is_refused_while_the_mailbox_is_in_use() {
    let f = fixture();
    let first = f.login("alice", "wonderland");
    let mut second = f.session();
    send(&mut second, "USER alice");
    assert_eq!(
        send(&mut second, "PASS wonderland"),
        "-ERR [IN-USE] mailbox is already in use by another session\r\n"
    );
    assert_eq!(second.state(), SessionState::Authorization);
    // Another user's mailbox is independent.
    let _bob = f.login("bob", "builder");
    drop(first);
    send(&mut second, "USER alice");
    assert!(send(&mut second, "PASS wonderland").starts_with("+OK"));
    send_closing(&mut second, "QUIT");
    let _third = f.login("alice", "wonderland");
}

#[test]
fn quit_in_authorization_closes() {
    let f = fixture();
    let mut s = f.session();
    assert_eq!(send_closing(&mut s, "quit"), "+OK bye\r\n");
    assert_eq!(s.state(), SessionState::Closed);
}

#[test]
fn constant_time_eq_compares_correctly() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"ab", b"abc"));
    assert!(constant_time_eq(b"", b""));
}
