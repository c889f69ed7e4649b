//! Model checks (`RUSTFLAGS="--cfg loom"`, see `crate::sync`) of a block's
//! reference count: its views, on several threads, and its return to the
//! pool (through a thread's cache or the shared free list).

use loom::thread;

use super::BufPool;

/// A pooled buffer split in two, each half cloned and the views dropped on
/// two threads, one of which keeps a block cache: while any view is alive
/// the block is in no free list, and once all are gone it is back in the
/// pool (at most once) or freed (when two last drops race, as `recycle`
/// allows) — never leaked.
#[test]
fn a_block_returns_to_the_pool_at_most_once_and_only_after_its_last_view() {
    loom::model(|| {
        let pool = BufPool::new(16, 4);
        let mut buf = pool.alloc();
        buf.extend_from_slice(b"abcd");
        let mut tail = buf.freeze();
        let head = tail.split_to(2);
        let threads: Vec<_> = [head, tail]
            .into_iter()
            .enumerate()
            .map(|(i, view)| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let _cache = (i == 1).then(|| pool.bind_thread_cache(1));
                    let copy = view.clone();
                    drop(view);
                    assert_eq!(pool.stats().pooled, 0, "pooled while a view is alive");
                    assert_eq!(copy.len(), 2);
                    drop(copy);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = pool.stats();
        assert_eq!(stats.in_use, 0, "{stats:?}");
        assert!(stats.pooled <= 1, "{stats:?}");
        if stats.pooled == 1 {
            let again = pool.alloc();
            assert_eq!(pool.stats().allocated, 1, "the pooled block is reused");
            drop(again);
        }
    });
}
