//! Model checks (`RUSTFLAGS="--cfg loom"`, see `crate::sync`) of the worker
//! pool's shutdown.

use std::sync::Arc;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::sched::{Inner, Via};
use crate::WorkError;
use crate::driver::loom_tests::IoSide;

/// A worker runs while one thread submits a job from a handle and another
/// shuts the pool down: the submission either fails with `ShutDown` or its
/// job runs, and the worker returns either way (a job stranded in the
/// ready list, or a worker left waiting, would be a deadlock to loom).
#[test]
fn shutdown_racing_a_submission_neither_loses_nor_strands_the_job() {
    loom::model(|| {
        let mut io = IoSide::new();
        let handle = io.handle();
        let inner = Arc::new(Inner::new(1, 4));
        let ran = Arc::new(AtomicUsize::new(0));

        inner.enlist();
        let worker = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || inner.run())
        };
        let submitter = {
            let (inner, ran) = (Arc::clone(&inner), Arc::clone(&ran));
            thread::spawn(move || {
                let job = Box::new(move |_: &_| {
                    ran.fetch_add(1, Ordering::Relaxed);
                });
                inner.enqueue(Via::Handle(&handle), job)
            })
        };
        inner.close();
        let submitted = submitter.join().unwrap();
        worker.join().unwrap();
        match submitted {
            Ok(()) => assert_eq!(ran.load(Ordering::Relaxed), 1, "an accepted job runs"),
            Err(err) => {
                assert!(matches!(err, WorkError::ShutDown), "{err:?}");
                assert_eq!(ran.load(Ordering::Relaxed), 0);
            }
        }
        assert_eq!(inner.alive(), 0);
        assert_eq!(inner.stats().connections, 0, "the queue was retired");
    });
}
