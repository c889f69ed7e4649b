//! Model checks (`RUSTFLAGS="--cfg loom"`, see `crate::sync`) of what an IO
//! thread shares with other threads: its mailbox, and the count of a
//! connection's handles. Each test's closure runs once per interleaving
//! loom explores; an IO thread that sleeps with no wake-up coming is
//! reported by loom as a deadlock.

use std::sync::Arc;

use loom::thread;

use crate::buffer::{BufPool, IoBuf};
use crate::conn::{Conn, ConnEnv, ConnHandle, ConnId};
use crate::driver::key::Key;
use crate::driver::limits::{Limits, WriteBudget};
use crate::driver::mailbox::{Command, ConnOp, Mailbox};
use crate::driver::state::ConnState;

/// A command saying who sent it: `idx` the producer, `generation` its count.
fn tagged(producer: u32, n: u32) -> Command {
    Command::Conn {
        key: Key {
            idx: producer,
            generation: n,
        },
        op: ConnOp::PauseRead,
    }
}

/// Two threads push commands while the IO thread drains its mailbox as its
/// loop does (`Mailbox::drain`), sleeping between passes until the eventfd
/// is written. Every command arrives, in the order each thread pushed them,
/// and a push the IO thread's drain did not see always wakes it (a lost
/// wake-up would leave it asleep for good: a deadlock).
///
/// (Loom 0.7 lets a plain store fall between the read and the write of a
/// read-modify-write, tokio-rs/loom#254: with `rearm` a store it reports a
/// lost wake-up even with a queue behind a lock, where the memory model
/// rules one out. With `rearm` a swap, as it is, that cannot arise.)
#[test]
fn mailbox_delivers_every_command_in_order_and_loses_no_wake_up() {
    const PER_PRODUCER: u32 = 2;
    loom::model(|| {
        let mailbox = Arc::new(Mailbox::new(true).unwrap());
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mailbox = Arc::clone(&mailbox);
                thread::spawn(move || {
                    for n in 0..PER_PRODUCER {
                        mailbox.push(tagged(p, n));
                    }
                })
            })
            .collect();

        let mut seen = [Vec::new(), Vec::new()];
        let mut received = 0;
        loop {
            mailbox.drain(|cmd| {
                let Command::Conn { key, .. } = cmd else {
                    unreachable!("only tagged commands are pushed")
                };
                seen[key.idx as usize].push(key.generation);
                received += 1;
            });
            if received == 2 * PER_PRODUCER {
                break;
            }
            mailbox.eventfd().wait(); // the loop's `engine.wait`
        }
        for producer in producers {
            producer.join().unwrap();
        }
        let in_order: Vec<u32> = (0..PER_PRODUCER).collect();
        assert_eq!(seen, [in_order.clone(), in_order]);
        // A burst shares a wake-up: never more than one per push.
        let sent = mailbox.eventfd().sent();
        assert!((1..=2 * PER_PRODUCER as usize).contains(&sent), "{sent}");
    });
}

/// A connection's IO-thread side, with no IO thread: its state, and what a
/// callback's [`Conn`] is given.
pub(crate) struct IoSide {
    pub st: ConnState,
    pub pool: BufPool,
    pub mailbox: Arc<Mailbox>,
    pub budget: WriteBudget,
}

impl IoSide {
    pub fn new() -> Self {
        IoSide {
            st: ConnState::new(ConnId(1), Key::default(), "127.0.0.1:9".parse().unwrap()),
            pool: BufPool::new(16, 4),
            mailbox: Arc::new(Mailbox::new(true).unwrap()),
            budget: WriteBudget::new(Limits::unlimited()),
        }
    }

    /// `conn.handle()`, as inside a callback.
    pub fn handle(&mut self) -> ConnHandle {
        Conn {
            st: &mut self.st,
            env: ConnEnv {
                pool: &self.pool,
                mailbox: &self.mailbox,
                budget: &mut self.budget,
                now: 0,
            },
        }
        .handle()
    }

    /// Apply what the mailbox holds, one operation at a time, with the real
    /// `ConnState::apply`; returns how many `Released` there were. Each of
    /// the `writers` handles taken so far writes one byte: whenever the
    /// connection stops counting handles (where the IO thread would go on
    /// to close it), every one of those bytes must be queued already.
    fn drain(&mut self, writers: usize) -> usize {
        let mut released = 0;
        let (st, budget) = (&mut self.st, &mut self.budget);
        self.mailbox.drain(|cmd| {
            let Command::Conn { op, .. } = cmd else {
                unreachable!("only connection operations are pushed")
            };
            if matches!(op, ConnOp::Released) {
                released += 1;
            }
            st.apply(op, budget, 0);
            if !st.handles_held() {
                assert_eq!(st.wq_bytes, writers, "handles gone before their writes");
            }
        });
        released
    }
}

/// A one-byte write, in an unpooled buffer (one reference count fewer to
/// model than a pooled one).
fn byte() -> IoBuf {
    IoBuf::from(vec![b'x'])
}

/// Two clones of a handle each write and are dropped on their own threads
/// while the IO thread applies what arrives, and takes (and drops) a handle
/// of its own meanwhile — a new generation of handles if the others were
/// already gone. Exactly the drop that brings the count to zero sends
/// `Released`, once per generation, and the connection stops counting
/// handles (`handle_gens` 0) only once every write they queued has been
/// applied.
#[test]
fn handles_are_released_once_per_generation_after_their_operations() {
    loom::model(|| {
        let mut io = IoSide::new();
        let a = io.handle();
        let b = a.clone();
        let mut generations = 1;
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|h| thread::spawn(move || h.write_buf(byte()).unwrap()))
            .collect();

        let mut released = io.drain(2);
        let before = io.st.handle_gens;
        let own = io.handle();
        if io.st.handle_gens > before {
            generations += 1; // the clones were both dropped already
        }
        own.write_buf(byte()).unwrap();
        drop(own);
        while io.st.handles_held() {
            released += io.drain(3);
            if io.st.handles_held() {
                io.mailbox.eventfd().wait();
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        released += io.drain(3);
        assert_eq!(released, generations, "one `Released` per generation");
        assert_eq!(io.st.handle_gens, 0);
    });
}
