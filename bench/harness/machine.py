"""The machine the run is on, and what the peers were built with (for the report)."""

import datetime
import os
import platform
import re
import subprocess
import time

from .peers import BENCH

BUSY_WARN = 0.10  # warn when other work keeps this share of the CPUs busy


def cpu_busy_fraction(seconds=1.0):
    """Share of all CPUs busy over `seconds`, from /proc/stat (0.0-1.0)."""
    def sample():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return sum(vals[:8]), idle  # guest time is already in user
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg()[0],
        "busy_start": cpu_busy_fraction(),
    }


def peer_versions():
    """tokio and monoio from the peers' Cargo.lock, gcc and liburing from the system."""
    out = []
    try:
        with open(os.path.join(BENCH, "peers", "rust", "Cargo.lock")) as f:
            lock = f.read()
        for name in ("tokio", "monoio"):
            m = re.search(rf'name = "{name}"\nversion = "([^"]+)"', lock)
            if m:
                out.append(f"{name} {m.group(1)}")
    except OSError:
        pass
    for argv, fmt in ((["gcc", "-dumpfullversion"], "gcc {}"),
                      (["dpkg-query", "-W", "-f=${Version}", "liburing-dev"], "liburing {}")):
        try:
            v = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
            if v:
                out.append(fmt.format(v))
        except (OSError, subprocess.SubprocessError):
            pass
    return ", ".join(out) or "unknown"
