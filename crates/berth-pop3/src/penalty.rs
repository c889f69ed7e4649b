//! The failed-login delay per client address (Dovecot's "auth penalty"):
//! the answer to a failed `PASS` or `APOP` is held back for a delay that
//! doubles with each failure from the same address (2 s, 4 s, 8 s, then
//! the cap of 15 s by default), and a successful login from it clears it.
//! The answer to a successful login from an address with failures on
//! record is held back too, for the delay of its last failure: otherwise a
//! client could take any answer slower than a round trip for a failure,
//! hang up and try again without ever waiting.
//!
//! Sans-IO: the table is told the time ([`Penalties::failed`] takes `now`)
//! and only computes delays; the server holds the answer back (without a
//! sleeping thread) and looks the address up.
//!
//! Addresses are grouped the way one client usually holds them: an IPv4
//! address is its own key; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
//! what a dual-stack listener reports for an IPv4 client) is the IPv4
//! address; any other IPv6 address is keyed by its /64 prefix, since a
//! single host is commonly given a whole /64 and could otherwise start
//! afresh with each of its addresses.
//!
//! Memory is bounded: at most [`Penalties::capacity`] addresses are kept.
//! An address is forgotten [`FORGET_AFTER`] after its last failure. When
//! the table is full, expired entries are dropped; if it is still full,
//! a new address is not recorded and its failures all get the first
//! delay (so a flood of addresses costs a bounded table, and every failure
//! still waits at least the base delay).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The default delay after a first failure (Dovecot's
/// `auth_failure_delay`).
pub const DEFAULT_AUTH_FAILURE_DELAY: Duration = Duration::from_secs(2);

/// The default cap on the delay (Dovecot's `AUTH_PENALTY_MAX_SECS`).
pub const DEFAULT_MAX_AUTH_FAILURE_DELAY: Duration = Duration::from_secs(15);

/// An address is forgotten this long after its last failed login.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The default bound on the addresses [`Penalties`] keeps.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Failed logins per client address, and the delay each one earns.
#[derive(Debug)]
pub struct Penalties {
    base: Duration,
    max: Duration,
    capacity: usize,
    entries: HashMap<IpAddr, Entry>,
    /// No entry expires before this: a full table is not scanned again
    /// until then.
    next_expiry: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

impl Penalties {
    /// A table whose first failure earns `base` and each next one twice
    /// the last, up to `max`, keeping at most [`DEFAULT_CAPACITY`]
    /// addresses.
    #[must_use]
    pub fn new(base: Duration, max: Duration) -> Self {
        Self::with_capacity(base, max, DEFAULT_CAPACITY)
    }

    /// As [`Penalties::new`], keeping at most `capacity` addresses.
    #[must_use]
    pub fn with_capacity(base: Duration, max: Duration, capacity: usize) -> Self {
        Penalties {
            base,
            max,
            capacity,
            entries: HashMap::new(),
            next_expiry: None,
        }
    }

    /// A login from `ip` failed at `now`: record it and return how long
    /// to hold its answer back. Zero if the base delay is zero.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let key = key(ip);
        if !self.entries.contains_key(&key) && !self.make_room(now) {
            // Full of live entries: this address is not recorded.
            return self.delay(1);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        let failures = entry.failures;
        let expiry = now + FORGET_AFTER;
        self.next_expiry = Some(self.next_expiry.map_or(expiry, |at| at.min(expiry)));
        self.delay(failures)
    }

    /// A login from `ip` succeeded at `now`: forget its failures, and
    /// return how long to hold its answer back (the delay its last failure
    /// earned, if that is not forgotten yet; zero for an address without
    /// failures on record).
    pub fn succeeded(&mut self, ip: IpAddr, now: Instant) -> Duration {
        match self.entries.remove(&key(ip)) {
            Some(e) if now.saturating_duration_since(e.last) < FORGET_AFTER => {
                self.delay(e.failures)
            }
            _ => Duration::ZERO,
        }
    }

    /// The delay the next failure from `ip` would earn at `now` (without
    /// recording one).
    #[must_use]
    pub fn next_delay(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let failures = self
            .entries
            .get(&key(ip))
            .filter(|e| now.saturating_duration_since(e.last) < FORGET_AFTER)
            .map_or(0, |e| e.failures);
        self.delay(failures.saturating_add(1))
    }

    /// Addresses recorded (including ones expired but not yet dropped).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most addresses kept.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The delay the `failures`-th failure in a row earns: the base delay
    /// doubled `failures - 1` times, at most the cap.
    fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// Room for one more entry: true if there is some, after dropping the
    /// expired entries if the table is full.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.entries.len() < self.capacity {
            return true;
        }
        if self.next_expiry.is_none_or(|at| now < at) {
            return false;
        }
        let mut next = None::<Instant>;
        self.entries.retain(|_, e| {
            let expiry = e.last + FORGET_AFTER;
            let keep = now < expiry;
            if keep {
                next = Some(next.map_or(expiry, |at| at.min(expiry)));
            }
            keep
        });
        self.next_expiry = next;
        self.entries.len() < self.capacity
    }
}

/// The key `ip` is counted under: IPv4 as it is, an IPv4-mapped IPv6
/// address as its IPv4 address, any other IPv6 address as its /64.
#[must_use]
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn table() -> Penalties {
        Penalties::new(DEFAULT_AUTH_FAILURE_DELAY, DEFAULT_MAX_AUTH_FAILURE_DELAY)
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_failure_doubles_the_delay_up_to_the_cap() {
        let mut t = table();
        let now = Instant::now();
        let delays: Vec<Duration> = (0..6).map(|_| t.failed(v4(1), now)).collect();
        assert_eq!(delays, [S(2), S(4), S(8), S(15), S(15), S(15)]);
        // Another address starts afresh.
        assert_eq!(t.failed(v4(2), now), S(2));
        assert_eq!(t.next_delay(v4(1), now), S(15));
        assert_eq!(t.next_delay(v4(3), now), S(2));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut t = Penalties::new(Duration::from_millis(1), Duration::MAX);
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            let d = t.failed(v4(1), now);
            assert!(d >= last);
            last = d;
        }
        assert_eq!(last, Duration::from_millis(1 << 31));
    }

    #[test]
    fn a_success_clears_the_address() {
        let mut t = table();
        let now = Instant::now();
        t.failed(v4(1), now);
        t.failed(v4(1), now);
        t.failed(v4(2), now);
        // Answered after its last failure's delay, then forgotten.
        assert_eq!(t.succeeded(v4(1), now), S(4));
        assert_eq!(t.failed(v4(1), now), S(2));
        assert_eq!(t.failed(v4(2), now), S(4), "only that address");
        // Unknown: nothing happens, and no delay.
        assert_eq!(t.succeeded(v4(9), now), Duration::ZERO);
        assert_eq!(t.len(), 2);
        // Failures forgotten by now hold nothing back.
        assert_eq!(t.succeeded(v4(2), now + FORGET_AFTER), Duration::ZERO);
    }

    #[test]
    fn an_address_is_forgotten_an_hour_after_its_last_failure() {
        let mut t = table();
        let start = Instant::now();
        t.failed(v4(1), start);
        let later = start + FORGET_AFTER - S(1);
        assert_eq!(t.failed(v4(1), later), S(4), "within the hour");
        assert_eq!(t.failed(v4(1), later + FORGET_AFTER - S(1)), S(8));
        let much_later = later + FORGET_AFTER * 3;
        assert_eq!(t.next_delay(v4(1), much_later), S(2));
        assert_eq!(t.failed(v4(1), much_later), S(2), "forgotten");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = Penalties::with_capacity(S(2), S(15), 4);
        let start = Instant::now();
        for i in 0..4 {
            assert_eq!(t.failed(v4(i), start), S(2));
        }
        assert_eq!(t.len(), 4);
        // Full of live entries: a new address is not recorded, and each of
        // its failures earns the first delay.
        for _ in 0..3 {
            assert_eq!(t.failed(v4(100), start + S(10)), S(2));
        }
        assert_eq!(t.len(), 4);
        // Known addresses still count up.
        assert_eq!(t.failed(v4(0), start + S(10)), S(4));
        // Once entries expire, a new address makes room by dropping them.
        let later = start + FORGET_AFTER + S(5);
        assert_eq!(t.failed(v4(100), later), S(2));
        assert_eq!(t.failed(v4(100), later), S(4));
        // v4(0) failed again at start + 10 s: still there.
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_delay(v4(0), later), S(8));
    }

    #[test]
    fn a_full_table_of_live_entries_is_not_scanned_again_and_again() {
        let mut t = Penalties::with_capacity(S(2), S(15), 2);
        let start = Instant::now();
        t.failed(v4(1), start);
        t.failed(v4(2), start + S(60));
        // Nothing expires before start + FORGET_AFTER.
        assert_eq!(t.next_expiry, Some(start + FORGET_AFTER));
        assert_eq!(t.failed(v4(3), start + S(120)), S(2));
        // At v4(1)'s expiry the scan drops it and notes v4(2)'s.
        assert_eq!(t.failed(v4(3), start + FORGET_AFTER), S(2));
        assert_eq!(t.next_expiry, Some(start + S(60) + FORGET_AFTER));
        assert_eq!(t.len(), 2);
        assert_eq!(t.failed(v4(3), start + FORGET_AFTER), S(4));
    }

    #[test]
    fn ipv6_addresses_count_per_64_prefix() {
        let mut t = table();
        let now = Instant::now();
        assert_eq!(t.failed(v6("2001:db8:1:2::1"), now), S(2));
        assert_eq!(t.failed(v6("2001:db8:1:2:ffff:0:0:9"), now), S(4));
        assert_eq!(t.failed(v6("2001:db8:1:3::1"), now), S(2), "next /64");
        t.succeeded(v6("2001:db8:1:2::abcd"), now);
        assert_eq!(t.next_delay(v6("2001:db8:1:2::1"), now), S(2));
        assert_eq!(key(v6("2001:db8:1:2:3:4:5:6")), v6("2001:db8:1:2::"));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mut t = table();
        let now = Instant::now();
        assert_eq!(t.failed(v4(7), now), S(2));
        assert_eq!(t.failed(v6("::ffff:192.0.2.7"), now), S(4));
        assert_eq!(key(v6("::ffff:192.0.2.7")), v4(7));
        // The IPv4-compatible form (deprecated) is just IPv6.
        assert_eq!(key(v6("::192.0.2.7")), v6("::"));
    }

    #[test]
    fn a_zero_base_delay_turns_it_off() {
        let mut t = Penalties::new(Duration::ZERO, S(15));
        let now = Instant::now();
        assert_eq!(t.failed(v4(1), now), Duration::ZERO);
        assert_eq!(t.next_delay(v4(1), now), Duration::ZERO);
        assert!(t.is_empty());
    }
}
