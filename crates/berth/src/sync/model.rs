//! Models, for loom, of what it cannot see into: crossbeam's lock-free
//! queue and the eventfd wake-up. Built only with `--cfg loom`.

use std::os::fd::RawFd;

use loom::sync::atomic::{AtomicUsize, Ordering, fence};
use loom::sync::{Mutex, Notify};

/// The most items one model queue takes: loom's scenarios are small.
const CAP: usize = 16;

/// A model of [`crossbeam_queue::SegQueue`] with the same synchronization
/// where it matters to its users: a push claims a slot with a `SeqCst`
/// read-modify-write of the tail and then fills it; a pop that finds the
/// queue empty has read the tail with a `Relaxed` load after a `SeqCst`
/// fence, and one that does not waits for its slot to be filled. A queue
/// behind one lock would be simpler, and would hide what the lock adds:
/// every pop would see every push that finished before it.
pub(crate) struct SegQueue<T> {
    /// Each slot is filled once; its lock stands for the queue's "written"
    /// flag (taken only after the slot is claimed, so it orders nothing else).
    slots: Box<[Mutex<Option<T>>]>,
    /// Slots claimed by pushes.
    tail: AtomicUsize,
    /// Slots claimed by pops.
    head: AtomicUsize,
}

impl<T> SegQueue<T> {
    pub fn new() -> Self {
        SegQueue {
            slots: (0..CAP).map(|_| Mutex::new(None)).collect(),
            tail: AtomicUsize::new(0),
            head: AtomicUsize::new(0),
        }
    }

    pub fn push(&self, value: T) {
        let i = self.tail.fetch_add(1, Ordering::SeqCst);
        assert!(i < CAP, "a model queue takes at most {CAP} items");
        *self.slots[i].lock().unwrap() = Some(value);
    }

    pub fn pop(&self) -> Option<T> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            fence(Ordering::SeqCst);
            if head == self.tail.load(Ordering::Relaxed) {
                return None;
            }
            match (self.head).compare_exchange(head, head + 1, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // Claimed: wait until its push has filled it.
        loop {
            if let Some(value) = self.slots[head].lock().unwrap().take() {
                return Some(value);
            }
            loom::thread::yield_now();
        }
    }

    pub fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        tail.saturating_sub(self.head.load(Ordering::Relaxed))
    }
}

/// A model of the mailbox's eventfd: `notify` is a write to it, `wait` the
/// IO thread's sleep until the next one (which, like an IO thread woken by
/// other events, may return without one). Notifications are counted.
#[derive(Debug)]
pub(crate) struct Wake {
    notify: Notify,
    sent: AtomicUsize,
}

impl Wake {
    pub fn new(_nonblocking: bool) -> std::io::Result<Self> {
        Ok(Wake {
            notify: Notify::new(),
            sent: AtomicUsize::new(0),
        })
    }

    pub fn notify(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.notify.notify();
    }

    /// Sleep until notified since the last wait (or spuriously).
    #[cfg(test)]
    pub fn wait(&self) {
        self.notify.wait();
    }

    /// How many notifications were sent.
    #[cfg(test)]
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// The engines' reset of the counter; they do not run under loom.
    pub fn drain(&self) {}

    /// No descriptor: the engines do not run under loom.
    pub fn raw(&self) -> RawFd {
        -1
    }
}
