"""One run: a fresh server, measured under load, churn or idle connections.

Server CPU per message: utime+stime of the server process from
/proc/PID/stat, sampled inside the load generator's measured window, divided
by the messages (in churn: connections) echoed in that window; and utime
(user mode: the server's own code) and stime (kernel mode) the same way,
each on its own. W5 (idle connections) is measured
here, without the load generator: RSS from /proc/PID/smaps_rollup before and
after opening the connections, divided by their number.

Every load run also samples the server's memory (VmRSS from
/proc/PID/status) where it samples its CPU, and its peak (VmHWM) at the
end. WA (under attack) runs the load twice, each time on a fresh server:
alone, then beside the load generator's attackers; memory growth is the
peak less the RSS the server had before the load, after one echo.
"""

import errno
import os
import random
import selectors
import socket
import subprocess
import time
from typing import NamedTuple

from .loadgen import ATTACK_KEYS, loadgen_argv, parse_loadgen_output
from .peers import run_times
from .proc import HOST, RunFailed, Server, kill_tree, log_tail, pinned, spawn

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# /proc readers.
# --------------------------------------------------------------------------

class CpuTicks(NamedTuple):
    """CPU time of a process so far, in clock ticks (1/CLK_TCK s)."""
    user: int  # utime: in user mode
    sys: int   # stime: in the kernel on its behalf

    def __sub__(self, earlier):
        return CpuTicks(self.user - earlier.user, self.sys - earlier.sys)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        # Fields 14 and 15 (utime, stime); the name in field 2 may hold spaces.
        fields = f.read().rsplit(")", 1)[1].split()
    return CpuTicks(int(fields[11]), int(fields[12]))


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RunFailed("cannot read the server's RSS")


def status_bytes(pid, field):
    """A size field of /proc/PID/status (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RunFailed(f"no {field} in /proc/{pid}/status")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------
# Load and churn: the load generator drives, we sample the server's CPU.
# --------------------------------------------------------------------------

def measure_load(settings, server, w, mode, attacked=False):
    """The load generator's figures for workload w (with its attackers if
    `attacked`), and the server's CPU and memory over its measured window."""
    duration, warmup = run_times(settings, w)
    argv = pinned(settings.load_cpu,
                  loadgen_argv(settings, w, server.addr, mode, duration, warmup, attacked))
    out_path = os.path.join(settings.tmp, "loadgen.out")
    err_path = os.path.join(settings.tmp, "loadgen.err")
    timeout = warmup + duration + 30 + w.conns / 100
    pid = server.pid
    # CPU window: inside [warmup, warmup + duration] of the load generator,
    # trimmed at both ends to allow for its connection set-up time.
    margin = min(0.5, 0.1 * duration)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        load = spawn(argv, stdout=out, stderr=err)
    try:
        time.sleep(max(0.0, t0 + warmup + margin - time.monotonic()))
        server.check_alive()
        c0, s0, m0 = cpu_ticks(pid), time.monotonic(), status_bytes(pid, "VmRSS")
        time.sleep(max(0.0, t0 + warmup + duration - margin - time.monotonic()))
        server.check_alive()
        c1, s1, m1 = cpu_ticks(pid), time.monotonic(), status_bytes(pid, "VmRSS")
        hwm = status_bytes(pid, "VmHWM")
        try:
            load.wait(timeout=max(1.0, t0 + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RunFailed(f"load generator timed out after {timeout:.0f}s")
    finally:
        kill_tree(load, grace=1.0)
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    failed = RunFailed(f"load generator exited {load.returncode}: {log_tail(err_path)}")
    if load.returncode != 0 and not attacked:
        raise failed
    try:
        r = parse_loadgen_output(stdout, w.kind == "churn", attacked)
    except RunFailed:
        if load.returncode != 0:
            raise failed
        raise
    # Under attack, nothing echoed to the good clients (the load generator's
    # failure) is a result: the attack took the whole server.
    if load.returncode != 0 and (r["messages"] > 0 or r["mismatches"] > 0):
        raise failed
    used = c1 - c0
    window = s1 - s0
    rate = r["conns_per_sec"] if w.kind == "churn" else r["msgs_per_sec"]

    def per_msg(ticks):
        """µs of CPU per message (per connection in churn) over the window."""
        return ticks / CLK_TCK * 1e6 / (rate * window) if rate > 0 and window > 0 else None

    cpu_s = (used.user + used.sys) / CLK_TCK
    r["cpu_pct"] = 100.0 * cpu_s / window if window > 0 else None
    r["cpu_us_per_msg"] = per_msg(used.user + used.sys)
    r["cpu_user_us_per_msg"] = per_msg(used.user)
    r["cpu_sys_us_per_msg"] = per_msg(used.sys)
    r["rss_window_start"], r["rss_window_end"], r["hwm"] = m0, m1, hwm
    server.check_alive()
    return r


# --------------------------------------------------------------------------
# Under attack: the same load alone and beside the attackers, each on a
# fresh server; throughput kept, and memory.
# --------------------------------------------------------------------------

def load_on_fresh_server(settings, peer, w, mode, attacked):
    """measure_load on a server of its own, with its RSS before the load
    (after one echo, so lazily initialised state is in it) as rss_base."""
    server = Server(settings, peer, mode)
    try:
        server.wait_ready()
        with socket.create_connection((HOST, server.port), timeout=5) as s:
            if not ping(s, mode):
                raise RunFailed("warm-up echo failed")
        time.sleep(0.2)
        base = status_bytes(server.pid, "VmRSS")
        r = measure_load(settings, server, w, mode, attacked)
        r["rss_base"] = base
        return r
    finally:
        server.stop()


def measure_attack(settings, peer, w, mode):
    """WA: w's load alone, then beside its attackers: one row of numbers."""
    runs = []
    for attacked, name in ((False, "alone"), (True, "attacked")):
        try:
            runs.append(load_on_fresh_server(settings, peer, w, mode, attacked))
        except RunFailed as e:
            raise RunFailed(f"{name}: {e}") from e
    alone, attacked = runs
    r = {k: attacked[k] for k in ATTACK_KEYS}
    r.update({
        "msgs_per_sec": attacked["msgs_per_sec"],
        "alone_msgs_per_sec": alone["msgs_per_sec"],
        "kept": attacked["msgs_per_sec"] / alone["msgs_per_sec"] if alone["msgs_per_sec"] else None,
        "p99_us": attacked["p99_us"] if attacked["messages"] else None,
        "alone_p99_us": alone["p99_us"],
        "cpu_pct": attacked["cpu_pct"],
        "rss_base": attacked["rss_base"],
        "hwm": attacked["hwm"],
        "growth": attacked["hwm"] - attacked["rss_base"],
        "alone_growth": alone["hwm"] - alone["rss_base"],
        "window_growth": attacked["rss_window_end"] - attacked["rss_window_start"],
        "attack_late": attacked["attack_ready_ms"] / 1000 > run_times(settings, w)[1],
    })
    # The good clients' errors in both runs.
    for k in ("mismatches", "connect_errors", "closes"):
        r[k] = int(alone[k]) + int(attacked[k])
    return r


# --------------------------------------------------------------------------
# Idle connections: opened here, the server's RSS before and after.
# --------------------------------------------------------------------------

def ping(sock, mode):
    msg = b"\x05ping" if mode == "packet" else b"ping"
    sock.settimeout(5)
    sock.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = sock.recv(len(msg) - len(got))
        if not chunk:
            break
        got += chunk
    return got == msg


def measure_idle(settings, server, w, mode):
    pid = server.pid
    want = min(w.conns, settings.idle_cap)
    # One echoed connection first, so lazily initialised state is in the baseline.
    with socket.create_connection((HOST, server.port), timeout=5) as s:
        if not ping(s, mode):
            raise RunFailed("warm-up echo failed")
    time.sleep(0.3)
    base_fds = fd_count(pid)
    rss0 = rss_bytes(pid)
    socks, errors = [], 0
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + 60 + want / 200
    try:
        while len(socks) + errors < want:
            if time.monotonic() > deadline:
                raise RunFailed("opening idle connections timed out")
            batch = []
            for _ in range(min(256, want - len(socks) - errors)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                if s.connect_ex((HOST, server.port)) not in (0, errno.EINPROGRESS):
                    s.close()
                    errors += 1
                    continue
                sel.register(s, selectors.EVENT_WRITE)
                batch.append(s)
            pending, end = set(batch), time.monotonic() + 10
            while pending and time.monotonic() < end:
                for key, _ in sel.select(timeout=0.5):
                    pending.discard(key.fileobj)
                    sel.unregister(key.fileobj)
            for s in batch:
                if s in pending:
                    sel.unregister(s)
                if s in pending or s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    s.close()
                    errors += 1
                else:
                    socks.append(s)
            # Let the server keep up so the accept queue never overflows.
            while len(socks) - (fd_count(pid) - base_fds) > 512 and time.monotonic() < deadline:
                server.check_alive()
                time.sleep(0.02)
        end = time.monotonic() + 30
        while fd_count(pid) - base_fds < len(socks) and time.monotonic() < end:
            server.check_alive()
            time.sleep(0.05)
        accepted = fd_count(pid) - base_fds
        time.sleep(0.5)
        server.check_alive()
        rss1 = rss_bytes(pid)
        # Are the connections really served? Echo on a few of them.
        sample = random.Random(0).sample(socks, min(10, len(socks)))
        alive = 0
        for s in sample:
            try:
                s.setblocking(True)
                alive += ping(s, mode)
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
        sel.close()
    if not socks:
        raise RunFailed("no idle connection could be opened")
    return {
        "idle_conns": len(socks),
        "accepted": accepted,
        "connect_errors": errors,
        "rss_before": rss0,
        "rss_after": rss1,
        "rss_per_conn": (rss1 - rss0) / len(socks),
        "alive": f"{alive}/{len(sample)}",
        "mismatches": len(sample) - alive,
        "closes": 0,
    }


def run_one(settings, peer, w, mode):
    """Start a fresh server, measure workload w against it, stop it: the
    run's numbers (WA: two fresh servers, one after the other)."""
    if w.kind == "attack":
        return measure_attack(settings, peer, w, mode)
    server = Server(settings, peer, mode)
    try:
        server.wait_ready()
        if w.kind == "idle":
            return measure_idle(settings, server, w, mode)
        return measure_load(settings, server, w, mode)
    finally:
        server.stop()
