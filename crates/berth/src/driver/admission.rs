//! Admission control: a cap on the server's connections, and on the
//! connections of one client address. The accepting thread admits; the
//! thread that releases a connection gives its place back. One atomic
//! operation per connection opened or closed (none per message); the
//! per-address table, behind a mutex, only when that limit is set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::lifecycle::Refusal;

/// Descriptors kept back from `RLIMIT_NOFILE` for everything but client
/// connections (listeners, the engines' own descriptors, files the
/// handler opens, outbound connections).
pub const DESCRIPTOR_RESERVE: usize = 256;

/// The default for [`ServerBuilder::max_connections`]: the process's
/// open-files limit less a reserve of descriptors, and no less than 16.
///
/// [`ServerBuilder::max_connections`]: crate::ServerBuilder::max_connections
pub fn default_max_connections() -> usize {
    let limit = nofile_limit().unwrap_or(1024);
    limit
        .saturating_sub(DESCRIPTOR_RESERVE.min(limit / 4))
        .max(16)
}

/// The soft `RLIMIT_NOFILE` of this process, read from `/proc/self/limits`.
fn nofile_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(usize::MAX / 2);
    }
    soft.parse().ok()
}

/// The server's connection limits and what they count.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: Option<u32>,
    live: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: Option<u32>) -> Self {
        Admission {
            max_total,
            max_per_ip,
            live: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a place for a connection from `ip`, or say which limit is full.
    pub fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.live.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MaxConnections);
        }
        if let Some(max) = self.max_per_ip {
            let mut table = self.table();
            let n = table.entry(ip).or_insert(0);
            if *n >= max {
                drop(table);
                self.live.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::MaxConnectionsPerIp);
            }
            *n += 1;
        }
        Ok(())
    }

    /// Give back the place of a closed connection from `ip`.
    pub fn release(&self, ip: IpAddr) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        if self.max_per_ip.is_some() {
            let mut table = self.table();
            if let Some(n) = table.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    table.remove(&ip);
                }
            }
        }
    }

    /// Connections admitted and not yet released.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_and_per_address_limits_hold_and_places_come_back() {
        let a = Admission::new(3, Some(2));
        let x: IpAddr = "127.0.0.1".parse().unwrap();
        let y: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(a.admit(x), Ok(()));
        assert_eq!(a.admit(x), Ok(()));
        assert_eq!(a.admit(x), Err(Refusal::MaxConnectionsPerIp));
        assert_eq!(a.admit(y), Ok(()));
        assert_eq!(a.admit(y), Err(Refusal::MaxConnections));
        assert_eq!(a.live(), 3);
        a.release(x);
        assert_eq!(a.admit(y), Ok(()));
        a.release(y);
        a.release(y);
        a.release(x);
        assert_eq!(a.live(), 0);
        assert!(
            a.table().is_empty(),
            "addresses with no connection are forgotten"
        );
    }

    #[test]
    fn the_default_leaves_a_reserve_below_the_descriptor_limit() {
        let max = default_max_connections();
        let limit = nofile_limit().unwrap();
        assert!(max < limit && max >= limit.saturating_sub(DESCRIPTOR_RESERVE).min(max));
    }
}
