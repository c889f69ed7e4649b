//! A provided-buffer ring: receive buffers the kernel picks from when data
//! arrives, so a connection holds a buffer only while data is in it.
//!
//! The ring has room for a fixed number of buffers but is filled only as
//! far as the load needs: the kernel fills buffers in ring order, so every
//! buffer more than one pass takes waits longer and goes cold in the CPU's
//! cache before the kernel copies into it. Before each wait the engine tops
//! the ring up to a target, which doubles when a pass took at least the
//! target (or a receive found the ring empty) and falls back to twice the
//! busiest recent pass. Buffers cannot be taken back out of a ring: after
//! a burst, the ring keeps what it was given until the kernel uses it.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

use crate::buffer::{BufPool, IoBufMut};

pub(crate) struct BufRing {
    base: NonNull<BufRingEntry>,
    layout: Layout,
    mask: u16,
    tail: u16,
    /// The buffer behind each buffer id. While an id is in the ring the
    /// kernel may write into its buffer at any time, so it is never touched.
    bufs: Vec<Option<IoBufMut>>,
    /// Buffer ids with no buffer behind them.
    idle: Vec<u16>,
    fill: FillTarget,
    /// Buffers the kernel filled since the last refill.
    taken: u16,
    /// A receive found the ring empty since the last refill.
    dry: bool,
    bgid: u16,
    registered: bool,
}

/// How many buffers the ring should hold when the kernel next runs: enough
/// for the busiest recent pass with room to spare, no more.
#[derive(Debug)]
struct FillTarget {
    target: u16,
    cap: u16,
    /// The most buffers one pass took in this window, and the passes left
    /// in the window.
    peak: u16,
    window: u16,
}

impl FillTarget {
    /// The fewest buffers the ring is topped up to.
    const MIN: u16 = 4;
    /// Passes over which the busiest one is looked for before shrinking.
    const WINDOW: u16 = 256;

    fn new(cap: u16) -> Self {
        FillTarget {
            target: cap.min(2 * Self::MIN),
            cap,
            peak: 0,
            window: Self::WINDOW,
        }
    }

    /// A pass took `taken` buffers (`dry`: some receive found none left);
    /// returns the target for the next one. It doubles at once when the
    /// pass took at least the target, and falls to twice the window's
    /// busiest pass when a window ends.
    fn after_pass(&mut self, taken: u16, dry: bool) -> u16 {
        if (dry || taken >= self.target) && self.target < self.cap {
            self.target = self.target.saturating_mul(2).min(self.cap);
            tracing::trace!(buffers = self.target, "buffer ring grows");
        }
        self.peak = self.peak.max(taken);
        self.window -= 1;
        if self.window == 0 {
            let want = self
                .peak
                .saturating_mul(2)
                .clamp(Self::MIN.min(self.cap), self.cap);
            if want < self.target {
                self.target = want;
                tracing::trace!(buffers = self.target, "buffer ring shrinks");
            }
            self.peak = 0;
            self.window = Self::WINDOW;
        }
        self.target
    }
}

impl BufRing {
    /// Allocate `entries` (a power of two) ring slots, register them as
    /// buffer group `bgid` and provide a first few buffers from `pool`.
    pub fn new(ring: &IoUring, pool: &BufPool, entries: u16, bgid: u16) -> io::Result<Self> {
        let entries = entries.clamp(1, 32768).next_power_of_two();
        let size = entries as usize * std::mem::size_of::<BufRingEntry>();
        let layout = Layout::from_size_align(size, 4096).map_err(io::Error::other)?;
        // SAFETY: `layout` has a non-zero size.
        let base = NonNull::new(unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut this = BufRing {
            base,
            layout,
            mask: entries - 1,
            tail: 0,
            bufs: (0..entries).map(|_| None).collect(),
            idle: (0..entries).rev().collect(),
            fill: FillTarget::new(entries),
            taken: 0,
            dry: false,
            bgid,
            registered: false,
        };
        // SAFETY: the memory is page-aligned, sized for `entries` entries and
        // lives in `this` until after it is unregistered (see `unregister`
        // and `Drop`, which frees it only after the ring is gone).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                base.as_ptr() as u64,
                entries,
                bgid,
                0,
            )?;
        }
        this.registered = true;
        this.top_up_now(pool);
        Ok(this)
    }

    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Put `buf` in the ring under `bid` (visible to the kernel after `publish`).
    fn provide(&mut self, bid: u16, mut buf: IoBufMut) {
        buf.clear();
        let spare = buf.spare_mut();
        let (addr, len) = (spare.as_mut_ptr() as u64, spare.len() as u32);
        let slot = (self.tail & self.mask) as usize;
        // SAFETY: `slot` is within the `mask + 1` entries allocated in `new`;
        // the kernel only reads entries between its head and our published
        // tail, and this one is past the tail until `publish`.
        let entry = unsafe { &mut *self.base.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(len);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.bufs[bid as usize] = Some(buf);
    }

    /// Make provided buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: `base` points at the first entry of the registered ring,
        // whose `resv` field is the shared tail; it is a u16 aligned to 2
        // that the kernel only reads, so an atomic release store is sound.
        let tail = unsafe { &*BufRingEntry::tail(self.base.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// The kernel filled `len` bytes of buffer `bid`: take it out of the
    /// ring (the next refill provides another).
    pub fn take(&mut self, bid: u16, len: usize) -> Option<IoBufMut> {
        let mut buf = self.bufs.get_mut(bid as usize)?.take()?;
        self.idle.push(bid);
        self.taken = self.taken.saturating_add(1);
        buf.advance(len.min(buf.remaining()));
        Some(buf)
    }

    /// A receive ended because the ring was empty.
    pub fn ran_dry(&mut self) {
        self.dry = true;
    }

    /// Adapt the target to the last pass and top the ring up to it, with
    /// the blocks `pool` freed last. Called before every wait: under
    /// `DEFER_TASKRUN` the kernel fills buffers only while the thread waits.
    /// Returns whether the ring changed since the last refill.
    pub fn refill(&mut self, pool: &BufPool) -> bool {
        let changed = self.taken > 0;
        let target = self.fill.after_pass(self.taken, self.dry);
        self.taken = 0;
        self.dry = false;
        self.top_up(pool, target) || changed
    }

    /// Top the ring up to the current target without ending the pass.
    pub fn top_up_now(&mut self, pool: &BufPool) {
        let target = self.fill.target;
        self.top_up(pool, target);
    }

    /// Buffers in the ring now.
    pub fn held(&self) -> usize {
        self.bufs.len() - self.idle.len()
    }

    /// Provide buffers until the ring holds `target`; whether any were.
    fn top_up(&mut self, pool: &BufPool, target: u16) -> bool {
        let held = self.held();
        if held >= usize::from(target) {
            return false;
        }
        for _ in held..usize::from(target) {
            let Some(bid) = self.idle.pop() else { break };
            self.provide(bid, pool.alloc());
        }
        self.publish();
        true
    }

    /// Unregister from the ring (after every receive has completed).
    pub fn unregister(&mut self, ring: &IoUring) {
        if self.registered {
            let _ = ring.submitter().unregister_buf_ring(self.bgid);
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // The owner drops the ring (closing it) before this, or unregistered
        // it; no receive is in flight at teardown, so nothing writes here.
        self.bufs.clear();
        // SAFETY: `base` was allocated in `new` with `layout`.
        unsafe { dealloc(self.base.as_ptr().cast(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::FillTarget;

    #[test]
    fn fill_target_doubles_when_a_pass_empties_the_ring() {
        let mut fill = FillTarget::new(32);
        assert_eq!(fill.target, 8);
        assert_eq!(fill.after_pass(3, false), 8);
        assert_eq!(fill.after_pass(8, false), 16);
        assert_eq!(fill.after_pass(2, true), 32);
        assert_eq!(fill.after_pass(32, true), 32, "never past the ring's size");
    }

    #[test]
    fn fill_target_shrinks_only_when_a_window_ends() {
        let mut fill = FillTarget::new(256);
        while fill.target < 256 {
            fill.after_pass(fill.target, false);
        }
        // The window that saw the growth keeps its peak; the next is quiet.
        for i in 0..2 * FillTarget::WINDOW {
            fill.after_pass(1, false);
            if i == FillTarget::WINDOW {
                assert_eq!(fill.target, 256, "no shrinking inside a window");
            }
        }
        assert_eq!(fill.target, FillTarget::MIN);
    }

    #[test]
    fn fill_target_settles_at_twice_the_busiest_pass() {
        let mut fill = FillTarget::new(256);
        for taken in [8, 16, 32] {
            fill.after_pass(taken, false);
        }
        assert_eq!(fill.target, 64);
        for _ in 0..2 * FillTarget::WINDOW {
            fill.after_pass(20, false);
        }
        assert_eq!(fill.target, 40);
    }

    #[test]
    fn fill_target_fits_tiny_rings() {
        let mut fill = FillTarget::new(1);
        assert_eq!(fill.target, 1);
        for _ in 0..2 * FillTarget::WINDOW {
            assert_eq!(fill.after_pass(0, false), 1);
        }
        assert_eq!(fill.after_pass(1, true), 1);
    }
}
