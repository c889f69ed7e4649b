//! Exclusive access to mailboxes (RFC 1939 section 8: one session per
//! maildrop at a time).
//!
//! The registry is in-process only: it coordinates the sessions of one
//! server process, not several servers sharing a Maildir tree.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The set of currently locked mailboxes, shared by all sessions.
#[derive(Debug, Default)]
pub struct LockRegistry {
    held: Mutex<HashSet<String>>,
}

impl LockRegistry {
    /// Creates an empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks `mailbox`, or returns `None` if it is already locked.
    ///
    /// The lock is released when the returned guard is dropped.
    #[must_use]
    pub fn try_lock(self: &Arc<Self>, mailbox: &str) -> Option<MailboxLock> {
        if self.held().insert(mailbox.to_owned()) {
            Some(MailboxLock {
                registry: Arc::clone(self),
                mailbox: mailbox.to_owned(),
            })
        } else {
            None
        }
    }

    /// Whether `mailbox` is currently locked.
    #[must_use]
    pub fn is_locked(&self, mailbox: &str) -> bool {
        self.held().contains(mailbox)
    }

    /// The number of currently locked mailboxes.
    #[must_use]
    pub fn locked_count(&self) -> usize {
        self.held().len()
    }

    fn held(&self) -> MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked: every
        // operation on it is a single insert, remove or lookup.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Exclusive access to one mailbox; released on drop.
pub struct MailboxLock {
    registry: Arc<LockRegistry>,
    mailbox: String,
}

impl MailboxLock {
    /// The name of the locked mailbox.
    #[must_use]
    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }
}

impl fmt::Debug for MailboxLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxLock")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

impl Drop for MailboxLock {
    fn drop(&mut self) {
        self.registry.held().remove(&self.mailbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_the_first_is_dropped() {
        let registry = Arc::new(LockRegistry::new());
        let first = registry.try_lock("alice").unwrap();
        assert_eq!(first.mailbox(), "alice");
        assert!(registry.is_locked("alice"));
        assert!(registry.try_lock("alice").is_none());
        let bob = registry.try_lock("bob").unwrap();
        assert_eq!(registry.locked_count(), 2);
        drop(first);
        assert!(!registry.is_locked("alice"));
        assert!(registry.try_lock("alice").is_some());
        drop(bob);
        assert_eq!(registry.locked_count(), 0);
    }

    #[test]
    fn exactly_one_of_many_threads_gets_the_lock() {
        let registry = Arc::new(LockRegistry::new());
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let registry = Arc::clone(&registry);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let lock = registry.try_lock("shared");
                    // Hold the lock until every thread has tried.
                    barrier.wait();
                    lock.is_some()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&won| won)
            .count();
        assert_eq!(winners, 1);
        assert!(!registry.is_locked("shared"));
    }
}
