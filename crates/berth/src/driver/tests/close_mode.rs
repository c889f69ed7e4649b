//! Graceful vs abortive close, as the `CloseMode` given to the engine: a
//! close (explicit or after `closing`) waits for the queued writes and is
//! graceful; an abort discards them (no further `start_write`) and resets;
//! a reset or an error reported by the engine calls `connection_reset` /
//! `connection_error` and resets.

use super::*;

#[test]
fn close_after_writes_is_graceful() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("quit") {
            conn.write(b"a").unwrap();
            conn.write(b"b").unwrap();
            conn.close();
        }
    });
    let k = h.open();
    h.data(k, "quit");
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["a", "b"])]);
    h.wrote(k, 1);
    assert_eq!(h.reqs(), [start_write(k, &["b"])]);
    h.wrote(k, 1);
    assert_eq!(
        h.calls(),
        [read("quit"), wrote("a"), wrote("b"), Cb::Closed]
    );
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
    h.assert_pool_baseline();
}

#[test]
fn abort_discards_queued_writes() {
    let mut h = Harness::deferred();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d == "go" => {
            conn.write(b"one").unwrap();
            conn.write(b"two").unwrap();
        }
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "go");
    assert_eq!(h.reqs(), [start_write(k, &["one", "two"])]);
    assert_eq!(h.calls(), [read("go")]);
    handle.write(b"three").unwrap();
    handle.abort().unwrap();
    h.drain();
    assert_eq!(h.calls(), []);
    assert_eq!(h.reqs(), [Req::Close(k, CloseMode::Abortive)]);
    // The engine ends the write it had (cancelled) and releases: nothing of
    // the queue is written or reported.
    h.released(k);
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(h.reqs(), [Req::Release(k)]);
    drop(handle);
    h.assert_pool_baseline();
}

#[test]
fn abort_in_a_callback_closes_abortively_at_once() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("bad") {
            conn.write(b"never sent").unwrap();
            conn.abort();
        }
    });
    let k = h.open();
    h.data(k, "bad");
    assert_eq!(h.calls(), [read("bad"), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
    h.assert_pool_baseline();
}

#[test]
fn a_reset_from_the_engine_calls_connection_reset_and_aborts() {
    for errno in [libc::ECONNRESET, libc::EPIPE, libc::ECONNABORTED] {
        let mut h = Harness::new();
        let k = h.open();
        h.read_error(k, errno);
        assert_eq!(h.calls(), [Cb::Reset(errno), Cb::Closed]);
        assert_eq!(
            h.reqs(),
            [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
        );
    }
}

#[test]
fn a_read_error_calls_connection_error_and_aborts() {
    let mut h = Harness::new();
    let k = h.open();
    h.read_error(k, libc::ETIMEDOUT);
    assert_eq!(h.calls(), [Cb::Error(libc::ETIMEDOUT), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
}

#[test]
fn a_failed_write_calls_back_and_discards_the_rest_of_the_queue() {
    for (errno, cb) in [
        (libc::EPIPE, Cb::Reset(libc::EPIPE)),
        (libc::EIO, Cb::Error(libc::EIO)),
    ] {
        let mut h = Harness::new();
        h.script(|cb, conn, _| {
            if *cb == read("go") {
                conn.write(b"one").unwrap();
                conn.write(b"two").unwrap();
            }
        });
        let k = h.open();
        h.data(k, "go");
        assert_eq!(h.calls(), [read("go")]);
        assert_eq!(h.reqs(), [start_write(k, &["one", "two"])]);
        h.write_failed(k, errno);
        assert_eq!(h.calls(), [cb, Cb::Closed]);
        assert_eq!(
            h.reqs(),
            [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
        );
        h.assert_pool_baseline();
    }
}

#[test]
fn data_stashed_while_paused_is_dropped_on_a_reset() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == Cb::Established {
            conn.pause_reading();
        }
    });
    let k = h.adopt();
    assert_eq!(h.calls(), [Cb::Opened, Cb::Established]);
    assert_eq!(h.reqs(), [Req::Attach(k)]);
    h.data(k, "stashed");
    h.read_error(k, libc::ECONNRESET);
    assert_eq!(h.calls(), [Cb::Reset(libc::ECONNRESET), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
    h.assert_pool_baseline();
}

#[test]
fn the_shutdown_deadline_resets_what_is_left() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("go") {
            conn.write(b"slow").unwrap();
        }
    });
    let k = h.open();
    h.data(k, "go");
    assert_eq!(h.calls(), [read("go")]);
    assert_eq!(h.reqs(), [start_write(k, &["slow"])]);
    h.stop();
    assert_eq!(h.reqs(), [], "draining, it keeps reading (to discard)");
    h.abort_all();
    assert_eq!(h.calls(), [Cb::Closed], "closing is not asked");
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
}
