"""What is measured: the servers (peers) and the workloads. Edit here to adapt.

Servers under test (each started fresh for every run, on its own port):
    berth     target/release/berth echo|packet-echo --io-threads 1 --listen A
    tokio     bench/peers/bin/tokio-echo  --listen A --mode echo|packet
    monoio    bench/peers/bin/monoio-echo --listen A --mode echo|packet
    c-epoll   bench/peers/bin/echo_epoll  --listen A --mode echo|packet
    c-uring   bench/peers/bin/echo_uring  --listen A --mode echo|packet

The peers are built by bench/peers/build.sh, berth by
`cargo build --release -p berth-cli`.
"""

import os
from dataclasses import dataclass

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
PEER_BIN = os.path.join(BENCH, "peers", "bin")

PEER_EXE = {"tokio": "tokio-echo", "monoio": "monoio-echo",
            "c-epoll": "echo_epoll", "c-uring": "echo_uring"}


@dataclass(frozen=True)
class Peer:
    name: str   # short key, used in --peers and the tables
    label: str  # what the table calls it
    pinned: bool = True  # run under taskset on the server CPU
    io_threads: int = 1  # berth only

    def command(self, settings, mode, addr):
        """argv that starts this server, or None if it has no such mode."""
        if self.name.startswith("berth"):
            sub = "echo" if mode == "echo" else "packet-echo"
            exe = settings.berth_b if self.name == "berth-b" else settings.berth
            return [exe, sub, "--io-threads", str(self.io_threads), "--listen", addr]
        return [os.path.join(PEER_BIN, PEER_EXE[self.name]), "--listen", addr, "--mode", mode]


BERTH = Peer("berth", "berth (1 IO thread)")
BERTH_2T = Peer("berth-2t", "berth (--io-threads 2, unpinned)", pinned=False, io_threads=2)
PEERS = [
    BERTH,
    Peer("tokio", "tokio (current-thread)"),
    Peer("monoio", "monoio (io_uring)"),
    Peer("c-epoll", "C epoll"),
    Peer("c-uring", "C liburing"),
]


def berth_b(path):
    """A second berth build, measured as one more peer: an interleaved A/B."""
    return Peer("berth-b", f"berth B ({path})")


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: str  # "load", "idle", "churn" or "attack"
    conns: int = 0
    size: int = 64
    depth: int = 1
    duration: int = 10
    warmup: int = 2
    berth: Peer = BERTH  # which berth configuration this row measures
    # "attack": the load runs twice on fresh servers, alone and beside these
    # attackers (opened by the load generator, see ATTACK_RECONNECT).
    slowloris: int = 0
    never_read: int = 0
    quick_warmup: int = 0  # a --quick run warms up at least this long


# WA's attackers reopen the connections a server closes, as a real attack
# would (`berth bench --attack-reconnect`), so a server that sheds them
# faces the same number again and again.
ATTACK_RECONNECT = True
# What berth must show under attack: its good clients keep at least this
# share of their unattacked msgs/s, and its memory stops growing: RSS at the
# end of the attacked window at most ATTACK_PLATEAU_MIB above its start.
ATTACK_KEEP = 0.80
ATTACK_PLATEAU_MIB = 1.0


WORKLOADS = [
    Workload("W1", "100 connections x 64 B ping-pong (depth 1)", "load", 100, 64, 1),
    Workload("W2", "100 connections x 64 B, 16 messages in flight each", "load", 100, 64, 16),
    Workload("W3", "1,000 connections x 4 KiB ping-pong", "load", 1000, 4096, 1),
    Workload("W4", "8 connections streaming 64 KiB messages (depth 4)", "load", 8, 65536, 4),
    Workload("W5", "10,000 idle connections: server memory per connection", "idle", 10000),
    Workload("W6", "churn: connect, one 64 B echo, close (50 at a time)", "churn", 50, 64, 1),
    Workload("W2x", "W2 with berth --io-threads 2, unpinned (peers as in W2)", "load", 100, 64, 16,
             berth=BERTH_2T),
    # Opening 2,010 attacker connections takes the load generator up to a
    # second or so on a busy machine: even --quick warms up for 2 s.
    Workload("WA", "W2 under attack: 2,000 slowloris and 10 never-reading connections beside it",
             "attack", 100, 64, 16, slowloris=2000, never_read=10, quick_warmup=2),
]

DEFAULT_IDLE_CONNS = 10000
QUICK_DURATION, QUICK_WARMUP = 2, 1


def with_idle_conns(w, conns):
    """Workload w with `conns` idle connections (W5 only; others as they are)."""
    if w.kind != "idle":
        return w
    return Workload(w.key, w.title.replace("10,000", f"{conns:,}"), w.kind, conns)


def run_times(settings, w):
    """(measured seconds, warm-up seconds) of one run of workload w."""
    if settings.quick:
        return QUICK_DURATION, max(QUICK_WARMUP, w.quick_warmup)
    duration = settings.duration or w.duration
    return duration, settings.warmup if settings.warmup is not None else w.warmup


def repo_path(path):
    """A binary path given on the command line: relative ones are relative to the repository root."""
    return path if os.path.isabs(path) else os.path.join(REPO, path)
