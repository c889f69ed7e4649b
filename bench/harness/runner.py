"""The plan of a comparison (mode x repetition x workload x server, servers in
a rotating order) and the loop that runs it, one fresh server per run."""

import shlex
import sys

from .measure import run_one
from .peers import BERTH, run_times
from .proc import PeerMissing, RunFailed
from .report import Cell, fnum


def servers_for(settings, w):
    """The servers workload w runs against: W2x runs its berth variant, and
    the peers only if W2 does not run (the report borrows their W2 cells)."""
    if w.berth is BERTH:
        return settings.peers
    runs_w2 = any(x.key == "W2" for x in settings.workloads)
    others = [] if runs_w2 else [p for p in settings.peers if p.name != "berth"]
    return ([w.berth] if any(p.name == "berth" for p in settings.peers) else []) + others


def rotated(servers, rep):
    """The servers in the order of repetition `rep`: each one starts a turn later."""
    if not servers:
        return servers
    k = rep % len(servers)
    return servers[k:] + servers[:k]


def plan(settings):
    """Every run, in order: (mode, repetition, workload, server)."""
    return [(mode, rep, w, p)
            for mode in settings.modes
            for rep in range(settings.reps)
            for w in settings.workloads
            for p in rotated(servers_for(settings, w), rep)]


def estimate_seconds(settings, runs):
    def one(w):
        if w.kind == "idle":
            return 4 + w.conns / 2000
        load = sum(run_times(settings, w)) + 1
        return 2 * (load + 0.5) if w.kind == "attack" else load
    return sum(one(w) for _, _, w, _ in runs)


def summary(w, r):
    """One line of progress for a finished run."""
    if w.kind == "idle":
        return f"{r['rss_per_conn']:,.0f} B/conn over {r['idle_conns']} conns"
    if w.kind == "attack":
        return (f"{r['alone_msgs_per_sec']:,.0f} -> {r['msgs_per_sec']:,.0f} msgs/s "
                f"(kept {fnum(r['kept'] and 100 * r['kept'])}%), memory +{r['growth'] / 2**20:.1f} MiB "
                f"(+{r['window_growth'] / 2**20:.1f} in the window), slowloris open "
                f"{r['slowloris_open']}, never-read {r['never_read_bytes'] / 1e6:.0f} MB, "
                f"attack ready {r['attack_ready_ms']:.0f} ms")
    cpu = (f"{fnum(r['cpu_us_per_msg'], 2)} (user {fnum(r['cpu_user_us_per_msg'], 2)} + "
           f"sys {fnum(r['cpu_sys_us_per_msg'], 2)})")
    if w.kind == "churn":
        return f"{r['conns_per_sec']:,.0f} conns/s, cpu {cpu} us/conn ({fnum(r['cpu_pct'])}%)"
    return f"{r['msgs_per_sec']:,.0f} msgs/s p99 {r['p99_us']:,.0f} us cpu {cpu} us/msg ({fnum(r['cpu_pct'])}%)"


def announce(settings, runs):
    print(f"bench/compare: {len(runs)} runs, about {estimate_seconds(settings, runs) / 60:.0f} min; "
          f"loadgen: {shlex.join(settings.loadgen)}", file=sys.stderr)


def run_all(settings, runs, results):
    """Run every planned run, filling results[(mode, workload key, server name)]
    with Cells; a server found missing once is not started again in that mode.
    KeyboardInterrupt passes through: results holds what was measured."""
    missing_peers = {}
    for i, (mode, rep, w, p) in enumerate(runs, 1):
        cell = results.setdefault((mode, w.key, p.name), Cell())
        tag = f"[{i}/{len(runs)}] {mode} {w.key} rep {rep + 1} {p.name}"
        if (mode, p.name) in missing_peers:
            cell.failures.append(missing_peers[(mode, p.name)])
            print(f"{tag}: missing ({missing_peers[(mode, p.name)]})", file=sys.stderr)
            continue
        try:
            r = run_one(settings, p, w, mode)
        except PeerMissing as e:
            missing_peers[(mode, p.name)] = str(e)
            cell.failures.append(str(e))
            print(f"{tag}: missing ({e})", file=sys.stderr)
            continue
        except (RunFailed, OSError, ValueError) as e:
            cell.failures.append(str(e))
            print(f"{tag}: failed ({e})", file=sys.stderr)
            continue
        cell.runs.append(r)
        print(f"{tag}: {summary(w, r)}", file=sys.stderr)
