//! `client_closed` (the seed's half-close): reported exactly once, and
//! only after every byte the peer sent before its end of stream was
//! delivered, including data stashed while reading was paused.

use super::*;

#[test]
fn client_closed_follows_the_data_and_the_connection_then_closes() {
    let mut h = Harness::new();
    let k = h.open();
    h.data(k, "a");
    h.data(k, "b");
    assert_eq!(h.calls(), [read("a"), read("b")]);
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closing, Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [
            Req::StopRead(k),
            Req::Close(k, CloseMode::Graceful),
            Req::Release(k)
        ]
    );
    h.assert_pool_baseline();
}

#[test]
fn client_closed_is_reported_once_however_often_the_eof_is() {
    let mut h = Harness::new();
    // A handle keeps the connection open after the half-close.
    let (k, _handle) = h.open_held();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    h.eof(k);
    h.data(k, "late");
    h.eof(k);
    h.assert_quiet();
}

#[test]
fn client_closed_waits_for_the_data_stashed_while_paused() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d == "a" => conn.pause_reading(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "a");
    assert_eq!(h.calls(), [read("a")]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    // Already in flight when reading stopped: kept, in order.
    h.data(k, "b");
    h.data(k, "c");
    h.eof(k);
    h.assert_quiet();
    handle.resume_reading().expect("open");
    h.drain();
    assert_eq!(h.calls(), [read("b"), read("c"), Cb::ClientClosed]);
    // Reading does not start again after the end of stream.
    assert_eq!(h.reqs(), []);
    drop(handle);
    h.drain();
    assert_eq!(h.calls(), [Cb::Closing, Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
    h.assert_pool_baseline();
}

#[test]
fn client_closed_waits_for_resume_even_with_nothing_stashed() {
    let mut h = Harness::new();
    let (k, handle) = h.open_paused();
    h.eof(k);
    h.assert_quiet();
    handle.resume_reading().expect("open");
    h.drain();
    assert_eq!(h.calls(), [Cb::ClientClosed]);
    assert_eq!(h.reqs(), []);
}

#[test]
fn client_closed_is_not_reported_after_an_explicit_close() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("bye") {
            conn.write(b"ok").unwrap();
            conn.close();
        }
    });
    let k = h.open();
    h.data(k, "bye");
    assert_eq!(h.calls(), [read("bye")]);
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["ok"])]);
    h.eof(k);
    h.assert_quiet();
    h.wrote(k, 2);
    assert_eq!(h.calls(), [wrote("ok"), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
}
