"""One run: a fresh server, measured under load, churn or idle connections.

Server CPU per message: utime+stime of the server process from
/proc/PID/stat, sampled inside the load generator's measured window, divided
by the messages (in churn: connections) echoed in that window; and utime
(user mode: the server's own code) and stime (kernel mode) the same way,
each on its own. W5 (idle connections) is measured
here, without the load generator: RSS from /proc/PID/smaps_rollup before and
after opening the connections, divided by their number.
"""

import errno
import os
import random
import selectors
import socket
import subprocess
import time
from typing import NamedTuple

from .loadgen import loadgen_argv, parse_loadgen_output
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


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------
# Load and churn: the load generator drives, we sample the server's CPU.
# --------------------------------------------------------------------------

def measure_load(settings, server, w, mode):
    duration, warmup = run_times(settings, w)
    argv = pinned(settings.load_cpu, loadgen_argv(settings, w, server.addr, mode, duration, warmup))
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
        c0, s0 = cpu_ticks(pid), time.monotonic()
        time.sleep(max(0.0, t0 + warmup + duration - margin - time.monotonic()))
        server.check_alive()
        c1, s1 = cpu_ticks(pid), time.monotonic()
        try:
            load.wait(timeout=max(1.0, t0 + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RunFailed(f"load generator timed out after {timeout:.0f}s")
    finally:
        kill_tree(load, grace=1.0)
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    if load.returncode != 0:
        raise RunFailed(f"load generator exited {load.returncode}: {log_tail(err_path)}")
    r = parse_loadgen_output(stdout, w.kind == "churn")
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
    server.check_alive()
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
    """Start a fresh server, measure workload w against it, stop it: the run's numbers."""
    server = Server(settings, peer, mode)
    try:
        server.wait_ready()
        if w.kind == "idle":
            return measure_idle(settings, server, w, mode)
        return measure_load(settings, server, w, mode)
    finally:
        server.stop()
