//! Buffer pool: allocation and return of a warm block, clone/split/drop.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use berth::BufPool;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_pool(c: &mut Criterion) {
    let pool = BufPool::new(16 * 1024, 1024);
    drop(pool.alloc()); // warm
    c.bench_function("pool_alloc_freeze_drop", |b| {
        b.iter(|| {
            let mut buf = pool.alloc();
            buf.extend_from_slice(b"0123456789abcdef");
            drop(buf.freeze());
        })
    });
    c.bench_function("iobuf_clone_split_drop", |b| {
        let mut buf = pool.alloc();
        buf.extend_from_slice(&[1u8; 4096]);
        let frozen = buf.freeze();
        b.iter(|| {
            let mut a = frozen.clone();
            let head = a.split_to(1024);
            drop((head, a));
        })
    });
    c.bench_function("pool_copy_in_64KiB", |b| {
        let data = vec![3u8; 64 * 1024];
        b.iter(|| pool.copy_in(&data, drop))
    });
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
