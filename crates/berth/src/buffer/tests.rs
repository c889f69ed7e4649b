use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::*;

#[test]
fn blocks_return_to_pool_on_last_drop() {
    let pool = BufPool::new(64, 4);
    let mut b = pool.alloc();
    b.extend_from_slice(b"hello world");
    let frozen = b.freeze();
    let clone = frozen.clone();
    assert_eq!(pool.stats().in_use, 1);
    drop(frozen);
    assert_eq!(pool.stats().in_use, 1);
    drop(clone);
    assert_eq!(
        pool.stats(),
        PoolStats {
            allocated: 1,
            pooled: 1,
            in_use: 0
        }
    );
    // Reuse: no new allocation.
    let again = pool.alloc();
    assert_eq!(pool.stats().allocated, 1);
    drop(again);
}

#[test]
fn alloc_hands_out_the_block_freed_last() {
    let pool = BufPool::new(64, 8);
    let bufs: Vec<_> = (0..3).map(|_| pool.alloc()).collect();
    let addrs: Vec<_> = bufs.iter().map(|b| b.as_ptr()).collect();
    drop(bufs); // freed in order 0, 1, 2
    let mut held = Vec::new();
    for want in addrs.iter().rev() {
        let again = pool.alloc();
        assert_eq!(again.as_ptr(), *want);
        held.push(again);
    }
    assert_eq!(pool.stats().allocated, 3);
}

#[test]
fn pool_keeps_at_most_max_pooled() {
    let pool = BufPool::new(16, 2);
    let bufs: Vec<_> = (0..5).map(|_| pool.alloc()).collect();
    assert_eq!(pool.stats().allocated, 5);
    drop(bufs);
    assert_eq!(
        pool.stats(),
        PoolStats {
            allocated: 2,
            pooled: 2,
            in_use: 0
        }
    );
}

/// Run `f` on a new thread (whose block cache starts unbound).
fn on_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| s.spawn(f).join().expect("test thread panicked"))
}

fn shared_len(pool: &BufPool) -> usize {
    pool.shared.free_list().len()
}

#[test]
fn a_bound_thread_reuses_its_blocks_without_the_shared_list() {
    let pool = BufPool::new(64, 64);
    on_thread(|| {
        let guard = pool.bind_thread_cache(1);
        assert!(guard.bound);
        assert!(!pool.bind_thread_cache(1).bound, "one cache per thread");
        let bufs: Vec<_> = (0..3).map(|_| pool.alloc()).collect();
        let addrs: Vec<_> = bufs.iter().map(|b| b.as_ptr()).collect();
        drop(bufs); // freed in order 0, 1, 2
        assert_eq!(shared_len(&pool), 0, "freed into the thread's cache");
        let stats = PoolStats {
            allocated: 3,
            pooled: 3,
            in_use: 0,
        };
        assert_eq!(pool.stats(), stats);
        let again: Vec<_> = (0..3).map(|_| pool.alloc()).collect();
        let got: Vec<_> = again.iter().map(|b| b.as_ptr()).collect();
        assert_eq!(got, addrs.iter().rev().copied().collect::<Vec<_>>());
        drop(again);
        drop(guard);
        assert_eq!(shared_len(&pool), 3, "unbinding hands the blocks over");
        assert_eq!(pool.stats(), stats);
        assert_eq!(pool.shared.leased.load(Ordering::Relaxed), 0);
        assert!(pool.shared.cache_list().is_empty());
    });
}

#[test]
fn a_thread_cache_counts_against_max_pooled_and_stays_lifo() {
    let pool = BufPool::new(16, 8); // a lease of 2
    on_thread(|| {
        let _guard = pool.bind_thread_cache(1);
        let bufs: Vec<_> = (0..12).map(|_| pool.alloc()).collect();
        let last = bufs[11].as_ptr();
        drop(bufs);
        let stats = PoolStats {
            allocated: 8,
            pooled: 8,
            in_use: 0,
        };
        assert_eq!(pool.stats(), stats);
        assert_eq!(shared_len(&pool), 6);
        assert_eq!(
            pool.alloc().as_ptr(),
            last,
            "the block freed last comes first"
        );
    });
    assert_eq!(shared_len(&pool), 8);
}

#[test]
fn blocks_freed_on_other_threads_reach_a_bound_thread() {
    let pool = BufPool::new(64, 64);
    on_thread(|| {
        let _guard = pool.bind_thread_cache(1);
        let buf = pool.alloc();
        let addr = buf.as_ptr();
        on_thread(move || drop(buf)); // into the shared list
        assert_eq!(shared_len(&pool), 1);
        assert_eq!(pool.alloc().as_ptr(), addr);
        assert_eq!(pool.stats().allocated, 1);
    });
}

#[test]
fn thread_caches_lease_at_most_half_the_bound() {
    use std::sync::mpsc;
    let pool = BufPool::new(16, 16); // a quarter is 4; half is 8
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    std::thread::scope(|s| {
        let mut leases = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = mpsc::channel();
            let (pool, release_rx) = (&pool, &release_rx);
            s.spawn(move || {
                let _guard = pool.bind_thread_cache(1);
                tx.send(pool.shared.leased.load(Ordering::Relaxed)).unwrap();
                // Hold the cache until the main thread has seen them all.
                let _ = release_rx.lock().unwrap().recv();
            });
            leases.push(rx.recv().unwrap());
        }
        assert_eq!(leases, [4, 8, 8]);
        drop(release_tx);
    });
    assert_eq!(pool.shared.leased.load(Ordering::Relaxed), 0);
}

#[test]
fn a_small_pool_leases_no_cache() {
    let pool = BufPool::new(16, 2);
    on_thread(|| {
        assert!(!pool.bind_thread_cache(1).bound);
        drop(pool.alloc());
        assert_eq!(shared_len(&pool), 1);
    });
}

#[test]
fn split_and_slice_share_the_block() {
    let pool = BufPool::new(32, 2);
    let mut b = pool.alloc();
    b.extend_from_slice(b"abcdefgh");
    let mut all = b.freeze();
    let head = all.split_to(3);
    assert_eq!(&*head, b"abc");
    assert_eq!(&*all, b"defgh");
    let tail = all.split_off(2);
    assert_eq!(&*all, b"de");
    assert_eq!(&*tail, b"fgh");
    assert_eq!(&*tail.slice(1..), b"gh");
    assert_eq!(pool.stats().allocated, 1);
    drop((head, all, tail));
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn adjacent_views_of_one_block_append_without_copy() {
    let pool = BufPool::new(32, 2);
    let mut b = pool.alloc();
    b.extend_from_slice(b"abcdefgh");
    let mut all = b.freeze();
    let mut first = all.split_to(3);
    let second = all.split_to(2);
    assert!(first.try_append(&second));
    assert_eq!(&*first, b"abcde");
    // Not adjacent (a gap), and not the same block: refused.
    assert!(!first.try_append(&all.slice(1..)));
    assert!(!first.try_append(&IoBuf::from(vec![1, 2])));
    assert!(first.try_append(&all));
    assert_eq!(&*first, b"abcdefgh");
}

#[test]
fn try_into_mut_moves_data_to_front_when_unique() {
    let pool = BufPool::new(16, 2);
    let mut b = pool.alloc();
    b.extend_from_slice(b"0123456789");
    let mut f = b.freeze();
    f.advance(6);
    let shared = f.clone();
    let f = f
        .try_into_mut()
        .expect_err("shared view cannot become mutable");
    drop(shared);
    let mut m = f.try_into_mut().expect("unique view");
    assert_eq!(&*m, b"6789");
    assert_eq!(m.remaining(), 12);
    m.extend_from_slice(b"ab");
    assert_eq!(&*m, b"6789ab");
}

#[test]
fn copy_in_chains_buffers() {
    let pool = BufPool::new(4, 8);
    let mut out = Vec::new();
    let n = pool.copy_in(b"0123456789", |b| out.push(b));
    assert_eq!(n, 3);
    let joined: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(joined, b"0123456789");
}

#[test]
fn dropping_the_pool_frees_its_blocks() {
    let pool = BufPool::new(16, 4);
    let weak = Arc::downgrade(&pool.shared);
    let kept = pool.alloc().freeze();
    drop(pool.alloc());
    drop(pool);
    assert!(weak.upgrade().is_none(), "pool freed while a block is out");
    drop(kept); // an outstanding block is simply freed
}

#[test]
fn unpooled_buffers_from_vec() {
    let b = IoBuf::from(vec![1, 2, 3]);
    assert_eq!(&*b, &[1, 2, 3]);
    assert!(b.clone().try_into_mut().is_err());
}
