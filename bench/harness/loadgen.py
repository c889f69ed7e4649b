"""The load generator: its command line and its JSON (the only module that knows them).

The load generator is any program with the `berth bench` command line that
prints one JSON object; --loadgen picks it. The contract:

    LOADGEN --addr 127.0.0.1:PORT --conns N --size BYTES --depth D
            --duration SECS --warmup SECS [--rate MSGS_PER_SEC]
            --mode echo|packet --threads T --json
        -> {"messages": int, "msgs_per_sec": float, "mb_per_sec": float,
            "p50_us": float, "p99_us": float, "p999_us": float,
            "max_us": float, "mismatches": int, "connect_errors": int,
            "closes": int}
    LOADGEN --churn (same flags) -> the same plus {"conns_per_sec": float}
    LOADGEN (load flags) --slowloris N --never-read M [--attack-reconnect]
        -> the same plus what the attackers did: ATTACK_KEYS below

Only loadgen_argv() builds these flags: adapt it here.
"""

import json
import os
import subprocess

from .peers import ATTACK_RECONNECT, REPO
from .proc import RunFailed

REQUIRED_KEYS = ["messages", "msgs_per_sec", "mb_per_sec", "p50_us", "p99_us",
                 "p999_us", "max_us", "mismatches", "connect_errors", "closes"]
ATTACK_KEYS = ["slowloris_open", "slowloris_closed", "slowloris_reconnects",
               "slowloris_connect_errors", "slowloris_bytes", "never_read_open",
               "never_read_closed", "never_read_reconnects", "never_read_connect_errors",
               "never_read_bytes", "attack_ready_ms"]


def loadgen_argv(settings, w, addr, mode, duration, warmup, attacked=False):
    """The load generator's argv for workload w; with `attacked`, its
    attackers (w.slowloris, w.never_read) run beside the load."""
    argv = list(settings.loadgen)
    if w.kind == "churn":
        argv.append("--churn")
    argv += ["--addr", addr, "--conns", str(w.conns), "--size", str(w.size),
             "--depth", str(w.depth), "--duration", str(duration),
             "--warmup", str(warmup), "--mode", mode,
             "--threads", str(settings.load_threads), "--json"]
    if settings.rate and w.kind in ("load", "attack"):
        argv += ["--rate", str(settings.rate)]
    if attacked:
        argv += ["--slowloris", str(w.slowloris), "--never-read", str(w.never_read)]
        if ATTACK_RECONNECT:
            argv.append("--attack-reconnect")
    return argv


def parse_loadgen_output(text, churn, attacked=False):
    """The last line of stdout that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            wanted = REQUIRED_KEYS + (["conns_per_sec"] if churn else []) + (ATTACK_KEYS if attacked else [])
            missing = [k for k in wanted if k not in obj]
            if missing:
                raise RunFailed("load generator JSON lacks " + ", ".join(missing))
            return obj
    raise RunFailed("load generator printed no JSON object")


def check_loadgen(loadgen):
    """None if `loadgen --help` runs, else why not."""
    try:
        r = subprocess.run(loadgen + ["--help"], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{e}"
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {r.returncode}"
    return None


def resolve_paths(words):
    """Makes relative file arguments of --loadgen absolute: relative to the
    current directory if they exist there, else to the repository root."""
    out = []
    for w in words:
        if not w.startswith("-") and not os.path.isabs(w) and os.sep in w:
            if os.path.exists(w):
                w = os.path.abspath(w)
            elif os.path.exists(os.path.join(REPO, w)):
                w = os.path.join(REPO, w)
        out.append(w)
    return out
