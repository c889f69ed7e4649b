//! Model checks (`RUSTFLAGS="--cfg loom"`, see `crate::sync`) of the
//! shutdown state a [`ServerHandle`] shares between threads.

use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::ServerHandle;
use crate::driver::mailbox::{Command, Mailbox};
use crate::driver::stats::ThreadStats;
use crate::engine::EngineKind;

/// `Stop` commands waiting in `mailbox`.
fn stops(mailbox: &Mailbox) -> usize {
    std::iter::from_fn(|| mailbox.pop())
        .filter(|cmd| matches!(cmd, Command::Stop { .. }))
        .count()
}

/// Two threads call `shutdown` on clones of one handle at once: exactly one
/// `Stop` is sent to each IO thread told directly (all of them without a
/// listener; with one, only the accepting thread, which forwards it), and
/// both callers then see the server shutting down.
fn concurrent_shutdowns(accepting: bool) {
    loom::model(move || {
        let mailboxes: Arc<[Arc<Mailbox>]> = (0..2)
            .map(|_| Arc::new(Mailbox::new(true).unwrap()))
            .collect();
        let stats: Arc<[Arc<ThreadStats>]> = (0..2).map(|_| Arc::default()).collect();
        let handle = ServerHandle::new(Arc::clone(&mailboxes), accepting, stats, EngineKind::Epoll);
        let other = handle.clone();
        let t = thread::spawn(move || {
            other.shutdown(Duration::from_secs(1));
            assert!(other.is_shutting_down());
        });
        handle.shutdown(Duration::from_secs(1));
        assert!(handle.is_shutting_down());
        t.join().unwrap();
        assert_eq!(stops(&mailboxes[0]), 1);
        assert_eq!(stops(&mailboxes[1]), usize::from(!accepting));
    });
}

#[test]
fn concurrent_shutdowns_send_one_stop_to_each_thread() {
    concurrent_shutdowns(false);
}

#[test]
fn concurrent_shutdowns_send_one_stop_to_the_accepting_thread() {
    concurrent_shutdowns(true);
}
