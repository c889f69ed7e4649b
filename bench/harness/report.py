"""The report: bench/report_template.md (the prose: machine, setup, what
every column means) filled in with one table per mode and workload, and the
hand-written conclusion of the previous report, kept between its markers."""

import os
import re
import shlex
import statistics
import string
from dataclasses import dataclass, field

from .machine import BUSY_WARN, peer_versions
from .peers import (ATTACK_KEEP, ATTACK_PLATEAU_MIB, BENCH, BERTH, QUICK_DURATION, QUICK_WARMUP,
                    WORKLOADS, run_times)

TEMPLATE = os.path.join(BENCH, "report_template.md")
PART = re.compile(r"<!-- part: ([\w-]+) -->")
PARTS = ["report", "notice-pyload", "notice-interrupted", "notice-busy", "pinned", "unpinned",
         "durations-quick", "durations-quick-longer", "durations-given", "durations-default", "results-echo", "results-packet",
         "attack-yes", "attack-no", "attack-why-kept", "attack-why-growing", "attack-late",
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


def previous_tail(path):
    """What follows the conclusion in the old report (other benchmarks'
    sections, such as bench/pop3's), kept as it is."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    b = text.find(CONCLUSION_END)
    return "" if b < 0 else text[b + len(CONCLUSION_END):].lstrip("\n")


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
    """The median of the numbers among vals, or None if there are none."""
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def fnum(v, digits=0):
    """v with thousands separators and `digits` decimals; "–" for None."""
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fratio(b, p):
    """berth's figure b over a peer's p, as "1.23×"; "–" if either is missing."""
    if b is None or p is None or p == 0:
        return "–"
    return f"{b / p:.2f}×"


@dataclass
class Cell:
    """One server's results for one workload in one mode: a run's numbers per
    repetition that succeeded, and why the others failed."""
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
    """How long each run measured, for the setup section."""
    if settings.quick:
        text = template.fill("durations-quick", duration=QUICK_DURATION, warmup=QUICK_WARMUP)
        for w in settings.workloads:
            if w.quick_warmup > QUICK_WARMUP:
                text += template.fill("durations-quick-longer", key=w.key, warmup=w.quick_warmup)
        return text
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


def median_of(key, digits=0, scale=1):
    """A column's value: the median of one figure over a cell's runs."""
    def value(c):
        v = c.med(key)
        return fnum(None if v is None else v / scale, digits)
    return value


def ratio_of(key):
    """A "berth ÷ peer" column's value: berth's median over the peer's."""
    return lambda c, berth: fratio(berth.med(key), c.med(key))


MIB = 1024 * 1024


def attack_verdict(c, template):
    """Whether a server's WA cell meets berth's requirement: its good clients
    keep ATTACK_KEEP of their throughput and its memory stops growing."""
    if any(r.get("attack_late") for r in c.runs):
        ready = max(r["attack_ready_ms"] for r in c.runs) / 1000
        return template.fill("attack-late", ready=f"{ready:.1f}")
    kept, growing = c.med("kept"), c.med("window_growth")
    why = []
    if kept is None or kept < ATTACK_KEEP:
        why.append(template.fill("attack-why-kept", kept=fnum(kept and 100 * kept)))
    if growing is None or growing > ATTACK_PLATEAU_MIB * MIB:
        why.append(template.fill("attack-why-growing", growth=fnum(growing and growing / MIB, 1)))
    if why:
        return template.fill("attack-no", why="; ".join(why))
    return template.fill("attack-yes")


def attack_columns(template):
    """WA's columns: the load alone and attacked, memory, what the attack did."""
    def kept(c):
        v = c.med("kept")
        return "–" if v is None else f"{100 * v:.0f} %"

    def slowloris(c):
        return f"{fnum(c.med('slowloris_open'))} / {fnum(c.med('slowloris_closed'))}"

    return [("msgs/s alone", median_of("alone_msgs_per_sec")),
            ("msgs/s attacked", median_of("msgs_per_sec")),
            ("kept", kept),
            ("p99 µs alone", median_of("alone_p99_us")),
            ("p99 µs attacked", median_of("p99_us")),
            ("RSS before (MiB)", median_of("rss_base", 1, MIB)),
            ("growth alone (MiB)", median_of("alone_growth", 1, MIB)),
            ("growth attacked (MiB)", median_of("growth", 1, MIB)),
            ("growth in window (MiB)", median_of("window_growth", 1, MIB)),
            ("slowloris open / closed", slowloris),
            ("never-read MB in", median_of("never_read_bytes", 0, 1e6)),
            ("attack ready s", median_of("attack_ready_ms", 1, 1000)),
            ("errors m/c/x", Cell.errors),
            (f"≥ {ATTACK_KEEP:.0%} kept, bounded", lambda c: attack_verdict(c, template))]


def columns(kind, template):
    """(heading, value of a cell) per column, then (heading, ratio of berth to
    a cell) per "berth ÷ peer" column, for workloads of this kind."""
    if kind == "attack":
        return attack_columns(template), []
    if kind == "idle":
        values = [("idle conns", median_of("idle_conns")),
                  ("RSS before (MiB)", median_of("rss_before", 1, MIB)),
                  ("RSS after (MiB)", median_of("rss_after", 1, MIB)),
                  ("bytes / idle conn", median_of("rss_per_conn")),
                  ("echo after", lambda c: c.runs[-1].get("alive", "–"))]
        return values, [("berth ÷ peer", ratio_of("rss_per_conn"))]
    churn = kind == "churn"
    per, rate, rate_key = ("conn", "conns/s", "conns_per_sec") if churn else ("msg", "msgs/s", "msgs_per_sec")
    values = [(rate, median_of(rate_key))]
    if not churn:
        values.append(("MB/s", median_of("mb_per_sec", 1)))
    values += [("p50 µs", median_of("p50_us")),
               ("p99 µs", median_of("p99_us")),
               ("p99.9 µs", median_of("p999_us")),
               (f"CPU µs/{per}", median_of("cpu_us_per_msg", 2)),
               (f"user µs/{per}", median_of("cpu_user_us_per_msg", 2)),
               (f"sys µs/{per}", median_of("cpu_sys_us_per_msg", 2)),
               ("CPU %", median_of("cpu_pct")),
               ("errors m/c/x", Cell.errors)]
    ratios = [(f"berth ÷ peer {rate}", ratio_of(rate_key))]
    if not churn:
        ratios.append(("berth ÷ peer p99", ratio_of("p99_us")))
    ratios.append((f"berth ÷ peer CPU/{per}", ratio_of("cpu_us_per_msg")))
    return values, ratios


def table(settings, results, mode, w, template):
    """The markdown table of workload w in this mode: berth first, then each peer."""
    values, ratios = columns(w.kind, template)
    headings = ["server"] + [h for h, _ in values + ratios]
    out = ["| " + " | ".join(headings) + " |",
           "|---|" + "---:|" * (len(headings) - 1)]
    rows = rows_for(settings, results, mode, w)
    berth = rows[0][1]
    for i, (label, c) in enumerate(rows):
        if c.missing():
            out.append(f"| {label} | {c.missing()} |" + "|" * (len(headings) - 2))
            continue
        cells = [label] + [value(c) for _, value in values]
        cells += [("–" if i == 0 else ratio(c, berth)) for _, ratio in ratios]
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
    """A section per mode, a table per workload."""
    out = []
    for mode in settings.modes:
        out += [template.fill(f"results-{mode}"), ""]
        for w in settings.workloads:
            out += [f"### {w.key}: {w.title}", ""]
            out += table(settings, results, mode, w, template)
            out.append("")
    return out


def render(settings, results, info, finished, template):
    """The whole report (markdown), from the results and the machine info."""
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
