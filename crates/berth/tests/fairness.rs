//! One connection flooding data must not starve the others.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use berth::{Conn, ConnHandle, ConnId, EngineChoice, Handler, IoBuf, Lifecycle};
use common::*;

both_engines!(flooding_client_does_not_starve_ping_pong_clients);

/// Echo that records, in order, which connection each read belonged to.
/// The first `CLIENTS + 1` connections start with reading paused, so the
/// test can queue data for all of them in the kernel; the next connection
/// is a control line: "GO" on it resumes them all at once, from the IO
/// thread (one batch of resumes, the flooder's first).
#[derive(Default)]
struct Recorder {
    reads: Mutex<Vec<ConnId>>,
    handles: Mutex<Vec<ConnHandle>>,
}

impl Lifecycle for Recorder {
    type State = ();
}

impl Handler for Recorder {
    fn connection_established(&self, conn: &mut Conn<'_>, _: &mut (), _: SocketAddr) {
        let mut handles = self.handles.lock().unwrap();
        if handles.len() < CLIENTS + 1 {
            conn.pause_reading();
            handles.push(conn.handle());
        }
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        if &buf[..] == b"GO" {
            for h in self.handles.lock().unwrap().drain(..) {
                h.resume_reading().unwrap();
            }
            return;
        }
        self.reads.lock().unwrap().push(conn.id());
        let _ = conn.write_buf(buf);
    }
}

const CLIENTS: usize = 100;

fn flooding_client_does_not_starve_ping_pong_clients(engine: EngineChoice) {
    // One IO thread shared by everyone, and small read buffers, so the
    // flooder always has far more data waiting than one read takes.
    let t = start_with(
        builder(engine).io_threads(1).buffer_size(64),
        Recorder::default(),
    );
    let mut flood = t.connect();
    let mut pingers: Vec<_> = (0..CLIENTS).map(|_| t.connect()).collect();
    assert!(eventually(IO_TIMEOUT, || {
        t.handler().handles.lock().unwrap().len() == CLIENTS + 1
    }));
    let flood_id = t.handler().handles.lock().unwrap()[0].id();
    let mut control = t.connect();

    // Fill the kernel's buffers for the paused flooder (megabytes), and
    // give every ping-pong client its first message.
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
    for (i, p) in pingers.iter_mut().enumerate() {
        p.write_all(format!("{i:03}:00").as_bytes()).unwrap();
    }

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

    // Let everyone go.
    control.write_all(b"GO").unwrap();
    let clients: Vec<_> = pingers
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                for round in 0..20u32 {
                    if round > 0 {
                        s.write_all(format!("{i:03}:{round:02}").as_bytes())
                            .unwrap();
                    }
                    let mut back = [0u8; 6];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, *format!("{i:03}:{round:02}").as_bytes());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("ping-pong client was served");
    }
    stop.store(true, SeqCst);

    // Every ping-pong client had data waiting when reading resumed. Count
    // the flooder's reads before the last of them was first served: a loop
    // reading the flooder until EAGAIN would read a large part of its
    // backlog first.
    let reads = t.handler().reads.lock().unwrap().clone();
    let mut served = std::collections::HashSet::new();
    let mut flood_reads_before_all_served = 0usize;
    for &c in &reads {
        if served.len() == CLIENTS {
            break;
        }
        if c == flood_id {
            flood_reads_before_all_served += 1;
        } else {
            served.insert(c);
        }
    }
    // Measured: 16 on epoll (its per-pass budget), about 33 on io_uring;
    // without the budget, thousands.
    assert!(
        flood_reads_before_all_served <= 256,
        "the flooder got {flood_reads_before_all_served} reads (of a backlog of \
         {}) before every other client was served once",
        queued / 64
    );
    drop(control);
    writer.join().unwrap();
    drain.join().unwrap();
    t.finish();
}
