//! Open loop (`--rate`): one thread sends messages at a fixed total rate,
//! spread over the connections, each stamped with its intended send time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use berth::ConnHandle;

use super::stats::Window;
use super::template::Template;

/// The connections the pacer writes to, as they are established.
#[derive(Default)]
pub(super) struct Paced {
    handles: Mutex<Vec<ConnHandle>>,
}

impl Paced {
    pub(super) fn add(&self, handle: ConnHandle) {
        self.handles.lock().unwrap().push(handle);
    }

    /// Let go of every connection (before the client shuts down).
    pub(super) fn clear(&self) {
        self.handles.lock().unwrap().clear();
    }
}

/// Send `rate` messages per second, copies of `template` stamped with
/// their intended send time in `window`, in turn over the connections of
/// `paced` until `stop` is set, catching up on every message that is due.
pub(super) fn pace(
    paced: &Paced,
    template: &Template,
    window: &Window,
    stop: &AtomicBool,
    rate: f64,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    let mut turn = 0usize;
    let mut seqs: Vec<u32> = Vec::new();
    let mut msg = Vec::with_capacity(template.bytes.len());
    while !stop.load(Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(1)));
            continue;
        }
        let handles = paced.handles.lock().unwrap();
        if handles.is_empty() {
            next = Instant::now();
            continue;
        }
        seqs.resize(handles.len(), 0);
        // Catch up on every message that is due, each with its own time.
        while next <= Instant::now() {
            let i = turn % handles.len();
            turn += 1;
            let intended = window.ns_at(next);
            template.fill(&mut msg, seqs[i], intended);
            seqs[i] = seqs[i].wrapping_add(1);
            let _ = handles[i].write(&msg);
            next += interval;
        }
    }
}
