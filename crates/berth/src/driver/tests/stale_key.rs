//! A late completion never reaches the slot's next connection: once a
//! connection is released its slot is reused with a new generation, and
//! every event or command carrying the old key is dropped.

use super::*;

use crate::driver::mailbox::ConnOp;

/// A connection that wrote `old` (in flight) and was aborted, released by
/// the engine; then a new connection in the same slot, with `new` in flight.
fn reused_slot(h: &mut Harness) -> (Key, Key) {
    h.script(|cb, conn, _| match cb {
        Cb::Read(d) if d == "go" => conn.write(b"old").unwrap(),
        Cb::Read(d) if d == "bad" => conn.abort(),
        Cb::Read(d) if d == "new" => conn.write(b"new").unwrap(),
        _ => {}
    });
    let old = h.open();
    h.data(old, "go");
    h.data(old, "bad");
    h.released(old);
    assert_eq!(h.calls(), [read("go"), read("bad"), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [
            start_write(old, &["old"]),
            Req::Close(old, CloseMode::Abortive),
            Req::Release(old)
        ]
    );
    let new = h.open();
    assert_eq!(new.idx, old.idx, "the slot is reused");
    assert_ne!(new.generation, old.generation);
    h.data(new, "new");
    assert_eq!(h.calls(), [read("new")]);
    assert_eq!(h.reqs(), [start_write(new, &["new"])]);
    (old, new)
}

#[test]
fn late_completions_for_the_old_key_do_not_reach_the_new_connection() {
    let mut h = Harness::deferred();
    let (old, new) = reused_slot(&mut h);
    h.data(old, "stale data");
    h.core.on_write(&mut h.be, old, Ok(3));
    h.core.on_write(
        &mut h.be,
        old,
        Err(io::Error::from_raw_os_error(libc::EPIPE)),
    );
    h.core.retry_write(&mut h.be, old);
    h.eof(old);
    h.read_error(old, libc::ECONNRESET);
    h.core.released(&mut h.be, old);
    h.assert_quiet();
    // The new connection is untouched: still reading, its write in flight.
    assert_eq!(h.queue(new), ["new"]);
    assert!(h.be.writing(new));
    assert_eq!(h.core.live(), 1);
    h.wrote(new, 3);
    h.data(new, "more");
    assert_eq!(h.calls(), [wrote("new"), read("more")]);
    assert_eq!(h.reqs(), []);
}

#[test]
fn commands_for_the_old_key_do_not_reach_the_new_connection() {
    let mut h = Harness::deferred();
    let (old, new) = reused_slot(&mut h);
    let mut buf = h.core.pool.alloc();
    buf.extend_from_slice(b"stale");
    for op in [
        ConnOp::Write(buf.freeze()),
        ConnOp::PauseRead,
        ConnOp::Shutdown(Shutdown::Both),
        ConnOp::Close,
        ConnOp::Abort,
        ConnOp::Released,
    ] {
        h.core.on_op(&mut h.be, old, op);
    }
    h.assert_quiet();
    assert_eq!(h.queue(new), ["new"]);
    let e = h.core.entry(new).expect("live");
    assert!(e.st.sides().read() && e.st.sides().write());
    h.wrote(new, 3);
    assert_eq!(h.calls(), [wrote("new")]);
}

#[test]
fn a_handle_of_the_old_connection_does_not_reach_the_new_one() {
    let mut h = Harness::new();
    let (old, old_handle) = h.open_held();
    // Queued before the old connection closed, applied after its slot was reused.
    old_handle.write(b"stale").unwrap();
    h.read_error(old, libc::ECONNRESET);
    assert_eq!(h.calls(), [Cb::Reset(libc::ECONNRESET), Cb::Closed]);
    assert_eq!(
        h.reqs(),
        [Req::Close(old, CloseMode::Abortive), Req::Release(old)]
    );
    h.script(|_, _, _| {});
    let new = h.open();
    assert_eq!(new.idx, old.idx);
    let new_id = h.id(new);
    h.drain();
    h.assert_quiet();
    assert!(!old_handle.is_open());
    assert_eq!(old_handle.write(b"x"), Err(crate::ConnError::Closed));
    drop(old_handle);
    h.drain();
    h.assert_quiet();
    h.data(new, "hi");
    assert_eq!(h.calls_by_conn(), [(new_id, read("hi"))]);
}
