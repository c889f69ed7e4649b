//! Where connections go and where they come from: the server's address,
//! and the local addresses and ports to connect from in turn.
//!
//! The ports are chosen outside the kernel's ephemeral range
//! (`ip_local_port_range`), for two reasons. A port that a `bind` took is
//! one the kernel skips when it picks a port for a `connect`, for any
//! program on the machine and for as long as the socket lasts, TIME_WAIT
//! included (a minute): ports taken inside the range leave every other
//! program fewer, and none once a churn has gone through them all (28,232
//! ports by default: as many connects from one source address, four times
//! as many from four), when their connects fail with `AddrNotAvailable`
//! for that minute. And every port the kernel picked
//! itself, for a `connect` or a `bind` to port 0 (as tests and tools that
//! connect from 127.0.0.2 do), is inside it: no such socket holds one of
//! ours.
//!
//! A chosen port may still be held by a socket that is none of the run's:
//! a listener on a fixed port, there or on the wildcard address, or a
//! socket bound to it without `SO_REUSEADDR`. Its bind fails with
//! `AddrInUse` (a pair whose last connection to the same server is still
//! in use fails its connect with `AddrNotAvailable`). The kernel, when it
//! picks, just tries another port; so does the run: such a connect is
//! dialled again from the next pair and counted as a retry, not as an
//! error (`Dialer::retries`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use berth::ServerHandle;

use super::args::BenchArgs;

/// Opens connections to the server under load.
pub(super) struct Dialer {
    addr: SocketAddr,
    sources: Option<Sources>,
    /// The client's handle, once it runs (for reconnects from its threads).
    control: OnceLock<ServerHandle>,
    /// Connects from a chosen pair that found it taken, in a row: with no
    /// connection established since the first of them.
    taken_in_a_row: AtomicU64,
}

/// Taken pairs in a row, with no connection established in between, after
/// which a taken pair counts as an error again. A source address that
/// cannot be bound at all (not one of this host's: `AddrNotAvailable` on
/// every port) must still fail the run, while pairs taken by chance are
/// few among the tens of thousands a run goes through: 64 in a row do not
/// happen.
const MAX_TAKEN_IN_A_ROW: u64 = 64;

impl Dialer {
    /// Connections to `--addr`, from the `--source` addresses (or the
    /// default ones for this run).
    pub(super) fn new(args: &BenchArgs) -> Result<Self, String> {
        let ips = source_ips(args)?;
        Ok(Dialer {
            addr: args.addr,
            sources: (!ips.is_empty())
                .then(|| Sources::new(ips, Ports::outside(ephemeral_ports()), fresh_start())),
            control: OnceLock::new(),
            taken_in_a_row: AtomicU64::new(0),
        })
    }

    /// The client to open connections on from now on.
    pub(super) fn set_control(&self, control: ServerHandle) {
        let _ = self.control.set(control);
    }

    /// Open one more connection, from the next source address if any.
    pub(super) fn connect(&self, control: &ServerHandle, timeout: Duration) -> Result<(), String> {
        match &self.sources {
            Some(sources) => control.connect_from(self.addr, sources.next(), timeout),
            None => control.connect(self.addr, timeout),
        }
        .map_err(|e| e.to_string())
    }

    /// Open one more connection on the client, if it runs yet (a failure
    /// comes back through `connect_failed`).
    pub(super) fn reconnect(&self) {
        if let Some(control) = self.control.get() {
            let _ = self.connect(control, Duration::from_secs(5));
        }
    }

    /// Whether a connect that failed with `err` is to be dialled again from
    /// the next pair rather than counted as an error: its pair, chosen by
    /// the run, was taken (`AddrInUse`, `AddrNotAvailable`), which says
    /// nothing about the server. Not when the kernel chose the port (then
    /// `AddrNotAvailable` means it found none free), nor after
    /// `MAX_TAKEN_IN_A_ROW` taken pairs with no connection in between.
    pub(super) fn retries(&self, err: &io::Error) -> bool {
        self.sources.is_some()
            && matches!(
                err.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
            )
            && self.taken_in_a_row.fetch_add(1, Relaxed) < MAX_TAKEN_IN_A_ROW
    }

    /// A connection was established: taken pairs count from zero again.
    pub(super) fn established(&self) {
        // Read first: a store on every connection would bounce the cache
        // line between the IO threads for nothing.
        if self.taken_in_a_row.load(Relaxed) != 0 {
            self.taken_in_a_row.store(0, Relaxed);
        }
    }
}

/// Local addresses and ports to connect from, in turn: every address with
/// one port, then every address with the next port, over `Ports`. A pair
/// comes round again only after all the others, by when its last
/// connection's TIME_WAIT may be reused (on loopback, after a second).
struct Sources {
    ips: Vec<IpAddr>,
    ports: Ports,
    next: AtomicU64,
}

impl Sources {
    fn new(ips: Vec<IpAddr>, ports: Ports, start: u64) -> Self {
        Sources {
            ips,
            ports,
            next: AtomicU64::new(start),
        }
    }

    fn next(&self) -> SocketAddr {
        let n = self.next.fetch_add(1, Relaxed);
        let k = self.ips.len() as u64;
        let port = self.ports.nth((n / k) % self.ports.len());
        SocketAddr::new(self.ips[(n % k) as usize], port)
    }
}

/// The local ports to connect from: spans of ports, first to last.
#[derive(Debug, PartialEq, Eq)]
struct Ports(Vec<(u16, u16)>);

/// The first port a run may take (below it, ports need privileges).
const FIRST_PORT: u16 = 1024;

/// Fewest ports outside the ephemeral range for the run to keep to them.
/// With fewer, the range itself holds three times as many or more, and the
/// run takes it instead: a pair must not come round again while its last
/// connection is in TIME_WAIT and younger than a second.
const MIN_OUTSIDE: u64 = 16 * 1024;

impl Ports {
    /// The ports outside the ephemeral range `lo..=hi` (with the default
    /// range, 1024 to 32767 and 61000 to 65535: 36,280 ports), or that
    /// range itself if fewer than `MIN_OUTSIDE` are left outside it.
    fn outside((lo, hi): (u16, u16)) -> Ports {
        let mut spans = Vec::new();
        if lo > FIRST_PORT {
            spans.push((FIRST_PORT, lo - 1));
        }
        if hi < u16::MAX {
            spans.push((hi.max(FIRST_PORT - 1) + 1, u16::MAX));
        }
        let outside = Ports(spans);
        if outside.len() >= MIN_OUTSIDE {
            outside
        } else {
            Ports(vec![(lo, hi)])
        }
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|(a, b)| u64::from(b - a) + 1).sum()
    }

    /// The `i`th port, `i` below `len()`.
    fn nth(&self, mut i: u64) -> u16 {
        for &(first, last) in &self.0 {
            let n = u64::from(last - first) + 1;
            if i < n {
                return first + i as u16;
            }
            i -= n;
        }
        unreachable!("port {i} past the end of {self:?}")
    }
}

/// Where in the rotation to start: somewhere new each run, away from the
/// pairs a run just before may have left in TIME_WAIT.
fn fresh_start() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = (nanos ^ u64::from(std::process::id())).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed >> 16
}

/// The kernel's ephemeral port range (where the kernel itself picks).
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(lo, hi)| 0 < *lo && lo <= hi)
        .unwrap_or((32768, 60999))
}

/// The addresses `--source` names, or the default for this run.
fn source_ips(args: &BenchArgs) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = args
        .source
        .iter()
        .find(|ip| ip.is_ipv4() != args.addr.is_ipv4())
    {
        return Err(format!(
            "--source {ip} is not of the same address family as --addr {}",
            args.addr
        ));
    }
    if !args.source.is_empty() {
        return Ok(args.source.clone());
    }
    Ok(match args.addr.ip() {
        IpAddr::V4(ip) if args.churn && ip.is_loopback() => (2..=5)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::{Ports, Sources};
    use std::net::SocketAddr;

    #[test]
    fn sources_take_every_address_with_one_port_then_the_next_port_and_wrap() {
        let ips = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        let s = Sources::new(ips, Ports(vec![(40000, 40001), (50000, 50000)]), 0);
        let got: Vec<SocketAddr> = (0..8).map(|_| s.next()).collect();
        let want: Vec<SocketAddr> = [
            "127.0.0.1:40000",
            "127.0.0.2:40000",
            "127.0.0.1:40001",
            "127.0.0.2:40001",
            "127.0.0.1:50000",
            "127.0.0.2:50000",
            "127.0.0.1:40000",
            "127.0.0.2:40000",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ports_are_those_outside_the_ephemeral_range_if_enough_are() {
        let default = Ports::outside((32768, 60999));
        assert_eq!(default, Ports(vec![(1024, 32767), (61000, 65535)]));
        assert_eq!(default.len(), 36_280);
        assert_eq!(
            (default.nth(0), default.nth(31_743), default.nth(31_744)),
            (1024, 32767, 61000)
        );
        assert_eq!(default.nth(36_279), 65535);
        assert_eq!(Ports::outside((40000, 65535)), Ports(vec![(1024, 39999)]));
        assert_eq!(Ports::outside((1, 20000)), Ports(vec![(20001, 65535)]));
        // Too few outside: the range itself.
        assert_eq!(Ports::outside((1024, 65535)), Ports(vec![(1024, 65535)]));
        assert_eq!(Ports::outside((10000, 65000)), Ports(vec![(10000, 65000)]));
    }
}
