//! Writes keep their order: one write in flight at a time, from the front
//! of the queue; writes from several `ConnHandle`s are applied in the
//! order the mailbox carried them (each handle's in FIFO order), and the
//! callback's own writes take their place in the same queue.

use super::*;

#[test]
fn writes_from_handles_and_callbacks_keep_their_order() {
    let mut h = Harness::new();
    h.script(|cb, conn, handles| match cb {
        Cb::Established => {
            handles.push(conn.handle());
            handles.push(conn.handle());
        }
        Cb::Read(d) => conn.write(format!("c{d}").as_bytes()).unwrap(),
        _ => {}
    });
    let k = h.open();
    let [a, b] = <[ConnHandle; 2]>::try_from(h.handles()).expect("two handles");
    h.data(k, "1");
    assert_eq!(h.reqs(), [start_write(k, &["c1"])]);
    a.write(b"a1").unwrap();
    b.write(b"b1").unwrap();
    a.write(b"a2").unwrap();
    b.write(b"b2").unwrap();
    a.write(b"a3").unwrap();
    h.drain();
    // Queued behind the write in flight, which is not restarted.
    assert_eq!(h.reqs(), []);
    h.data(k, "2");
    assert_eq!(h.reqs(), []);
    assert_eq!(h.queue(k), ["c1", "a1", "b1", "a2", "b2", "a3", "c2"]);
    h.wrote(k, 2);
    assert_eq!(
        h.reqs(),
        [start_write(k, &["a1", "b1", "a2", "b2", "a3", "c2"])]
    );
    h.wrote(k, 12);
    assert_eq!(
        h.calls(),
        [
            read("1"),
            read("2"),
            wrote("c1"),
            wrote("a1"),
            wrote("b1"),
            wrote("a2"),
            wrote("b2"),
            wrote("a3"),
            wrote("c2"),
        ]
    );
    assert_eq!(h.reqs(), []);
    assert_eq!(h.queue(k), Vec::<String>::new());
}

#[test]
fn a_long_write_is_queued_as_pooled_buffers_in_order() {
    let mut h = Harness::new();
    let long: String = (0..150)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let reply = long.clone();
    h.script(move |cb, conn, _| {
        if *cb == read("go") {
            conn.write(reply.as_bytes()).unwrap();
        }
    });
    let k = h.open();
    h.data(k, "go");
    let chunks = [&long[..64], &long[64..128], &long[128..]];
    assert_eq!(h.reqs(), [start_write(k, &chunks)]);
    h.wrote(k, 150);
    assert_eq!(
        h.calls(),
        [
            read("go"),
            wrote(chunks[0]),
            wrote(chunks[1]),
            wrote(chunks[2])
        ]
    );
}

#[test]
fn a_write_completed_at_once_starts_the_next() {
    let mut h = Harness::new();
    let k = h.open();
    let handle = {
        h.script(|cb, conn, handles| {
            if *cb == read("h") {
                handles.push(conn.handle());
            }
        });
        h.data(k, "h");
        assert_eq!(h.calls(), [read("h")]);
        h.handles().pop().expect("handle")
    };
    h.be.write_at_once.extend([Ok(1), Ok(1)]);
    handle.write(b"x").unwrap();
    handle.write(b"y").unwrap();
    handle.write(b"z").unwrap();
    h.drain();
    // x at once; y (queued meanwhile) at once; z in flight.
    assert_eq!(
        h.reqs(),
        [
            start_write(k, &["x"]),
            start_write(k, &["y"]),
            start_write(k, &["z"])
        ]
    );
    assert_eq!(h.calls(), [wrote("x"), wrote("y")]);
    h.wrote(k, 1);
    assert_eq!(h.calls(), [wrote("z")]);
}

#[test]
fn adjacent_slices_of_one_block_go_out_as_one_buffer() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("go") {
            let mut block = conn.pool().alloc();
            block.extend_from_slice(b"abcdef");
            let block = block.freeze();
            for part in [0..2, 2..4, 4..6] {
                conn.write_buf(block.slice(part)).unwrap();
            }
        }
    });
    let k = h.open();
    h.data(k, "go");
    assert_eq!(h.reqs(), [start_write(k, &["abcdef"])]);
    h.wrote(k, 6);
    assert_eq!(h.calls(), [read("go"), wrote("abcdef")]);
}

// `write_completed` gets each buffer once all its bytes are written — the
// buffer that was queued, however many sends it took (ARCHITECTURE, step 4;
// `Lifecycle::write_completed`: "every byte of `buf` was handed to the
// kernel"; the seed's `WriteCompleted(pSocket, pBuffer)`).

#[test]
fn write_completed_gets_the_whole_buffer_after_partial_writes() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("go") {
            conn.write(b"hello").unwrap();
            conn.write(b"bye").unwrap();
        }
    });
    let k = h.open();
    h.data(k, "go");
    assert_eq!(h.reqs(), [start_write(k, &["hello", "bye"])]);
    h.wrote(k, 2);
    assert_eq!(h.reqs(), [start_write(k, &["llo", "bye"])]);
    h.wrote(k, 1);
    assert_eq!(h.reqs(), [start_write(k, &["lo", "bye"])]);
    h.wrote(k, 3);
    assert_eq!(h.reqs(), [start_write(k, &["ye"])]);
    h.wrote(k, 2);
    assert_eq!(h.calls(), [read("go"), wrote("hello"), wrote("bye")]);
}

#[test]
fn write_completed_gets_the_whole_buffer_when_an_append_grew_the_write_in_flight() {
    let mut h = Harness::new();
    let (k, handle) = h.open_held();
    let mut block = h.core.pool.alloc();
    block.extend_from_slice(b"abcdef");
    let block = block.freeze();
    handle.write_buf(block.slice(0..3)).unwrap();
    handle.write_buf(block.slice(3..6)).unwrap();
    drop(block);
    h.drain();
    // "abc" went out alone; "def" grew the buffer in flight (the fake
    // checks the bytes handed to it stayed in place).
    assert_eq!(h.reqs(), [start_write(k, &["abc"])]);
    assert_eq!(h.queue(k), ["abcdef"]);
    h.wrote(k, 3);
    assert_eq!(h.reqs(), [start_write(k, &["def"])]);
    h.wrote(k, 3);
    assert_eq!(h.calls(), [wrote("abcdef")]);
    drop(handle);
    h.drain();
}

#[test]
fn write_completed_after_writes_completed_at_once_in_parts() {
    let mut h = Harness::new();
    h.script(|cb, conn, _| {
        if *cb == read("go") {
            conn.write(b"abcd").unwrap();
        }
    });
    let k = h.open();
    h.be.write_at_once.extend([Ok(3), Ok(1)]);
    h.data(k, "go");
    assert_eq!(
        h.reqs(),
        [start_write(k, &["abcd"]), start_write(k, &["d"])]
    );
    assert_eq!(h.calls(), [read("go"), wrote("abcd")]);
}
