//! Pause and resume of reading: `pause_reading` stops the engine's reads
//! (`stop_read`); data already in flight is stashed in order and delivered
//! on resume, before anything newer; resume starts reading again.

use super::*;

/// A handler that keeps a handle and pauses when it reads `pause`.
fn pauses_on(h: &Harness, word: &'static str) {
    h.script(move |cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d == word => conn.pause_reading(),
        _ => {}
    });
}

#[test]
fn pause_stops_reading_and_resume_starts_it_again() {
    let mut h = Harness::new();
    pauses_on(&h, "pause");
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "pause");
    assert_eq!(h.calls(), [read("pause")]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    assert!(!h.core.wants_read(k));
    handle.resume_reading().unwrap();
    h.drain();
    assert_eq!(h.calls(), []);
    assert_eq!(h.reqs(), [Req::StartRead(k)]);
    assert!(h.core.wants_read(k));
}

#[test]
fn data_in_flight_while_paused_is_delivered_in_order_on_resume() {
    let mut h = Harness::new();
    pauses_on(&h, "1");
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "1");
    assert_eq!(h.calls(), [read("1")]);
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    h.data(k, "2");
    h.data(k, "3");
    h.assert_quiet();
    handle.resume_reading().unwrap();
    h.drain();
    // The stash first, then reading starts again; newer data comes after.
    assert_eq!(h.calls(), [read("2"), read("3")]);
    assert_eq!(h.reqs(), [Req::StartRead(k)]);
    h.data(k, "4");
    assert_eq!(h.calls(), [read("4")]);
    h.assert_pool_baseline();
}

#[test]
fn pausing_again_while_the_stash_drains_keeps_the_rest_in_order() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::Read(d) if d.starts_with('p') => conn.pause_reading(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    h.data(k, "p1");
    assert_eq!(h.reqs(), [Req::StopRead(k)]);
    h.data(k, "p2");
    h.data(k, "3");
    handle.resume_reading().unwrap();
    h.drain();
    // p2 pauses again: 3 stays stashed, reading stays stopped.
    assert_eq!(h.calls(), [read("p1"), read("p2")]);
    assert_eq!(h.reqs(), []);
    h.data(k, "4");
    h.assert_quiet();
    handle.resume_reading().unwrap();
    h.drain();
    assert_eq!(h.calls(), [read("3"), read("4")]);
    assert_eq!(h.reqs(), [Req::StartRead(k)]);
}

#[test]
fn a_pause_from_a_handle_and_a_resume_from_a_callback() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => handles.push(conn.handle()),
        Cb::WriteCompleted(_) => conn.resume_reading(),
        _ => {}
    });
    let k = h.open();
    let handle = h.handles().pop().expect("handle");
    handle.pause_reading().unwrap();
    handle.write(b"w").unwrap();
    h.drain();
    assert_eq!(h.reqs(), [Req::StopRead(k), start_write(k, &["w"])]);
    h.data(k, "x");
    h.assert_quiet();
    h.wrote(k, 1);
    assert_eq!(h.calls(), [wrote("w"), read("x")]);
    assert_eq!(h.reqs(), [Req::StartRead(k)]);
}

#[test]
fn paused_in_connection_established_reading_never_starts_until_resumed() {
    let mut h = Harness::new();
    let (k, handle) = h.open_paused();
    handle.resume_reading().unwrap();
    h.drain();
    assert_eq!(h.reqs(), [Req::StartRead(k)]);
}
