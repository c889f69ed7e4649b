//! Whether each side is still connected (the seed's query), as a callback
//! sees it (`Conn::is_read_open` / `is_write_open`) and as a handle on
//! another thread sees it (`ConnHandle::is_open` / `is_read_open` /
//! `is_write_open`, published by the IO thread when a side closes).

use super::*;

use crate::conn::ConnEnv;

/// What a callback would see now: `(is_read_open, is_write_open)`.
fn conn_sides(h: &mut Harness, k: Key) -> (bool, bool) {
    let pool = h.core.pool.clone();
    let mailbox = Arc::clone(&h.core.mailbox);
    let crate::driver::core::Parts { e, budget, .. } =
        h.core.entry_parts(k).expect("live connection");
    let conn = Conn {
        st: &mut e.st,
        env: ConnEnv {
            pool: &pool,
            mailbox: &mailbox,
            budget,
            now: 0,
        },
    };
    (conn.is_read_open(), conn.is_write_open())
}

/// What a handle sees now: `(is_open, is_read_open, is_write_open)`.
fn handle_sides(handle: &ConnHandle) -> (bool, bool, bool) {
    (
        handle.is_open(),
        handle.is_read_open(),
        handle.is_write_open(),
    )
}

/// A connection whose handler keeps a handle, and writes `w` (left in
/// flight) when it reads `write`.
fn held(h: &mut Harness) -> (Key, ConnHandle) {
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d == "write" => conn.write(b"w").unwrap(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    assert_eq!(conn_sides(h, k), (true, true), "fresh");
    assert_eq!(handle_sides(&handle), (true, true, true), "fresh");
    (k, handle)
}

#[test]
fn fresh_connection_has_both_sides_open() {
    let mut h = Harness::new();
    held(&mut h);
}

#[test]
fn after_the_peers_eof_only_the_write_side_is_open() {
    let mut h = Harness::new();
    let (k, handle) = held(&mut h);
    h.eof(k);
    assert_eq!(conn_sides(&mut h, k), (false, true));
    assert_eq!(handle_sides(&handle), (true, false, true));
    // The server may keep writing.
    handle.write(b"still").unwrap();
    h.drain();
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["still"])]);
}

#[test]
fn after_shutdown_read_only_the_write_side_is_open() {
    let mut h = Harness::new();
    let (k, handle) = held(&mut h);
    h.data(k, "write");
    handle.shutdown(Shutdown::Read).unwrap();
    // Not applied yet: the handle does not reflect its own queued operations.
    assert_eq!(handle_sides(&handle), (true, true, true));
    h.drain();
    // Requested (the write is in flight), then applied: closed either way.
    assert_eq!(conn_sides(&mut h, k), (false, true));
    assert_eq!(handle_sides(&handle), (true, false, true));
    assert_eq!(h.reqs(), [start_write(k, &["w"]), Req::StopRead(k)]);
    h.wrote(k, 1);
    assert_eq!(h.reqs(), [Req::Shutdown(k, std::net::Shutdown::Read)]);
    assert_eq!(conn_sides(&mut h, k), (false, true));
    assert_eq!(handle_sides(&handle), (true, false, true));
}

#[test]
fn after_shutdown_write_only_the_read_side_is_open() {
    let mut h = Harness::new();
    let (k, handle) = held(&mut h);
    h.data(k, "write");
    handle.shutdown(Shutdown::Write).unwrap();
    h.drain();
    assert_eq!(conn_sides(&mut h, k), (true, false));
    assert_eq!(handle_sides(&handle), (true, true, false));
    assert_eq!(handle.write(b"x"), Ok(()), "queued; refused when applied");
    h.drain();
    assert_eq!(h.queue(k), ["w"]);
    assert_eq!(h.reqs(), [start_write(k, &["w"])]);
    h.wrote(k, 1);
    assert_eq!(h.reqs(), [Req::Shutdown(k, std::net::Shutdown::Write)]);
    assert_eq!(conn_sides(&mut h, k), (true, false));
    assert_eq!(handle_sides(&handle), (true, true, false));
}

#[test]
fn after_shutdown_both_neither_side_is_open_but_the_connection_is() {
    let mut h = Harness::new();
    let (k, handle) = held(&mut h);
    handle.shutdown(Shutdown::Both).unwrap();
    h.drain();
    assert_eq!(conn_sides(&mut h, k), (false, false));
    assert_eq!(handle_sides(&handle), (true, false, false));
}

#[test]
fn once_a_close_is_requested_neither_side_is_open() {
    let mut h = Harness::new();
    let (k, handle) = held(&mut h);
    h.data(k, "write");
    handle.close().unwrap();
    h.drain();
    // Pending behind the write in flight.
    assert_eq!(conn_sides(&mut h, k), (false, false));
    assert_eq!(handle_sides(&handle), (true, false, false));
    assert_eq!(h.calls(), [read("write")]);
    assert_eq!(h.reqs(), [start_write(k, &["w"]), Req::StopRead(k)]);
    h.wrote(k, 1);
    assert_eq!(h.calls(), [wrote("w"), Cb::Closed]);
    assert_eq!(handle_sides(&handle), (false, false, false), "released");
}

#[test]
fn a_callback_sees_its_own_close_and_abort_at_once() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut h = Harness::deferred();
    let log = Arc::clone(&seen);
    h.script(move |cb, conn, _| {
        let mut log = log.lock().unwrap();
        if *cb == read("close") {
            conn.write(b"w").unwrap();
            conn.close();
            log.push((conn.is_read_open(), conn.is_write_open()));
            log.push((
                conn.write(b"x").is_ok(),
                conn.shutdown(Shutdown::Read).is_ok(),
            ));
        } else if *cb == read("abort") {
            conn.abort();
            log.push((conn.is_read_open(), conn.is_write_open()));
        }
    });
    let a = h.open();
    h.data(a, "close");
    assert_eq!(h.calls(), [read("close")]);
    assert_eq!(h.reqs(), [Req::StopRead(a), start_write(a, &["w"])]);
    let b = h.open();
    h.data(b, "abort");
    assert_eq!(
        *seen.lock().unwrap(),
        [(false, false), (false, false), (false, false)]
    );
}

#[test]
fn after_an_abort_the_connection_is_closed_before_it_is_released() {
    let mut h = Harness::deferred();
    let (k, handle) = held(&mut h);
    h.data(k, "write");
    handle.abort().unwrap();
    h.drain();
    assert_eq!(
        h.reqs(),
        [start_write(k, &["w"]), Req::Close(k, CloseMode::Abortive)]
    );
    // Not released yet (the write is in flight), already closed to both.
    assert_eq!(conn_sides(&mut h, k), (false, false));
    assert_eq!(handle_sides(&handle), (false, false, false));
    h.released(k);
    assert_eq!(handle_sides(&handle), (false, false, false));
    assert_eq!(handle.write(b"x"), Err(crate::ConnError::Closed));
}

#[test]
fn after_a_reset_from_the_engine_the_handle_sees_the_connection_closed() {
    let mut h = Harness::new();
    let (k, handle) = held(&mut h);
    h.read_error(k, libc::ECONNRESET);
    assert_eq!(h.calls(), [Cb::Reset(libc::ECONNRESET), Cb::Closed]);
    assert_eq!(handle_sides(&handle), (false, false, false));
}

#[test]
fn a_handle_taken_late_sees_the_sides_as_they_are() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => conn.shutdown(Shutdown::Write).unwrap(),
        Cb::ClientClosed => handles.push(conn.handle()),
        _ => {}
    });
    let k = h.adopt();
    h.eof(k);
    let handle = h.handles().pop().expect("handle");
    assert_eq!(handle_sides(&handle), (true, false, false));
}
