//! One connection flooding data must not starve the others.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use berth::{Conn, ConnHandle, ConnId, EngineChoice, Handler, IoBuf};
use common::*;

both_engines!(flooding_client_does_not_starve_ping_pong_clients);

/// Echo that records, in order, which connection each read belonged to.
/// The first connection (the flooder) starts with reading paused so the
/// test can pile data up in the kernel for it.
#[derive(Default)]
struct Recorder {
    reads: Mutex<Vec<ConnId>>,
    flooder: Mutex<Option<ConnHandle>>,
    seen_first: AtomicBool,
}

impl Handler for Recorder {
    type State = ();

    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        if !self.seen_first.swap(true, SeqCst) {
            conn.pause_reading();
            *self.flooder.lock().unwrap() = Some(conn.handle());
        }
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        self.reads.lock().unwrap().push(conn.id());
        let _ = conn.write_buf(buf);
    }
}

fn flooding_client_does_not_starve_ping_pong_clients(engine: EngineChoice) {
    // One IO thread shared by everyone, and small read buffers, so the
    // flooder always has far more data waiting than one read takes.
    let t = start_with(
        builder(engine).io_threads(1).buffer_size(256),
        Recorder::default(),
    );
    let mut flood = t.connect();
    assert!(eventually(IO_TIMEOUT, || t
        .handler()
        .flooder
        .lock()
        .unwrap()
        .is_some()));
    let flooder = t.handler().flooder.lock().unwrap().take().unwrap();

    // Fill the kernel's buffers for the paused flooder.
    flood.set_nonblocking(true).unwrap();
    let chunk = vec![0xAB; 1 << 16];
    let mut queued = 0usize;
    loop {
        match flood.write(&chunk) {
            Ok(n) => queued += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("flood write: {e}"),
        }
    }
    flood.set_nonblocking(false).unwrap();
    assert!(queued >= 256 << 10, "only {queued} bytes queued");

    // Keep the flood coming, and drain its echo.
    let stop = Arc::new(AtomicBool::new(false));
    let mut drain_side = flood.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(1..) = drain_side.read(&mut buf) {}
    });
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(SeqCst) && flood.write_all(&chunk).is_ok() {}
            let _ = flood.shutdown(std::net::Shutdown::Write);
        })
    };

    let mut pingers: Vec<_> = (0..100).map(|_| t.connect()).collect();
    flooder.resume_reading().unwrap();
    let clients: Vec<_> = pingers
        .drain(..)
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                for round in 0..20u32 {
                    let msg = format!("{i:03}:{round:02}");
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut back = [0u8; 6];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(&back, msg.as_bytes());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("ping-pong client was served");
    }
    stop.store(true, SeqCst);

    // While ping-pong clients were active, the flooder never had more than
    // a bounded run of consecutive reads (a loop reading it until EAGAIN
    // would show one run of thousands).
    let reads = t.handler().reads.lock().unwrap().clone();
    let flood_id = flooder.id();
    let first = reads.iter().position(|&c| c != flood_id).unwrap();
    let last = reads.iter().rposition(|&c| c != flood_id).unwrap();
    let (mut run, mut longest, mut flood_reads) = (0usize, 0usize, 0usize);
    for &c in &reads[first..=last] {
        if c == flood_id {
            run += 1;
            flood_reads += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    assert!(
        flood_reads > 0,
        "the flooder was not read while others were"
    );
    assert!(
        longest <= 512,
        "flooder had {longest} consecutive reads while others waited"
    );
    drop(flooder);
    writer.join().unwrap();
    drain.join().unwrap();
    t.finish();
}
