//! A provided-buffer ring: receive buffers the kernel picks from when data
//! arrives, so a connection holds a buffer only while data is in it.

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
    bgid: u16,
    registered: bool,
}

impl BufRing {
    /// Allocate `entries` (a power of two) ring slots, register them as
    /// buffer group `bgid` and fill every slot from `pool`.
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
        for bid in 0..entries {
            this.provide(bid, pool.alloc());
        }
        this.publish();
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
    /// ring and put a fresh buffer from `pool` in its place.
    pub fn take(&mut self, bid: u16, len: usize, pool: &BufPool) -> Option<IoBufMut> {
        let mut buf = self.bufs.get_mut(bid as usize)?.take()?;
        buf.advance(len.min(buf.remaining()));
        self.provide(bid, pool.alloc());
        self.publish();
        Some(buf)
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
