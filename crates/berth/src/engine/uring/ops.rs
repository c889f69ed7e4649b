//! What an io_uring submission carries: its kind, slot and generation
//! packed into `user_data`, and the state of an operation that can be
//! armed and cancelled.

use crate::driver::key::Key;

pub(super) const K_RECV: u64 = 1;
pub(super) const K_SEND: u64 = 2;
pub(super) const K_CANCEL: u64 = 3;
pub(super) const K_ACCEPT: u64 = 4;
pub(super) const K_WAKE: u64 = 5;
pub(super) const K_CONNECT: u64 = 6;
pub(super) const K_CLOSE: u64 = 7;

/// The key in the `user_data` of operations that belong to the thread, not
/// to a connection (accept, wake-up, close).
pub(super) const THREAD_OP: Key = Key {
    idx: 0,
    generation: 0,
};

pub(super) const BGID: u16 = 0;

pub(super) fn user_data(kind: u64, key: Key) -> u64 {
    (u64::from(key.generation) << 32) | (u64::from(key.idx) << 4) | kind
}

pub(super) fn decode(ud: u64) -> (u64, Key) {
    let key = Key {
        idx: ((ud & 0xffff_ffff) >> 4) as u32,
        generation: (ud >> 32) as u32,
    };
    (ud & 0xf, key)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpState {
    Idle,
    Armed,
    Cancelling,
}
