//! The closing hook and its one chance: `closing` is called once, when the
//! read side is done, every write has completed and no handle is held.
//! `Closing::Handled` hands the close to a handle: its `close()` closes
//! gracefully; dropping every handle without closing resets. An explicit
//! `close()` or `abort()` skips the hook.

use super::*;

#[test]
fn closing_waits_for_the_read_side_the_writes_and_the_handles() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::ClientClosed => conn.write(b"last").unwrap(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    // Read side done, but a write is in flight and a handle is held.
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed]);
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["last"])]);
    // Writes done, but the handle is held.
    h.wrote(k, 4);
    assert_eq!(h.calls(), [wrote("last")]);
    assert_eq!(h.reqs(), []);
    // Dropped: learned from its `Released`, in order, when the mailbox is drained.
    drop(handle);
    h.assert_quiet();
    h.drain();
    assert_eq!(h.calls(), [Cb::Closing, Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
}

#[test]
fn closing_handled_then_a_handle_closes_gracefully() {
    let mut h = Harness::new();
    h.answer_closing(Closing::Handled);
    h.script(|cb, conn, handles| {
        if *cb == Cb::Closing {
            handles.push(conn.handle());
        }
    });
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closing]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    let handle = h.handles().pop().expect("handle");
    // The handler lingers: still writing through its handle.
    handle.write(b"late").unwrap();
    h.drain();
    assert_eq!(h.reqs(), [start_write(k, &["late"])]);
    h.wrote(k, 4);
    assert_eq!(h.calls(), [wrote("late")]);
    handle.close().unwrap();
    h.drain();
    assert_eq!(h.calls(), [Cb::Closed], "closing had its one chance");
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
    assert!(!handle.is_open());
    drop(handle);
    h.drain();
    h.assert_quiet();
}

#[test]
fn closing_handled_then_every_handle_dropped_resets() {
    let mut h = Harness::new();
    h.answer_closing(Closing::Handled);
    h.script(|cb, conn, handles| {
        if *cb == Cb::Closing {
            handles.push(conn.handle());
            handles.push(conn.handle());
        }
    });
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closing]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    let mut handles = h.handles();
    drop(handles.pop());
    h.drain();
    h.assert_quiet();
    drop(handles);
    h.drain();
    assert_eq!(h.calls(), [Cb::Closed], "no further notification");
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
}

#[test]
fn closing_handled_without_keeping_a_handle_resets() {
    let mut h = Harness::new();
    h.answer_closing(Closing::Handled);
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closing, Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [
            Req::StopRead(k),
            Req::Close(k, CloseMode::Abortive),
            Req::Release(k)
        ]
    );
}

#[test]
fn closing_is_called_once_even_if_handles_come_and_go() {
    let mut h = Harness::new();
    h.answer_closing(Closing::Handled);
    h.script(|cb, conn, handles| {
        if *cb == Cb::Closing {
            handles.push(conn.handle());
        }
    });
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closing]);
    let handle = h.handles().pop().expect("handle");
    // A clone outlives the first: the connection stays handed off.
    let clone = handle.clone();
    drop(handle);
    h.drain();
    clone.write(b"x").unwrap();
    h.drain();
    h.wrote(k, 1);
    assert_eq!(h.calls(), [wrote("x")]);
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["x"])]);
    drop(clone);
    h.drain();
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
}

#[test]
fn closing_is_not_called_after_an_explicit_close() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("quit") {
            conn.close();
        }
    });
    let k = h.open();
    h.data(k, "quit");
    assert_eq!(h.calls(), [read("quit"), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [
            Req::StopRead(k),
            Req::Close(k, CloseMode::Graceful),
            Req::Release(k)
        ]
    );
}

#[test]
fn closing_is_not_called_after_a_handle_closes() {
    let mut h = Harness::new();
    let (k, handle) = h.open_held();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    handle.close().unwrap();
    drop(handle);
    h.drain();
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Graceful), Req::Release(k)]
    );
}

#[test]
fn closing_is_not_called_after_an_abort() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == Cb::ClientClosed {
            conn.abort();
        }
    });
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closed]);
    // The abort closes at once: no stop_read first (close ends every operation).
    assert_eq!(
        h.reqs(),
        [Req::Close(k, CloseMode::Abortive), Req::Release(k)]
    );
}

#[test]
fn closing_on_stop_comes_after_the_writes_even_with_a_handle_held() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(_) => conn.write(b"reply").unwrap(),
        _ => {}
    });
    let k = h.open();
    let _handle = h.handles();
    h.data(k, "req");
    assert_eq!(h.calls(), [read("req")]);
    assert_eq!(h.reqs(), [start_write(k, &["reply"])]);
    h.stop();
    assert_eq!(h.calls(), []);
    assert_eq!(h.reqs(), [], "draining, it keeps reading (to discard)");
    h.wrote(k, 5);
    assert_eq!(h.calls(), [wrote("reply"), Cb::Closing]);
    // A lingering close: the FIN now, the close when the peer closes.
    assert_eq!(h.reqs(), [Req::Shutdown(k, std::net::Shutdown::Write)]);
    h.data(k, "late");
    assert_eq!(h.calls(), [], "what arrives while draining is discarded");
    h.eof(k);
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [
            Req::StopRead(k),
            Req::Close(k, CloseMode::Graceful),
            Req::Release(k)
        ]
    );
}
