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
    ap.add_argument("--json", action="store_true", help="print the JSON object (always done)")
    args = ap.parse_args()

    host, port = args.addr.rsplit(":", 1)
    if host != "127.0.0.1":
        ap.error("pyload only loads 127.0.0.1")
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

    barrier = threading.Barrier(threads, action=set_clock)
    worker = churn_worker if args.churn else load_worker
    stats = [Stats() for _ in range(threads)]
    ts = [threading.Thread(target=worker, args=(args, addr, per[i], clock, stats[i], barrier), daemon=True)
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=args.warmup + args.duration + 120)

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
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
