//! `shutdown(Write)` is applied (the engine's `shutdown` called) only after
//! every queued write completed, partial writes included, and never while
//! a write is in flight. (The fake also fails any `shutdown` made while a
//! write is in flight.)

use super::*;

use std::net::Shutdown as NetShutdown;

/// A handler that, on reading `cmd`, writes `replies` and shuts down its
/// write side; the handle it keeps stops `closing` from coming due.
fn replies_then_shutdown(h: &Harness, cmd: &'static str, replies: &'static [&'static str]) {
    h.script(move |cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d == cmd => {
            for r in replies {
                conn.write(r.as_bytes()).unwrap();
            }
            conn.shutdown(Shutdown::Write).unwrap();
        }
        _ => {}
    });
}

#[test]
fn shutdown_write_waits_for_every_queued_write() {
    let mut h = Harness::new();
    replies_then_shutdown(&h, "quit", &["one", "two"]);
    let k = h.open();
    h.data(k, "quit");
    assert_eq!(h.calls(), [read("quit")]);
    assert_eq!(h.reqs(), [start_write(k, &["one", "two"])]);
    h.wrote(k, 3);
    assert_eq!(h.calls(), [wrote("one")]);
    assert_eq!(h.reqs(), [start_write(k, &["two"])]);
    h.wrote(k, 3);
    assert_eq!(h.calls(), [wrote("two")]);
    assert_eq!(h.reqs(), [Req::Shutdown(k, NetShutdown::Write)]);
    // Reading goes on: only the write side was shut down.
    h.data(k, "more");
    assert_eq!(h.calls(), [read("more")]);
    assert_eq!(h.reqs(), []);
}

#[test]
fn shutdown_write_waits_for_partial_writes_to_finish() {
    let mut h = Harness::new();
    replies_then_shutdown(&h, "quit", &["hello", "bye"]);
    let k = h.open();
    h.data(k, "quit");
    assert_eq!(h.calls(), [read("quit")]);
    assert_eq!(h.reqs(), [start_write(k, &["hello", "bye"])]);
    h.wrote(k, 2);
    assert_eq!(h.calls(), []);
    assert_eq!(h.reqs(), [start_write(k, &["llo", "bye"])]);
    h.wrote(k, 4);
    assert_eq!(h.calls(), [wrote("hello")]);
    assert_eq!(h.reqs(), [start_write(k, &["ye"])]);
    h.wrote(k, 1);
    assert_eq!(h.calls(), []);
    assert_eq!(h.reqs(), [start_write(k, &["e"])]);
    h.wrote(k, 1);
    assert_eq!(h.calls(), [wrote("bye")]);
    assert_eq!(h.reqs(), [Req::Shutdown(k, NetShutdown::Write)]);
}

#[test]
fn shutdown_write_waits_for_writes_the_engine_completes_at_once() {
    let mut h = Harness::new();
    replies_then_shutdown(&h, "quit", &["abcd"]);
    let k = h.open();
    // An engine that writes at once (epoll), one byte short the first time.
    h.be.write_at_once.extend([Ok(3), Ok(1)]);
    h.data(k, "quit");
    assert_eq!(h.calls(), [read("quit"), wrote("abcd")]);
    assert_eq!(
        h.reqs(),
        [
            start_write(k, &["abcd"]),
            start_write(k, &["d"]),
            Req::Shutdown(k, NetShutdown::Write)
        ]
    );
}

#[test]
fn shutdown_write_is_not_applied_while_a_write_is_in_flight() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d == "go" => conn.write(b"data").unwrap(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "go");
    assert_eq!(h.reqs(), [start_write(k, &["data"])]);
    assert_eq!(h.calls(), [read("go")]);
    // The shutdown arrives from another thread while the write is in flight.
    handle.shutdown(Shutdown::Write).unwrap();
    h.drain();
    h.assert_quiet();
    // Other events meanwhile do not apply it either.
    h.data(k, "x");
    assert_eq!(h.calls(), [read("x")]);
    assert_eq!(h.reqs(), []);
    h.wrote(k, 4);
    assert_eq!(h.calls(), [wrote("data")]);
    assert_eq!(h.reqs(), [Req::Shutdown(k, NetShutdown::Write)]);
}

#[test]
fn shutdown_write_with_nothing_queued_is_applied_at_once() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(_) => conn.shutdown(Shutdown::Write).unwrap(),
        _ => {}
    });
    let k = h.open();
    h.data(k, "x");
    assert_eq!(h.calls(), [read("x")]);
    assert_eq!(h.reqs(), [Req::Shutdown(k, NetShutdown::Write)]);
}

#[test]
fn shutdown_write_when_closing_comes_due_is_left_to_the_graceful_close() {
    // The peer already half-closed and no handle is held: when the last
    // write completes, `closing` is asked first, and the graceful close
    // that follows sends the FIN; no separate shutdown call.
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == Cb::ClientClosed {
            conn.write(b"bye").unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
        }
    });
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed]);
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["bye"])]);
    h.wrote(k, 3);
    assert_eq!(h.calls(), [wrote("bye"), Cb::Closing, Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
}
