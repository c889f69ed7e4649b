//! `berth_pop3::server` embedded in a test: the library API over loopback
//! sockets, once per engine. (`berth pop3`'s end-to-end tests, driven by
//! Python's poplib, live in `crates/berth-cli/tests/pop3.rs`.) Every wait
//! is bounded.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use berth::EngineChoice;
use berth_pop3::server::ServerError;
use common::*;

both_engines!(
    idle_session_is_logged_out_and_its_mailbox_unlocked,
    dropped_connection_unlocks_the_mailbox,
    shutdown_ends_sessions_without_deleting,
    malformed_lines_are_answered_and_the_session_goes_on,
);

fn idle_session_is_logged_out_and_its_mailbox_unlocked(engine: EngineChoice) {
    let fx = Fixture::new();
    let idle = Duration::from_millis(300);
    let server = start(fx.builder().idle_timeout(idle), engine);
    let mut client = Client::connect(&server);
    client.login();
    assert!(client.command("DELE 1").starts_with("+OK"));
    let started = Instant::now();
    assert_eq!(client.rest(), "-ERR autologout; idle for too long\r\n");
    // The core's timer wheel counts idleness in ticks of 10 ms, from the
    // tick in which the last byte moved.
    assert!(started.elapsed() >= idle - TICK, "{:?}", started.elapsed());
    wait_unlocked(&server);
    assert_eq!(fx.messages(), 2, "the autologout deletes nothing");
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn dropped_connection_unlocks_the_mailbox(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut first = Client::connect(&server);
    first.login();
    assert!(first.command("DELE 2").starts_with("+OK"));
    let mut second = Client::connect(&server);
    assert!(second.command("USER alice").starts_with("+OK"));
    assert!(
        second
            .command("PASS wonderland")
            .starts_with("-ERR [IN-USE]")
    );
    drop(first);
    wait_unlocked(&server);
    drop(second);
    let mut third = Client::connect(&server);
    third.login();
    assert!(third.command("QUIT").starts_with("+OK"));
    assert_eq!(fx.messages(), 2);
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn shutdown_ends_sessions_without_deleting(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut client = Client::connect(&server);
    client.login();
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(server.shutdown(Duration::from_millis(200)));
    assert_eq!(client.rest(), "");
    assert_eq!(fx.messages(), 2);
}

/// A NUL in a command and 1 MiB without CRLF each get `-ERR`; the rest of
/// the long line is skipped, and this session and another go on. (The
/// server's memory meanwhile is measured in berth's `tests/malformed.rs`,
/// on a line codec configured as this server's.)
fn malformed_lines_are_answered_and_the_session_goes_on(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut client = Client::connect(&server);
    client.login();
    assert_eq!(
        client.command("STAT\0"),
        "-ERR command contains a control character\r\n"
    );
    client.stream.write_all(&vec![b'x'; 1 << 20]).unwrap();
    assert_eq!(client.line(), "-ERR line too long\r\n");
    let mut other = Client::connect(&server);
    assert_eq!(other.command("USER alice"), "+OK send PASS\r\n");
    // The CRLF ends the long line, which gets no second answer.
    client.stream.write_all(b"\r\n").unwrap();
    assert!(client.command("STAT").starts_with("+OK 2 "));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_eq!(client.rest(), "");
    assert!(other.command("QUIT").starts_with("+OK"));
    assert_eq!(fx.messages(), 2);
    assert!(server.shutdown(Duration::from_secs(1)));
}

#[test]
fn zero_workers_is_a_typed_error() {
    let fx = Fixture::new();
    let err = fx.builder().workers(0).build().unwrap_err();
    assert!(matches!(err, ServerError::Workers(_)), "{err:?}");
}

#[test]
fn address_in_use_is_a_typed_error() {
    let fx = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = berth::Server::builder()
        .listen(taken.local_addr().unwrap())
        .io_threads(1);
    let err = fx.builder().start(server).unwrap_err();
    assert!(matches!(err, ServerError::Start(_)), "{err:?}");
}
