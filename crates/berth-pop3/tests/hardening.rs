//! The POP3 server's hardening over loopback, once per engine: the
//! pre-login timeout, the bad-command cap, and the failed-login delay
//! (held back without a sleeping thread, pipelining no way around it).
//! Times are checked from below only; every wait is bounded.

mod common;

use std::net::Shutdown;
use std::time::{Duration, Instant};

use berth::EngineChoice;
use common::*;

both_engines!(
    a_client_that_does_not_log_in_in_time_is_closed,
    the_bad_command_past_the_cap_closes_the_session,
    a_failed_login_is_answered_after_a_delay_that_doubles,
    pipelined_commands_wait_behind_a_delayed_answer,
    the_io_thread_and_the_worker_serve_others_during_the_delay,
    a_half_closed_client_still_gets_its_delayed_answer,
    the_login_deadline_cuts_a_delay_short,
);

const AUTH_FAILED: &str = "-ERR [AUTH] authentication failed\r\n";

fn a_client_that_does_not_log_in_in_time_is_closed(engine: EngineChoice) {
    let fx = Fixture::new();
    let timeout = Duration::from_millis(300);
    let server = start(
        fx.builder()
            .login_timeout(timeout)
            .auth_failure_delay(Duration::ZERO),
        engine,
    );
    let mut logged_in = Client::connect(&server);
    logged_in.login();
    let started = Instant::now();
    let mut idler = Client::connect(&server);
    // Busy, but not logging in.
    assert!(idler.command("CAPA").starts_with("+OK"));
    idler.body();
    assert_eq!(idler.command("USER alice"), "+OK send PASS\r\n");
    assert_eq!(
        idler.rest(),
        "-ERR disconnected: no login within 0.3 seconds\r\n"
    );
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    // The session that logged in earlier is past its deadline too, and
    // carries on.
    assert!(logged_in.command("STAT").starts_with("+OK 2 "));
    assert!(logged_in.command("QUIT").starts_with("+OK"));
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn the_bad_command_past_the_cap_closes_the_session(engine: EngineChoice) {
    let fx = Fixture::new();
    let server = start(fx.builder(), engine);
    let mut client = Client::connect(&server);
    client.login();
    assert!(client.command("DELE 1").starts_with("+OK"));
    // 21 bad commands and a good one, pipelined.
    let mut batch = "HELO\r\n".repeat(berth_pop3::DEFAULT_MAX_BAD_COMMANDS as usize);
    batch.push_str("RETR 99\r\nNOOP\r\n");
    client.send(&batch);
    for _ in 0..berth_pop3::DEFAULT_MAX_BAD_COMMANDS {
        assert_eq!(client.line(), "-ERR unknown command\r\n");
    }
    assert_eq!(client.rest(), "-ERR too many bad commands\r\n");
    wait_unlocked(&server);
    assert_eq!(fx.messages(), 2, "no UPDATE: nothing deleted");
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn a_failed_login_is_answered_after_a_delay_that_doubles(engine: EngineChoice) {
    let fx = Fixture::new();
    let delay = Duration::from_millis(200);
    let server = start(
        fx.builder().auth_failure_delay(delay).max_auth_failures(3),
        engine,
    );
    let mut client = Client::connect(&server);
    // Each failure from this address waits twice as long as the last.
    for wait in [delay, delay * 2] {
        assert_eq!(client.command("USER alice"), "+OK send PASS\r\n");
        let started = Instant::now();
        assert_eq!(client.command("PASS wrong"), AUTH_FAILED);
        assert!(
            started.elapsed() >= wait,
            "{:?} < {wait:?}",
            started.elapsed()
        );
    }
    // Another connection from the address: the delay goes on doubling,
    // and the third failure of the session closes it after its delay.
    let mut other = Client::connect(&server);
    assert_eq!(other.command("USER alice"), "+OK send PASS\r\n");
    let started = Instant::now();
    assert_eq!(other.command("PASS wrong"), AUTH_FAILED);
    assert!(started.elapsed() >= delay * 4);
    assert_eq!(client.command("USER alice"), "+OK send PASS\r\n");
    let started = Instant::now();
    assert_eq!(
        client.rest_after("PASS wrong"),
        "-ERR [AUTH] authentication failed, too many attempts\r\n"
    );
    assert!(started.elapsed() >= delay * 8);
    // A success from the address is answered no faster than its last
    // failure (a slow answer must not tell a failure), and clears it: the
    // next failure waits the first delay.
    let started = Instant::now();
    other.login();
    assert!(
        started.elapsed() >= delay * 8,
        "a success answered after {:?}",
        started.elapsed()
    );
    assert!(other.command("QUIT").starts_with("+OK"));
    let mut third = Client::connect(&server);
    assert_eq!(third.command("USER alice"), "+OK send PASS\r\n");
    let started = Instant::now();
    assert_eq!(third.command("PASS wrong"), AUTH_FAILED);
    assert!(started.elapsed() >= delay);
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn pipelined_commands_wait_behind_a_delayed_answer(engine: EngineChoice) {
    let fx = Fixture::new();
    let delay = Duration::from_millis(300);
    let server = start(fx.builder().auth_failure_delay(delay), engine);
    let mut client = Client::connect(&server);
    let started = Instant::now();
    client.send("USER x\r\nPASS wrong\r\nUSER alice\r\nPASS wonderland\r\nSTAT\r\n");
    // The answer before the failed attempt is not held back with it.
    assert_eq!(client.line(), "+OK send PASS\r\n");
    assert_eq!(client.line(), AUTH_FAILED);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    // The rest only after it, in order.
    assert_eq!(client.line(), "+OK send PASS\r\n");
    assert!(client.line().starts_with("+OK maildrop has 2 messages"));
    assert!(client.line().starts_with("+OK 2 "));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert!(server.shutdown(Duration::from_secs(1)));
}

/// One IO thread and one worker: if either waited out the delay, the other
/// client would not be answered before the delayed answer goes out. And
/// the attempt pipelined behind the failed one has not run meanwhile.
fn the_io_thread_and_the_worker_serve_others_during_the_delay(engine: EngineChoice) {
    let fx = Fixture::new();
    // Long enough that the other client's round trips fit well inside it.
    let delay = Duration::from_secs(2);
    let server = start_one_io_thread(fx.builder().workers(1).auth_failure_delay(delay), engine);
    let mut waiting = Client::connect(&server);
    let started = Instant::now();
    waiting.send("USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS wonderland\r\nSTAT\r\n");
    assert_eq!(waiting.line(), "+OK send PASS\r\n");
    // Meanwhile another client connects, gets its greeting and is
    // answered, by the same IO thread and the same worker.
    let mut other = Client::connect(&server);
    assert!(other.command("CAPA").starts_with("+OK"));
    other.body();
    assert_eq!(other.command("USER bob"), "+OK send PASS\r\n");
    assert!(!waiting.has_unread(), "the delayed answer came first");
    let locks = server.server().handler().inner().shared().locks();
    assert_eq!(locks.locked_count(), 0, "the next attempt ran early");
    assert_eq!(waiting.line(), AUTH_FAILED);
    assert!(started.elapsed() >= delay);
    assert_eq!(waiting.line(), "+OK send PASS\r\n");
    assert!(waiting.line().starts_with("+OK maildrop has 2 messages"));
    assert!(waiting.line().starts_with("+OK 2 "));
    assert!(server.shutdown(Duration::from_secs(1)));
}

fn a_half_closed_client_still_gets_its_delayed_answer(engine: EngineChoice) {
    let fx = Fixture::new();
    let delay = Duration::from_millis(200);
    let server = start(fx.builder().auth_failure_delay(delay), engine);
    let mut client = Client::connect(&server);
    let started = Instant::now();
    client.send("USER alice\r\nPASS wrong\r\nQUIT\r\n");
    client.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        client.rest(),
        format!("+OK send PASS\r\n{AUTH_FAILED}+OK bye\r\n")
    );
    assert!(started.elapsed() >= delay);
    assert!(server.shutdown(Duration::from_secs(1)));
}

/// A delay longer than the time left to log in: the login timeout closes
/// the session first, and the attempt's answer is never sent.
fn the_login_deadline_cuts_a_delay_short(engine: EngineChoice) {
    let fx = Fixture::new();
    let timeout = Duration::from_millis(300);
    let server = start(
        fx.builder()
            .login_timeout(timeout)
            .auth_failure_delay(Duration::from_secs(5)),
        engine,
    );
    let started = Instant::now();
    let mut client = Client::connect(&server);
    assert_eq!(client.command("USER alice"), "+OK send PASS\r\n");
    assert_eq!(
        client.rest_after("PASS wrong"),
        "-ERR disconnected: no login within 0.3 seconds\r\n"
    );
    assert!(started.elapsed() >= timeout);
    assert!(server.shutdown(Duration::from_secs(1)));
}
