//! The stages of a handover, with time passed in; the steering program's
//! bytes; and the kernel behaviour the handover relies on, over loopback.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::*;
use crate::engine::sys::attach_reuseport_cbpf;

const GRACE: Duration = Duration::from_millis(250);
const MS: Duration = Duration::from_millis(1);

#[test]
fn without_reuse_port_a_stop_closes_the_listener_at_once() {
    let mut h = Handover::new(None);
    let t0 = Instant::now();
    assert!(!h.steers());
    assert!(h.accepting());
    assert!(h.stop(t0, t0 + Duration::from_secs(10)), "stop now");
    assert!(h.is_stopped());
    assert!(!h.accepting());
    assert!(h.should_close(t0));
    assert!(!h.draining());
    assert_eq!(h.timer(), None);
    assert_eq!(
        h.settled(t0 + GRACE),
        None,
        "the threads were stopped already"
    );
}

#[test]
fn a_handover_drains_for_the_grace_period_then_settles() {
    let mut h = Handover::new(Some(GRACE));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(10);
    assert!(h.steers());
    assert!(!h.stop(t0, deadline), "the threads wait for the handover");
    assert!(h.accepting() && h.draining() && !h.is_stopped());
    assert_eq!(h.timer(), Some(t0 + GRACE));
    assert!(!h.should_close(t0 + GRACE - MS));
    assert!(h.should_close(t0 + GRACE));
    // Nothing accepted: the threads stop as soon as the listener is closed.
    assert_eq!(h.closed(t0 + GRACE), 0);
    assert!(!h.accepting() && !h.should_close(t0 + GRACE));
    assert_eq!(h.settled(t0 + GRACE), Some(deadline));
    assert!(h.is_stopped());
    assert_eq!(h.settled(t0 + GRACE), None, "once");
}

#[test]
fn each_connection_accepted_in_a_handover_is_served_for_the_grace_period() {
    let mut h = Handover::new(Some(GRACE));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(10);
    h.stop(t0, deadline);
    h.accepted(t0 + MS);
    let last = t0 + GRACE; // taken from the queue just before it closed
    h.accepted(last);
    assert_eq!(h.closed(last), 2);
    assert_eq!(h.timer(), Some(last + GRACE));
    assert_eq!(h.settled(last + GRACE - MS), None);
    assert_eq!(h.settled(last + GRACE), Some(deadline));
}

#[test]
fn the_stop_deadline_bounds_a_handover() {
    let mut h = Handover::new(Some(GRACE));
    let t0 = Instant::now();
    let deadline = t0 + 100 * MS;
    h.stop(t0, deadline);
    assert_eq!(h.timer(), Some(deadline));
    h.accepted(deadline);
    h.closed(deadline);
    assert_eq!(h.settled(deadline), Some(deadline));

    // A zero deadline: steer, but close and stop at once.
    let mut h = Handover::new(Some(GRACE));
    assert!(h.steers());
    assert!(h.stop(t0, t0));
    assert!(h.is_stopped() && h.should_close(t0));
}

#[test]
fn a_second_stop_changes_nothing() {
    let mut h = Handover::new(Some(GRACE));
    let t0 = Instant::now();
    h.stop(t0, t0 + Duration::from_secs(10));
    assert!(!h.stop(t0 + MS, t0 + MS));
    assert_eq!(h.timer(), Some(t0 + GRACE));
}

#[test]
fn connections_accepted_while_running_do_not_delay_the_stop() {
    let mut h = Handover::new(Some(GRACE));
    let t0 = Instant::now();
    h.accepted(t0);
    h.stop(t0 + MS, t0 + Duration::from_secs(10));
    assert_eq!(h.closed(t0 + MS + GRACE), 0);
    assert!(h.settled(t0 + MS + GRACE).is_some());
}

#[test]
fn the_steering_program_returns_index_one() {
    let [insn] = steering_program();
    // BPF_RET | BPF_K: return the constant k.
    assert_eq!((insn.code, insn.jt, insn.jf, insn.k), (0x06, 0, 0, 1));
}

/// A listener on `addr` with `SO_REUSEPORT` (joining the group of any on
/// the same address), non-blocking.
fn shared_listener(addr: SocketAddr) -> TcpListener {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(128).unwrap();
    s.set_nonblocking(true).unwrap();
    s.into()
}

/// Open `n` connections to `addr` and count how many each listener takes
/// from its queue (waiting, boundedly, until all `n` are found).
fn spread(addr: SocketAddr, n: usize, listeners: &[&TcpListener]) -> Vec<usize> {
    let clients: Vec<_> = (0..n)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
        .collect();
    let mut counts = vec![0; listeners.len()];
    let give_up = Instant::now() + Duration::from_secs(5);
    while counts.iter().sum::<usize>() < n {
        assert!(Instant::now() < give_up, "only {counts:?} of {n} accepted");
        for (l, c) in listeners.iter().zip(&mut counts) {
            match l.accept() {
                Ok(_) => *c += 1,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("accept: {err}"),
            }
        }
        std::thread::sleep(MS);
    }
    drop(clients);
    counts
}

/// The kernel's side of a handover: the program picks a socket by its
/// index in join order; it outlives the socket that attached it; when a
/// socket closes the last one takes its place, and an index out of range
/// falls back to the hash.
#[test]
fn the_kernel_steers_by_join_order_and_keeps_the_program_for_the_next_restart() {
    let old = shared_listener("127.0.0.1:0".parse().unwrap());
    let addr = old.local_addr().unwrap();
    let new = shared_listener(addr);
    attach_reuseport_cbpf(old.as_fd(), &steering_program()).unwrap();
    assert_eq!(spread(addr, 20, &[&old, &new]), [0, 20]);

    // The old listener closes: the new one moves to index 0, out of the
    // program's reach, and the hash picks it, the only one left.
    drop(old);
    assert_eq!(spread(addr, 5, &[&new]), [5]);

    // The next restart: a newer listener joins at index 1 and gets every
    // new connection at once.
    let newer = shared_listener(addr);
    assert_eq!(spread(addr, 10, &[&new, &newer]), [0, 10]);
}

#[test]
fn attaching_to_a_listener_without_reuse_port_fails() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = attach_reuseport_cbpf(l.as_fd(), &steering_program()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}
