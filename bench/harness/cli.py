"""The command line of bench/compare: flags -> Settings, then plan, run, report."""

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile

from . import proc
from .loadgen import check_loadgen, resolve_paths
from .machine import BUSY_WARN, machine_info
from .peers import (DEFAULT_IDLE_CONNS, PEERS, QUICK_DURATION, QUICK_WARMUP, WORKLOADS, berth_b,
                    repo_path, with_idle_conns)
from .report import Template, previous_conclusion, previous_tail, render
from .runner import announce, plan, run_all
from .settings import Settings


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/compare",
        description="Run berth and its peer echo servers under the same loads; print and "
                    "optionally write a markdown report (see bench/README.md).")
    ap.add_argument("--berth", default="target/release/berth",
                    help="berth binary under test (default: %(default)s, relative to the repo root)")
    ap.add_argument("--berth-b", metavar="PATH", default=None,
                    help="a second berth binary, run as one more peer (\"berth B\"): an A/B of two builds "
                         "in one interleaved run; the load generator stays --loadgen (default: --berth)")
    ap.add_argument("--loadgen", default=None,
                    help='load generator command (default: "BERTH bench"); e.g. "python3 bench/pyload.py"')
    ap.add_argument("--mode", choices=["echo", "packet", "both"], default="echo")
    ap.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS),
                    help="comma-separated subset of %(default)s")
    ap.add_argument("--peers", default=",".join(p.name for p in PEERS),
                    help="comma-separated subset of %(default)s")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per workload (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_DURATION} s runs after {QUICK_WARMUP} s warm-up, 1 repetition")
    ap.add_argument("--duration", type=float, default=None, metavar="SECS",
                    help="measured seconds of every load run (default: the workload's, 10)")
    ap.add_argument("--warmup", type=float, default=None, metavar="SECS",
                    help="warm-up seconds before measuring (default: the workload's, 2)")
    ap.add_argument("--out", metavar="FILE", help="(re)write this markdown report, e.g. BENCHMARKS.md")
    ap.add_argument("--raw", metavar="FILE", help="also write every run's raw numbers as JSON")
    ap.add_argument("--load-threads", type=int, default=1, help="--threads for the load generator (default 1)")
    ap.add_argument("--rate", type=float, default=0.0, help="pass --rate MSGS_PER_SEC to the load generator")
    ap.add_argument("--idle-conns", type=int, default=None, help="W5 connection count (default 10000)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset at all")
    ap.add_argument("--base-port", type=int, default=5101, help="ports used: BASE..BASE+899")
    args = ap.parse_args(argv)
    if not 1 <= args.reps <= 50:
        ap.error("--reps must be 1..50")
    if args.duration is not None and not 1 <= args.duration <= 600:
        ap.error("--duration must be 1..600 seconds")
    if args.warmup is not None and not 0 <= args.warmup <= 60:
        ap.error("--warmup must be 0..60 seconds")
    if not 1 <= args.load_threads <= 64:
        ap.error("--load-threads must be 1..64")
    if not 1024 <= args.base_port <= 65535 - 900:
        ap.error("--base-port out of range")
    if args.idle_conns is not None and not 1 <= args.idle_conns <= DEFAULT_IDLE_CONNS:
        ap.error("--idle-conns must be 1..10000")
    return args


def pick(kind, listed, known):
    """The entries of a comma-separated list, looked up by name; exits on an unknown one."""
    names = [n.strip() for n in listed.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        sys.exit(f"bench/compare: unknown {kind}(s) {', '.join(bad)} (known: {', '.join(known)})")
    return [known[n] for n in names]


def cpus_for(args):
    """(server CPU, load generator CPU), or (None, None) for no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and shutil.which("taskset") is None:
        sys.exit("bench/compare: taskset not found (apt-get install -y util-linux), or pass --no-pin")
    if args.no_pin or len(cpus) < 2:
        if not args.no_pin:
            print("bench/compare: fewer than 2 CPUs, running without pinning", file=sys.stderr)
        return None, None
    if args.server_cpu not in cpus or args.load_cpu not in cpus or args.server_cpu == args.load_cpu:
        sys.exit(f"bench/compare: --server-cpu/--load-cpu must be two different CPUs of {cpus}")
    return args.server_cpu, args.load_cpu


def settings_from(args, argv, template):
    """The Settings of this invocation; exits with a message on a bad flag."""
    berth = repo_path(args.berth)
    workloads = pick("workload", args.workloads, {w.key: w for w in WORKLOADS})
    peers = pick("peer", args.peers, {p.name: p for p in PEERS})
    if args.berth_b:
        peers.append(berth_b(args.berth_b))
    server_cpu, load_cpu = cpus_for(args)

    soft = proc.raise_nofile()
    # Each idle connection costs one fd here and one in the server.
    idle_cap = max(1, min(args.idle_conns or DEFAULT_IDLE_CONNS, soft - 200))
    if any(w.kind == "idle" for w in workloads) and idle_cap < (args.idle_conns or DEFAULT_IDLE_CONNS):
        print(f"bench/compare: open-files limit {soft}: W5 capped at {idle_cap} connections", file=sys.stderr)
    if args.idle_conns:
        workloads = [with_idle_conns(w, args.idle_conns) for w in workloads]

    return Settings(
        command=shlex.join(["bench/compare"] + argv),
        modes=["echo", "packet"] if args.mode == "both" else [args.mode],
        workloads=workloads,
        peers=peers,
        reps=1 if args.quick else args.reps,
        quick=args.quick,
        duration=args.duration,
        warmup=args.warmup,
        berth=berth,
        berth_b=repo_path(args.berth_b) if args.berth_b else None,
        loadgen=resolve_paths(shlex.split(args.loadgen)) if args.loadgen else [berth, "bench"],
        load_threads=args.load_threads,
        rate=args.rate,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        idle_cap=idle_cap,
        ports=proc.Ports(args.base_port),
        conclusion=previous_conclusion(args.out, template) if args.out else template.fill("conclusion-placeholder"),
    )


def write_raw(path, settings, info, results):
    """--raw: every run's numbers and every failure, as JSON."""
    with open(path, "w") as f:
        json.dump({"machine": info, "command": settings.command,
                   "results": [{"mode": m, "workload": k, "server": n, "runs": c.runs, "failures": c.failures}
                               for (m, k, n), c in results.items()]}, f, indent=1)


def main(argv):
    args = parse_args(argv)
    try:
        template = Template()  # read now: a broken template should not wait for the end of a run
    except (OSError, ValueError) as e:
        sys.exit(f"bench/compare: report template: {e}")
    settings = settings_from(args, argv, template)
    if any(w.kind != "idle" for w in settings.workloads):
        problem = check_loadgen(settings.loadgen)
        if problem:
            sys.exit(f"bench/compare: load generator `{shlex.join(settings.loadgen)}` does not run: {problem}\n"
                     "  build it, or point --loadgen at another one with the same JSON contract,\n"
                     '  e.g. --loadgen "python3 bench/pyload.py" (a test double, see its docstring)')

    info = machine_info()
    runs = plan(settings)
    announce(settings, runs)
    if info["busy_start"] is not None and info["busy_start"] > BUSY_WARN:
        print(f"bench/compare: warning: {info['busy_start']:.0%} of the CPUs are busy before we start; "
              "other work on this machine will make the numbers noisy", file=sys.stderr)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    results, finished = {}, False
    settings.tmp = tempfile.mkdtemp(prefix="berth-compare-")
    try:
        run_all(settings, runs, results)
        finished = True
    except KeyboardInterrupt:
        print("bench/compare: interrupted; writing what was measured", file=sys.stderr)
    finally:
        proc.kill_all()
        shutil.rmtree(settings.tmp, ignore_errors=True)

    info["loadavg_end"] = os.getloadavg()[0]
    report = render(settings, results, info, finished, template)
    print(report)
    if args.out:
        tail = previous_tail(args.out)
        with open(args.out, "w") as f:
            f.write(report)
            if tail:
                f.write("\n" + tail)
        print(f"bench/compare: wrote {args.out}", file=sys.stderr)
    if args.raw:
        write_raw(args.raw, settings, info, results)
    return 0 if finished else 130
