//! Where connections go and where they come from: the server's address,
//! and the local addresses and ports to connect from in turn.

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
}

impl Dialer {
    /// Connections to `--addr`, from the `--source` addresses (or the
    /// default ones for this run).
    pub(super) fn new(args: &BenchArgs) -> Result<Self, String> {
        let ips = source_ips(args)?;
        Ok(Dialer {
            addr: args.addr,
            sources: (!ips.is_empty()).then(|| Sources::new(ips, ephemeral_ports(), fresh_start())),
            control: OnceLock::new(),
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
}

/// Local addresses and ports to connect from, in turn: every address with
/// one port, then every address with the next port, over the kernel's
/// ephemeral range. A pair comes round again only after all the others,
/// by when its last connection's TIME_WAIT may be reused (on loopback,
/// after a second).
struct Sources {
    ips: Vec<IpAddr>,
    first_port: u16,
    ports: u64,
    next: AtomicU64,
}

impl Sources {
    fn new(ips: Vec<IpAddr>, (first, last): (u16, u16), start: u64) -> Self {
        Sources {
            ips,
            first_port: first,
            ports: u64::from(last.saturating_sub(first)) + 1,
            next: AtomicU64::new(start),
        }
    }

    fn next(&self) -> SocketAddr {
        let n = self.next.fetch_add(1, Relaxed);
        let k = self.ips.len() as u64;
        let port = self.first_port + ((n / k) % self.ports) as u16;
        SocketAddr::new(self.ips[(n % k) as usize], port)
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

/// The kernel's ephemeral port range (where the kernel itself would pick).
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
    use super::Sources;
    use std::net::SocketAddr;

    #[test]
    fn sources_take_every_address_with_one_port_then_the_next_port_and_wrap() {
        let ips = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        let s = Sources::new(ips, (40000, 40002), 0);
        let got: Vec<SocketAddr> = (0..8).map(|_| s.next()).collect();
        let want: Vec<SocketAddr> = [
            "127.0.0.1:40000",
            "127.0.0.2:40000",
            "127.0.0.1:40001",
            "127.0.0.2:40001",
            "127.0.0.1:40002",
            "127.0.0.2:40002",
            "127.0.0.1:40000",
            "127.0.0.2:40000",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }
}
