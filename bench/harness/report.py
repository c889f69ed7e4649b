"""The report: one table per mode and workload, the machine and the setup,
the meaning of every column, and the hand-written conclusion, kept between
its markers when the file is regenerated."""

import os
import re
import shlex
import statistics
import string
from dataclasses import dataclass, field

from .machine import BUSY_WARN, peer_versions
from .peers import BENCH, BERTH, QUICK_DURATION, QUICK_WARMUP, WORKLOADS, run_times

TEMPLATE = os.path.join(BENCH, "report_template.md")
PART = re.compile(r"<!-- part: ([\w-]+) -->")
PARTS = ["report", "notice-pyload", "notice-interrupted", "notice-busy", "pinned", "unpinned",
         "durations-quick", "durations-given", "durations-default", "results-echo", "results-packet",
         "conclusion-placeholder"]
CONCLUSION_START = "<!-- conclusion:start (written by a human; kept when the file is regenerated) -->"
CONCLUSION_END = "<!-- conclusion:end -->"


# --------------------------------------------------------------------------
# The template: named parts, $names filled in.
# --------------------------------------------------------------------------

class Template:
    """bench/report_template.md, cut into its parts (see the comment at its top)."""

    def __init__(self, path=TEMPLATE):
        with open(path, encoding="utf-8") as f:
            pieces = PART.split(f.read())
        # pieces: [preamble, name, text, name, text, ...]
        self.parts = {name: text.strip("\n") for name, text in zip(pieces[1::2], pieces[2::2])}
        lacking = [name for name in PARTS if name not in self.parts]
        if lacking:
            raise ValueError(f"{path}: no part {', '.join(lacking)}")
        report = self.parts["report"]
        if CONCLUSION_START not in report or CONCLUSION_END not in report:
            raise ValueError(f"{path}: the report part lacks the conclusion markers")

    def fill(self, part, **values):
        """Part `part` with `values` filled in: a string replaces $name where it
        stands; a list of lines replaces a line that is only $name."""
        out = []
        for line in self.parts[part].split("\n"):
            name = line[1:] if line.startswith("$") else None
            if isinstance(values.get(name), list):
                out += values[name]
            else:
                out.append(string.Template(line).substitute(values))
        return "\n".join(out)


def previous_conclusion(path, template):
    """The hand-written conclusion of the report at `path`, or the placeholder."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return template.fill("conclusion-placeholder")
    a, b = text.find(CONCLUSION_START), text.find(CONCLUSION_END)
    if a < 0 or b < a:
        return template.fill("conclusion-placeholder")
    kept = text[a + len(CONCLUSION_START):b].strip()
    return kept or template.fill("conclusion-placeholder")


# --------------------------------------------------------------------------
# Numbers and tables.
# --------------------------------------------------------------------------

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


def durations_text(settings, template):
    if settings.quick:
        return template.fill("durations-quick", duration=QUICK_DURATION, warmup=QUICK_WARMUP)
    d, u = run_times(settings, WORKLOADS[0])
    given = settings.duration or settings.warmup is not None
    return template.fill("durations-given" if given else "durations-default", duration=f"{d:g}", warmup=f"{u:g}")


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


# --------------------------------------------------------------------------
# The whole report.
# --------------------------------------------------------------------------

def notices(settings, info, finished, template):
    """Warnings shown above everything else, each a paragraph."""
    out = []
    if "pyload" in " ".join(settings.loadgen):
        out += [template.fill("notice-pyload"), ""]
    if not finished:
        out += [template.fill("notice-interrupted"), ""]
    busy = info.get("busy_start")
    if busy is not None and busy > BUSY_WARN:
        out += [template.fill("notice-busy", busy=f"{busy:.0%}"), ""]
    return out


def results_lines(settings, results, template):
    out = []
    for mode in settings.modes:
        out += [template.fill(f"results-{mode}"), ""]
        for w in settings.workloads:
            out += [f"### {w.key}: {w.title}", ""]
            out += table(settings, results, mode, w)
            out.append("")
    return out


def render(settings, results, info, finished, template):
    busy = info.get("busy_start")
    if settings.server_cpu is not None:
        pinning = template.fill("pinned", server_cpu=settings.server_cpu, load_cpu=settings.load_cpu)
    else:
        pinning = template.fill("unpinned")
    return template.fill(
        "report",
        notices=notices(settings, info, finished, template),
        nproc=info["nproc"],
        cpu=info["cpu"],
        kernel=info["kernel"],
        date=info["date"],
        busy="unknown" if busy is None else f"{busy:.0%}",
        loadavg_start=f"{info['loadavg_start']:.2f}",
        loadavg_end=f"{info.get('loadavg_end', float('nan')):.2f}",
        peer_versions=peer_versions(),
        command=settings.command,
        pinning=pinning,
        loadgen=shlex.join(settings.loadgen),
        load_threads=settings.load_threads,
        pacing=f"--rate {settings.rate}" if settings.rate else "closed loop",
        reps=settings.reps,
        durations=durations_text(settings, template),
        results=results_lines(settings, results, template),
        conclusion=settings.conclusion.split("\n"),
    ) + "\n"
