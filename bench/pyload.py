#!/usr/bin/env python3
"""pyload: a TEST DOUBLE for `berth bench`, used to exercise bench/compare.

It speaks the same command line and prints the same single JSON object as
the real load generator, so the harness can be tested end to end before
`berth bench` exists:

  bench/compare --loadgen "python3 bench/pyload.py" --quick

It is pure Python (closed loop, selectors, one OS thread per --threads), so
it saturates long before any of the servers do: its numbers measure pyload,
not the server. Never publish results obtained with it.

Load mode (default):
  --addr A --conns N --size B --depth D --duration S --warmup S
  [--rate R] --mode echo|packet --threads T --json
  N connections each keep D messages of B bytes outstanding; a message is
  complete when its B bytes have come back. Echoed bytes are compared with
  what was sent (mismatches). In packet mode a message is B bytes framed as
  consecutive packets of at most 255 bytes (1-byte header = total packet
  length); the last packet may be a bare header (an empty packet).
  Output: {"messages", "msgs_per_sec", "mb_per_sec", "p50_us", "p99_us",
  "p999_us", "max_us", "mismatches", "connect_errors", "closes"}
  (latency = time from queueing a message to its last byte echoed;
  mb_per_sec counts payload one way, 1 MB = 10^6 bytes).

Churn mode (--churn): each thread loops: connect, one message of B bytes
  echoed, close (one cycle at a time per thread; --conns is accepted for
  compatibility). Output adds "conns_per_sec" and "connections"; latencies
  are of the whole connect-echo-close cycle.

Attackers (--slowloris N [--slowloris-interval S] --never-read M
  [--attack-reconnect]), beside the load as in `berth bench`: N connections
  from one thread each sending one byte every S seconds (a 255-byte packet
  one byte at a time in packet mode) and throwing away what comes back; M
  threads each writing as fast as the socket takes bytes and never reading.
  Output adds the same keys as berth bench: slowloris_open, _closed,
  _reconnects, _connect_errors, _bytes, never_read_open, _closed,
  _reconnects, _connect_errors, _bytes, attack_ready_ms.
"""

import argparse
import json
import os
import random
import selectors
import socket
import sys
import threading
import time
from collections import deque

MAX_CONNS = 20000


def frame(size, mode, rng):
    """One message of `size` bytes: raw bytes, or 1-byte-length packets."""
    if mode == "echo":
        return rng.randbytes(size)
    out = bytearray()
    left = size
    while left > 0:
        n = min(255, left)
        out.append(n)
        out += rng.randbytes(n - 1)
        left -= n
    return bytes(out)


def percentile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, int(q * len(sorted_vals)))
    return float(sorted_vals[i])


class Stats:
    def __init__(self):
        self.lat = []  # microseconds, measured window only
        self.messages = 0
        self.connections = 0
        self.mismatches = 0
        self.connect_errors = 0
        self.closes = 0


class Conn:
    __slots__ = ("sock", "out", "expected", "times", "got", "events")

    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()  # queued, not yet written
        self.expected = bytearray()  # written or queued, not yet echoed
        self.times = deque()  # queue time of each outstanding message
        self.got = 0  # bytes of the oldest outstanding message received
        self.events = selectors.EVENT_READ


def connect(addr, timeout=5.0):
    s = socket.create_connection(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def load_worker(args, addr, nconns, clock, stats, barrier):
    rng = random.Random(os.getpid() ^ threading.get_ident())
    msgs = [frame(args.size, args.mode, rng) for _ in range(8)]
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(nconns):
        try:
            s = connect(addr)
        except OSError:
            stats.connect_errors += 1
            continue
        s.setblocking(False)
        c = Conn(s)
        sel.register(s, c.events, c)
        conns.append(c)
    barrier.wait()
    start, warm_end, end = clock
    rate = args.rate / args.threads if args.rate else 0.0
    sent = 0
    k = 0
    rbuf = bytearray(1 << 18)
    rview = memoryview(rbuf)

    def close(c):
        sel.unregister(c.sock)
        c.sock.close()
        conns.remove(c)

    def top_up(c, now):
        nonlocal sent, k
        while len(c.times) < args.depth:
            if rate and sent >= rate * (now - start):
                break
            m = msgs[k % len(msgs)]
            k += 1
            c.out += m
            c.expected += m
            c.times.append(now)
            sent += 1
        flush(c)

    def flush(c):
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except BlockingIOError:
                pass
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        if want != c.events:
            c.events = want
            sel.modify(c.sock, want, c)

    now = time.monotonic()
    for c in list(conns):
        try:
            top_up(c, now)
        except OSError:
            stats.closes += 1
            close(c)
    while conns:
        now = time.monotonic()
        if now >= end:
            break
        for key, ev in sel.select(timeout=0.01 if rate else 0.1):
            c = key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    flush(c)
                if ev & selectors.EVENT_READ:
                    n = c.sock.recv_into(rbuf)
                    data = rview[:n]
                    if not n:
                        stats.closes += 1
                        close(c)
                        continue
                    if c.expected[:n] != data:
                        stats.mismatches += 1
                        close(c)
                        continue
                    del c.expected[:n]
                    c.got += n
                    t = time.monotonic()
                    while c.got >= args.size and c.times:
                        c.got -= args.size
                        t0 = c.times.popleft()
                        if warm_end <= t < end:
                            stats.messages += 1
                            stats.lat.append((t - t0) * 1e6)
                    top_up(c, t)
            except (ConnectionError, OSError):
                stats.closes += 1
                if c in conns:
                    close(c)
        if rate:
            for c in list(conns):
                if len(c.times) < args.depth:
                    top_up(c, time.monotonic())
    for c in conns:
        c.sock.close()


def churn_worker(args, addr, _nconns, clock, stats, barrier):
    rng = random.Random(os.getpid() ^ threading.get_ident())
    msg = frame(args.size, args.mode, rng)
    barrier.wait()
    _, warm_end, end = clock
    while True:
        t0 = time.monotonic()
        if t0 >= end:
            break
        try:
            s = connect(addr)
        except OSError:
            stats.connect_errors += 1
            time.sleep(0.01)
            continue
        try:
            s.sendall(msg)
            got = bytearray()
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    stats.closes += 1
                    break
                got += chunk
            if got != msg[: len(got)]:
                stats.mismatches += 1
        except OSError:
            stats.closes += 1
        finally:
            s.close()
        t = time.monotonic()
        if warm_end <= t < end:
            stats.connections += 1
            stats.messages += 1
            stats.lat.append((t - t0) * 1e6)


ATTACK_KEYS = ["slowloris_open", "slowloris_closed", "slowloris_reconnects",
               "slowloris_connect_errors", "slowloris_bytes", "never_read_open",
               "never_read_closed", "never_read_reconnects", "never_read_connect_errors",
               "never_read_bytes"]


def attack_socket(addr, counts, prefix, blocking):
    """A new attacker connection, counted as open (or its failure counted)."""
    try:
        s = socket.create_connection(addr, timeout=1.0)
    except OSError:
        counts[prefix + "_connect_errors"] += 1
        return None
    if blocking:
        s.settimeout(0.1)
    else:
        s.setblocking(False)
    counts[prefix + "_open"] += 1
    return s


def slowloris_worker(args, addr, stop, t_start, counts):
    n, interval = args.slowloris, args.slowloris_interval
    t0 = time.monotonic()
    slow = []  # [socket or None, bytes sent, next byte due]
    for i in range(n):
        if stop.is_set():
            break
        slow.append([attack_socket(addr, counts, "slowloris", False), 0, t0 + interval * i / n])
    counts["ready"] = time.monotonic() - t_start
    turn = 0
    while slow and not stop.is_set():
        c = slow[turn]
        if c[2] > time.monotonic():
            stop.wait(min(0.05, c[2] - time.monotonic()))
            continue
        c[2] = max(c[2] + interval, time.monotonic())
        if c[0] is None and args.attack_reconnect:
            c[0], c[1] = attack_socket(addr, counts, "slowloris", False), 0
            if c[0] is not None:
                counts["slowloris_reconnects"] += 1
        if c[0] is not None:
            byte = b"\xff" if args.mode == "packet" and c[1] % 255 == 0 else b"s"
            try:
                while True:
                    try:
                        if not c[0].recv(4096):
                            raise ConnectionError("closed")
                    except BlockingIOError:
                        break
                sent = c[0].send(byte)
                c[1] += sent
                counts["slowloris_bytes"] += sent
            except BlockingIOError:
                pass
            except OSError:
                c[0].close()
                c[0] = None
                if not stop.is_set():
                    counts["slowloris_closed"] += 1
        turn = (turn + 1) % len(slow)
    for c in slow:
        if c[0] is not None:
            c[0].close()


def never_read_worker(args, addr, stop, t_start, counts):
    chunk = bytearray(b"n" * (255 * 256))
    if args.mode == "packet":
        chunk[::255] = b"\xff" * 256
    chunk = bytes(chunk)
    s = attack_socket(addr, counts, "never_read", True)
    counts["ready"] = time.monotonic() - t_start
    at = 0
    while not stop.is_set():
        if s is None:
            if not args.attack_reconnect or stop.wait(0.1):
                break
            s, at = attack_socket(addr, counts, "never_read", True), 0
            if s is not None:
                counts["never_read_reconnects"] += 1
            continue
        try:
            n = s.send(chunk[at:])
            counts["never_read_bytes"] += n
            at = (at + n) % len(chunk)
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            s.close()
            s = None
            if not stop.is_set():
                counts["never_read_closed"] += 1
    if s is not None:
        s.close()


def start_attack(args, addr):
    """The attack threads, their stop event and their counters (one dict each)."""
    stop, t_start = threading.Event(), time.monotonic()
    jobs = ([slowloris_worker] if args.slowloris else []) + [never_read_worker] * args.never_read
    counts = [dict.fromkeys(ATTACK_KEYS, 0) for _ in jobs]
    for c in counts:
        c["ready"] = None
    threads = [threading.Thread(target=job, args=(args, addr, stop, t_start, c), daemon=True)
               for job, c in zip(jobs, counts)]
    for t in threads:
        t.start()
    return threads, stop, counts, t_start


def stop_attack(threads, stop, counts, t_start):
    """Stop the attack; its JSON keys (open counts are those when it stopped)."""
    stopped = time.monotonic() - t_start
    totals = {k: sum(c[k] for c in counts) for k in ATTACK_KEYS}
    stop.set()
    for t in threads:
        t.join(timeout=5)
    ready = [c["ready"] for c in counts]
    totals["slowloris_open"] -= totals["slowloris_closed"]
    totals["never_read_open"] -= totals["never_read_closed"]
    totals["attack_ready_ms"] = 1000 * (stopped if None in ready else max(ready, default=0.0))
    return totals


def main():
    ap = argparse.ArgumentParser(description="pyload: test double for `berth bench` (see docstring)")
    ap.add_argument("--addr", default="127.0.0.1:5001")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=0.0, help="messages/s over all connections (0 = closed loop)")
    ap.add_argument("--mode", choices=["echo", "packet"], default="echo")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--churn", action="store_true")
    ap.add_argument("--slowloris", type=int, default=0, help="slowloris connections beside the load")
    ap.add_argument("--slowloris-interval", type=float, default=1.0, help="seconds between their bytes")
    ap.add_argument("--never-read", type=int, default=0, help="never-reading connections beside the load")
    ap.add_argument("--attack-reconnect", action="store_true", help="reopen attackers the server closes")
    ap.add_argument("--json", action="store_true", help="print the JSON object (always done)")
    args = ap.parse_args()

    host, port = args.addr.rsplit(":", 1)
    if host != "127.0.0.1":
        ap.error("pyload only loads 127.0.0.1")
    if not (0 <= args.slowloris <= MAX_CONNS and 0 <= args.never_read <= 1000
            and 0.001 <= args.slowloris_interval <= 3600):
        ap.error("an attacker count or interval is out of range")
    if not (1 <= args.conns <= MAX_CONNS and args.size >= 1 and args.depth >= 1
            and args.threads >= 1 and 0 < args.duration <= 3600 and 0 <= args.warmup <= 600):
        ap.error("a count or duration is out of range")
    addr = (host, int(port))
    threads = min(args.threads, args.conns)
    args.threads = threads
    per = [args.conns // threads + (1 if i < args.conns % threads else 0) for i in range(threads)]

    now = time.monotonic()
    # The clock starts once every worker has connected (barrier action).
    clock = [now, now, now]

    def set_clock():
        t = time.monotonic()
        clock[0], clock[1], clock[2] = t, t + args.warmup, t + args.warmup + args.duration

    attacking = args.slowloris or args.never_read
    attack = start_attack(args, addr) if attacking else None
    barrier = threading.Barrier(threads, action=set_clock)
    worker = churn_worker if args.churn else load_worker
    stats = [Stats() for _ in range(threads)]
    ts = [threading.Thread(target=worker, args=(args, addr, per[i], clock, stats[i], barrier), daemon=True)
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=args.warmup + args.duration + 120)

    attack_out = stop_attack(*attack) if attack else {}
    lat = sorted(x for s in stats for x in s.lat)
    messages = sum(s.messages for s in stats)
    out = {
        "messages": messages,
        "msgs_per_sec": messages / args.duration,
        "mb_per_sec": messages * args.size / args.duration / 1e6,
        "p50_us": percentile(lat, 0.50),
        "p99_us": percentile(lat, 0.99),
        "p999_us": percentile(lat, 0.999),
        "max_us": lat[-1] if lat else 0.0,
        "mismatches": sum(s.mismatches for s in stats),
        "connect_errors": sum(s.connect_errors for s in stats),
        "closes": sum(s.closes for s in stats),
    }
    if args.churn:
        conns = sum(s.connections for s in stats)
        out["connections"] = conns
        out["conns_per_sec"] = conns / args.duration
    out.update(attack_out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
