//! Other programs writing to the Maildir while a session is open.

use super::*;

#[test]
fn a_message_delivered_during_a_session_appears_at_the_next_login() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    deliver(&f.root, "alice", "new/1700000009.late.host", b"late\n");
    assert_eq!(send(&mut s, "STAT"), "+OK 3 83\r\n");
    assert_eq!(
        send(&mut s, "RETR 4"),
        "-ERR no such message, only 3 messages in maildrop\r\n"
    );
    assert_eq!(
        send_closing(&mut s, "QUIT"),
        "+OK bye, 0 messages deleted\r\n"
    );
    let mut s = f.login("alice", "wonderland");
    assert_eq!(send(&mut s, "STAT"), "+OK 4 89\r\n");
    assert_eq!(send(&mut s, "UIDL 4"), "+OK 4 1700000009.late.host\r\n");
}

#[test]
fn a_message_removed_behind_the_sessions_back_gets_err() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    fs::remove_file(f.root.join("alice/cur/1700000002.two.host:2,S")).unwrap();
    assert_eq!(
        send(&mut s, "RETR 2"),
        "-ERR message 2 no longer exists\r\n"
    );
    assert_eq!(
        send(&mut s, "TOP 2 1"),
        "-ERR message 2 no longer exists\r\n"
    );
    // The others are unaffected.
    assert!(send(&mut s, "RETR 3").starts_with("+OK 30 octets\r\n"));
}

#[test]
fn flags_set_by_another_program_are_kept() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    // Another client reads message 1 and flags it seen and flagged.
    fs::rename(
        f.root.join("alice/new/1700000001.one.host"),
        f.root.join("alice/cur/1700000001.one.host:2,FS"),
    )
    .unwrap();
    assert!(send(&mut s, "RETR 1").starts_with("+OK 23 octets\r\n"));
    assert_eq!(send(&mut s, "DELE 3"), "+OK message 3 deleted\r\n");
    assert_eq!(
        send_closing(&mut s, "QUIT"),
        "+OK bye, 1 messages deleted\r\n"
    );
    assert_eq!(
        f.files("alice"),
        [
            "cur/1700000001.one.host:2,FS",
            "cur/1700000002.two.host:2,S"
        ]
    );
    // The same message, the same UIDL.
    let mut s = f.login("alice", "wonderland");
    assert_eq!(send(&mut s, "UIDL 1"), "+OK 1 1700000001.one.host\r\n");
}

#[test]
fn a_message_moved_and_flagged_can_still_be_deleted() {
    let f = fixture();
    let mut s = f.login("alice", "wonderland");
    fs::rename(
        f.root.join("alice/new/1700000003.three.host"),
        f.root.join("alice/cur/1700000003.three.host:2,S"),
    )
    .unwrap();
    assert_eq!(send(&mut s, "DELE 3"), "+OK message 3 deleted\r\n");
    assert_eq!(
        send_closing(&mut s, "QUIT"),
        "+OK bye, 1 messages deleted\r\n"
    );
    assert_eq!(
        f.files("alice"),
        ["cur/1700000002.two.host:2,S", "new/1700000001.one.host"]
    );
}
