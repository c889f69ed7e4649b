//! A warm echo connection allocates nothing per message, on either engine.
//!
//! This test binary installs a counting global allocator, so it holds this
//! one test only (tests run in parallel threads and would count each other).

mod common;

use std::alloc::System;
use std::io::{Read, Write};

use berth::EngineChoice;
use berth::servers::Echo;
use common::*;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARMUP: usize = 2_000;
const MEASURED: usize = 20_000;

fn allocations_per_message(engine: EngineChoice) -> (usize, usize) {
    let t = start_with(builder(engine).io_threads(1), Echo::default());
    let mut s = t.connect();
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut round_trip = |s: &mut std::net::TcpStream| {
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back).unwrap();
    };
    for _ in 0..WARMUP {
        round_trip(&mut s);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..MEASURED {
        round_trip(&mut s);
    }
    let stats = region.change();
    drop(s);
    t.finish();
    (stats.allocations, stats.reallocations)
}

#[test]
fn warm_echo_connection_allocates_nothing_per_message() {
    for engine in [EngineChoice::Uring, EngineChoice::Epoll] {
        let (allocs, reallocs) = allocations_per_message(engine);
        assert_eq!(
            (allocs, reallocs),
            (0, 0),
            "{engine:?}: {allocs} allocations and {reallocs} reallocations in {MEASURED} \
             echoed messages"
        );
    }
}
