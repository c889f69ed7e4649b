//! A close waits for the engine's operations in flight: when `close`
//! returns `false`, the slot is not freed, no callback runs and the queued
//! buffers stay put until the engine reports `released` (the `Backend`
//! contract's promises 2–4: the head of the queue is not touched while its
//! write is in flight, buffers outlive their operations, and after `close`
//! the engine gets no call but `release`; the fake fails on any other).

use super::*;

use crate::driver::mailbox::ConnOp;

/// Every event an engine (or another thread) could still report for `k`.
fn late_events(h: &mut Harness, k: Key) {
    h.data(k, "late");
    h.eof(k);
    h.read_error(k, libc::ECONNRESET);
    h.core.on_write(&mut h.be, k, Ok(3));
    h.core
        .on_write(&mut h.be, k, Err(io::Error::from_raw_os_error(libc::EPIPE)));
    h.core.retry_write(&mut h.be, k);
    let mut buf = h.core.pool.alloc();
    buf.extend_from_slice(b"op");
    for op in [
        ConnOp::Write(buf.freeze()),
        ConnOp::ResumeRead,
        ConnOp::PauseRead,
        ConnOp::Shutdown(Shutdown::Both),
        ConnOp::Close,
        ConnOp::Abort,
        ConnOp::Released,
    ] {
        h.core.on_op(&mut h.be, k, op);
    }
    h.stop();
    h.abort_all();
}

#[test]
fn a_deferred_close_frees_the_slot_only_when_released() {
    let mut h = Harness::deferred();
    h.script(|cb, conn, _| {
        if *cb == read("quit") {
            conn.close();
        }
    });
    let k = h.open();
    h.data(k, "quit");
    assert_eq!(h.calls(), [read("quit")]);
    assert_eq!(
        h.reqs(),
        [Req::StopRead(k), Req::Close(k, CloseMode::Graceful)]
    );
    assert_eq!(h.core.live(), 1);
    assert!(h.core.entry(k).is_some(), "the slot is still held");
    late_events(&mut h, k);
    h.assert_quiet();
    assert_eq!(h.core.live(), 1);
    h.released(k);
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(h.reqs(), [Req::Release(k)]);
    assert_eq!(h.core.live(), 0);
    assert!(h.core.entry(k).is_none());
    h.assert_pool_baseline();
}

#[test]
fn an_abort_keeps_the_buffers_of_the_write_in_flight_until_released() {
    let mut h = Harness::deferred();
    h.script(|cb, conn, _| match cb {
        Cb::Read(d) if d == "go" => {
            conn.write(b"one").unwrap();
            conn.write(b"two").unwrap();
        }
        Cb::Read(d) if d == "more" => conn.write(b"three").unwrap(),
        Cb::Read(d) if d == "bad" => conn.abort(),
        _ => {}
    });
    let k = h.open();
    h.data(k, "go");
    assert_eq!(h.reqs(), [start_write(k, &["one", "two"])]);
    h.data(k, "more");
    h.data(k, "bad");
    assert_eq!(h.calls(), [read("go"), read("more"), read("bad")]);
    assert_eq!(h.reqs(), [Req::Close(k, CloseMode::Abortive)]);
    // The kernel may still read the buffers of the cancelled send.
    assert_eq!(h.queue(k), ["one", "two", "three"]);
    assert_eq!(h.core.pool.stats().in_use, 3);
    h.be.check_untouched(k, &h.core.entry(k).expect("held").st.wq);
    late_events(&mut h, k);
    h.assert_quiet();
    assert_eq!(h.queue(k), ["one", "two", "three"]);
    // `released` checks (in the fake) that the write's buffers are intact.
    h.released(k);
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(h.reqs(), [Req::Release(k)]);
    h.assert_pool_baseline();
}

#[test]
fn a_reset_during_a_deferred_close_changes_nothing() {
    let mut h = Harness::deferred();
    h.answer_closing(Closing::Default);
    let k = h.open();
    h.eof(k);
    assert_eq!(h.calls(), [Cb::ClientClosed, Cb::Closing]);
    assert_eq!(
        h.reqs(),
        [Req::StopRead(k), Req::Close(k, CloseMode::Graceful)]
    );
    // The engine's last receive ends with a reset: no callback, no abort.
    h.read_error(k, libc::ECONNRESET);
    h.assert_quiet();
    h.released(k);
    assert_eq!(h.calls(), [Cb::Closed]);
    assert_eq!(h.reqs(), [Req::Release(k)]);
}

#[test]
fn a_handle_of_a_closing_connection_queues_nothing() {
    let mut h = Harness::deferred();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(_) => conn.abort(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "x");
    assert_eq!(h.calls(), [read("x")]);
    assert_eq!(h.reqs(), [Req::Close(k, CloseMode::Abortive)]);
    assert_eq!(handle.write(b"no"), Err(crate::ConnError::Closed));
    assert_eq!(handle.close(), Err(crate::ConnError::Closed));
    drop(handle);
    assert!(h.core.mailbox.pop().is_none(), "nothing was queued");
    h.released(k);
    assert_eq!(h.calls(), [Cb::Closed]);
}
