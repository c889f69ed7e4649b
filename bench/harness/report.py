"""The report: one table per mode and workload, the machine and the setup,
the meaning of every column, and the hand-written conclusion, kept between
its markers when the file is regenerated."""

import shlex
import statistics
from dataclasses import dataclass, field

from .machine import BUSY_WARN, peer_versions
from .peers import BERTH, QUICK_DURATION, QUICK_WARMUP, WORKLOADS, run_times

CONCLUSION_START = "<!-- conclusion:start (written by a human; kept when the file is regenerated) -->"
CONCLUSION_END = "<!-- conclusion:end -->"
CONCLUSION_PLACEHOLDER = "_TODO (human): what do these numbers say about berth? Where does it win, where does it lose, and why?_"

EXPLANATIONS = """\
## What each result means

- **W1, 100 x 64 B ping-pong**: each connection sends one small message and
  waits for it before sending the next. Per-message overhead dominates:
  syscalls or ring submissions per message, wake-ups, scheduling. The p50
  latency is close to one loopback round trip plus the server's work.
- **W2, 100 x 64 B, depth 16**: sixteen messages in flight per connection, so
  several arrive in one read. Shows whether the server batches (one read and
  one write for many messages) and how it behaves under queueing.
- **W3, 1,000 x 4 KiB ping-pong**: many connections with medium messages:
  readiness/completion handling at scale and buffer management.
- **W4, 8 x 64 KiB streaming**: few connections, large messages, several in
  flight: raw copy bandwidth and how well the server keeps the socket
  buffers full (MB/s is the interesting column).
- **W5, idle connections**: userspace memory the server spends per open,
  idle connection (RSS growth / connections). Kernel socket memory is not
  included. A server that gives each connection its own read buffer pays
  for it here; one that lends buffers only while data is in flight does not.
- **W6, churn**: connections per second when every connection carries a
  single echo: accept path, per-connection setup and teardown costs.
- **W2x**: the W2 load against berth with two IO threads and no CPU pinning
  (it may also use the load generator's CPU); the peers' row is their
  single-threaded, pinned W2 result. This shows scaling, not efficiency.

Columns:
- **msgs/s**, **MB/s**: messages (of the workload's size) echoed per second
  over the measured window, after the warm-up; MB = 10^6 bytes, one way.
- **p50 / p99 / p99.9 µs**: latency from the moment the load generator
  queued a message to the moment its last byte came back.
- **CPU µs/msg**: server user+system CPU time (from /proc/PID/stat, 10 ms
  ticks) sampled inside the measured window, divided by the messages echoed
  in it. Lower is better; it is the fairest efficiency number when the load
  generator, not the server, is the bottleneck.
- **CPU %**: server CPU use in that window (100 % = one full core). Below
  ~95 % the server was not the bottleneck and throughput says more about
  the load generator than about the server.
- **errors**: mismatched echoes / failed connects / unexpected closes,
  summed over the repetitions. Anything but 0/0/0 makes that row suspect.
- **berth ÷ peer**: berth's median divided by the peer's. For msgs/s, MB/s
  and conns/s above 1 means berth is faster; for latency, CPU and memory
  below 1 means berth is better.
- **missing**: the server could not be started or measured (not built, no
  such subcommand yet, crashed); the reason is given.
"""


def median(vals):
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def fnum(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fratio(b, p):
    if b is None or p is None or p == 0:
        return "–"
    return f"{b / p:.2f}×"


@dataclass
class Cell:
    runs: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    def med(self, key):
        return median([r.get(key) for r in self.runs])

    def total(self, key):
        return sum(int(r.get(key) or 0) for r in self.runs)

    def errors(self):
        return f"{self.total('mismatches')}/{self.total('connect_errors')}/{self.total('closes')}"

    def missing(self):
        if self.runs:
            return None
        return "missing: " + (self.failures[-1] if self.failures else "not run")


def durations_text(settings):
    if settings.quick:
        return f"quick ({QUICK_DURATION} s measured after {QUICK_WARMUP} s warm-up)"
    if settings.duration or settings.warmup is not None:
        d, u = run_times(settings, WORKLOADS[0])
        return f"{d:g} s measured after {u:g} s warm-up (set on the command line)"
    return "per workload (10 s measured after 2 s warm-up)"


def rows_for(settings, results, mode, w):
    """(label, Cell) per row, berth first; W2x borrows the peers' W2 cells."""
    rows = [(w.berth.label, results.get((mode, w.key, w.berth.name), Cell()))]
    for p in settings.peers:
        if p.name == "berth":
            continue
        cell = results.get((mode, w.key, p.name))
        label = p.label
        if cell is None and w.berth is not BERTH:
            cell = results.get((mode, "W2", p.name))
            label += " (W2)"
        rows.append((label, cell or Cell()))
    return rows


def table(settings, results, mode, w):
    rows = rows_for(settings, results, mode, w)
    berth = rows[0][1]
    out = []
    if w.kind == "idle":
        out.append("| server | idle conns | RSS before (MiB) | RSS after (MiB) | bytes / idle conn | echo after | berth ÷ peer |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for i, (label, c) in enumerate(rows):
            if c.missing():
                out.append(f"| {label} | {c.missing()} |||||")
                continue
            mib = 1024 * 1024
            out.append("| {} | {} | {} | {} | {} | {} | {} |".format(
                label, fnum(c.med("idle_conns")), fnum(c.med("rss_before") / mib, 1),
                fnum(c.med("rss_after") / mib, 1), fnum(c.med("rss_per_conn")),
                c.runs[-1].get("alive", "–"),
                "–" if i == 0 else fratio(berth.med("rss_per_conn"), c.med("rss_per_conn"))))
        return out
    churn = w.kind == "churn"
    rate_key = "conns_per_sec" if churn else "msgs_per_sec"
    if churn:
        out.append("| server | conns/s | p50 µs | p99 µs | p99.9 µs | CPU µs/conn | CPU % | errors m/c/x | berth ÷ peer conns/s | berth ÷ peer CPU/conn |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        out.append("| server | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | CPU µs/msg | CPU % | errors m/c/x | berth ÷ peer msgs/s | berth ÷ peer p99 | berth ÷ peer CPU/msg |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, (label, c) in enumerate(rows):
        if c.missing():
            out.append(f"| {label} | {c.missing()} |" + "|" * (8 if churn else 10))
            continue
        cells = [label, fnum(c.med(rate_key))]
        if not churn:
            cells.append(fnum(c.med("mb_per_sec"), 1))
        cells += [fnum(c.med("p50_us")), fnum(c.med("p99_us")), fnum(c.med("p999_us")),
                  fnum(c.med("cpu_us_per_msg"), 2), fnum(c.med("cpu_pct")), c.errors()]
        if i == 0:
            cells += ["–"] * (2 if churn else 3)
        else:
            cells.append(fratio(berth.med(rate_key), c.med(rate_key)))
            if not churn:
                cells.append(fratio(berth.med("p99_us"), c.med("p99_us")))
            cells.append(fratio(berth.med("cpu_us_per_msg"), c.med("cpu_us_per_msg")))
        out.append("| " + " | ".join(cells) + " |")
    return out


def render(settings, results, info, finished):
    lines = ["# berth vs. peers: echo benchmarks", "",
             "Generated by `bench/compare`; regenerate with the command below. "
             "Only the conclusion section is written by hand.", ""]
    if "pyload" in " ".join(settings.loadgen):
        lines += ["> **Warning: these numbers come from `bench/pyload.py`, a Python test double "
                  "of the load generator. They measure pyload, not the servers. Do not publish them.**", ""]
    if not finished:
        lines += ["> **Interrupted: the run did not finish; tables are partial.**", ""]
    busy = info.get("busy_start")
    if busy is not None and busy > BUSY_WARN:
        lines += [f"> **Other processes kept {busy:.0%} of the CPUs busy just before the run: "
                  "they competed with the servers and the load generator, so expect noise.**", ""]
    lines += ["## Machine", "",
              f"- CPUs (nproc): {info['nproc']}",
              f"- CPU model: {info['cpu']}",
              f"- kernel: {info['kernel']}",
              f"- date: {info['date']}",
              "- CPU busy just before the run (1 s sample, all CPUs): "
              + ("unknown" if info.get("busy_start") is None else f"{info['busy_start']:.0%}"),
              f"- load average (1 min) before / after the run: {info['loadavg_start']:.2f} / "
              f"{info.get('loadavg_end', float('nan')):.2f}",
              f"- peers built with: {peer_versions()}", "",
              "## Command", "", "```", settings.command, "```", "",
              "## Setup", "",
              f"- servers pinned to CPU {settings.server_cpu}, load generator pinned to CPU {settings.load_cpu} "
              "(taskset), except the row that says unpinned;" if settings.server_cpu is not None else
              "- no CPU pinning (fewer than 2 CPUs or --no-pin);",
              f"- load generator: `{shlex.join(settings.loadgen)}` with --threads {settings.load_threads}"
              + (f", --rate {settings.rate}" if settings.rate else ", closed loop") + ";",
              f"- {settings.reps} repetition(s); within each one the servers run in turn, in an order "
              "that rotates between repetitions; every cell is the median over the repetitions;",
              f"- durations: {durations_text(settings)};",
              "- each run starts a fresh server on a fresh port and kills it afterwards.", ""]
    for mode in settings.modes:
        lines += [f"## Results: {mode} mode" + (" (1-byte length-prefixed packets)" if mode == "packet" else ""), ""]
        for w in settings.workloads:
            lines += [f"### {w.key}: {w.title}", ""]
            lines += table(settings, results, mode, w)
            lines.append("")
    lines += [EXPLANATIONS, "## Conclusion", "", CONCLUSION_START, settings.conclusion, CONCLUSION_END, ""]
    return "\n".join(lines)


def previous_conclusion(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return CONCLUSION_PLACEHOLDER
    a, b = text.find(CONCLUSION_START), text.find(CONCLUSION_END)
    if a < 0 or b < a:
        return CONCLUSION_PLACEHOLDER
    kept = text[a + len(CONCLUSION_START):b].strip()
    return kept or CONCLUSION_PLACEHOLDER
