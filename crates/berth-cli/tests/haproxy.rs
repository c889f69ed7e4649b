//! Two `berth echo --proxy-protocol` instances behind a real HAProxy
//! (`deploy/haproxy.cfg`, `send-proxy-v2`): both get traffic, every byte
//! echoes exactly, and each instance sees the clients' own addresses, not
//! HAProxy's. Needs the `haproxy` binary (`.ci/run` installs it); without
//! it the test says so and passes, except under CI, where it fails.

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::*;

/// Clients connect from here, so their address differs from HAProxy's
/// (127.0.0.1) in what the instances see.
const CLIENT_IP: &str = "127.0.0.2";
const CLIENTS: usize = 24;

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy_available() -> bool {
    let found = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is missing under CI (.ci/run installs it)"
        );
        eprintln!("haproxy not installed: skipping (apt-get install haproxy)");
    }
    found
}

fn instance(engine: &str) -> Running {
    let mut cmd = Command::new(BERTH);
    cmd.args(["echo", "--proxy-protocol", "--listen", "127.0.0.1:0"])
        .args(["--io-threads", "1", "--engine", engine, "-v"])
        .env_remove("BERTH_ENGINE")
        .env_remove("RUST_LOG")
        .env_remove("BERTH_LOG");
    Running::spawn(cmd)
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Connect to `to` from CLIENT_IP, with timeouts.
fn client(to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(
        &format!("{CLIENT_IP}:0")
            .parse::<SocketAddr>()
            .unwrap()
            .into(),
    )?;
    s.connect_timeout(&to.into(), TIMEOUT)?;
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// The client addresses an instance's log reports for PROXY headers.
fn clients_seen(r: &mut Running) -> HashSet<SocketAddr> {
    r.collect_log()
        .iter()
        .filter(|l| l.contains("PROXY header"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("client="))
                .and_then(|a| a.parse().ok())
        })
        .collect()
}

fn two_instances_behind_haproxy_see_the_clients_addresses(engine: &str) {
    if !haproxy_available() {
        return;
    }
    let mut one = instance(engine);
    let mut two = instance(engine);
    let front = free_port();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy.cfg");
    let _haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f", config])
            .env("BERTH_FRONTEND", front.to_string())
            .env("BERTH_SERVER1", one.addr.to_string())
            .env("BERTH_SERVER2", two.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn haproxy"),
    );
    // Wait for HAProxy's frontend.
    let listening =
        eventually(|| TcpStream::connect_timeout(&front, Duration::from_secs(1)).is_ok());
    assert!(listening, "haproxy did not listen on {front}");
    let mut ours = HashSet::new();
    for i in 0..CLIENTS {
        let mut s = client(front).expect("connect through haproxy");
        ours.insert(s.local_addr().unwrap());
        let data: Vec<u8> = (0..4000u32).map(|b| (b * 7 + i as u32) as u8).collect();
        s.write_all(&data).unwrap();
        let mut back = vec![0; data.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, data, "client {i}: every byte echoes exactly");
    }
    // Every client is reported by one instance, with its own address.
    let (mut seen_one, mut seen_two) = (HashSet::new(), HashSet::new());
    eventually(|| {
        (seen_one, seen_two) = (clients_seen(&mut one), clients_seen(&mut two));
        ours.iter()
            .all(|c| seen_one.contains(c) || seen_two.contains(c))
    });
    let ours_seen = |seen: &HashSet<SocketAddr>| seen.intersection(&ours).count();
    assert_eq!(
        ours_seen(&seen_one) + ours_seen(&seen_two),
        CLIENTS,
        "each client seen once, with its own address: {seen_one:?} {seen_two:?}"
    );
    assert!(
        ours_seen(&seen_one) > 0 && ours_seen(&seen_two) > 0,
        "both instances served"
    );
    for seen in [&seen_one, &seen_two] {
        // Health checks come from HAProxy itself; clients from CLIENT_IP.
        assert!(
            seen.iter()
                .all(|a| a.ip().to_string() == "127.0.0.1" || ours.contains(a))
        );
    }
}

both_engines!(two_instances_behind_haproxy_see_the_clients_addresses);
