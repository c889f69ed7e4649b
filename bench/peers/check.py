#!/usr/bin/env python3
"""Correctness check for one echo server (a peer, or berth itself).

Starts the server command given after `--`, waits for its port, runs the
checks for the chosen mode, kills the server and exits non-zero on failure:

  bench/peers/check.py --mode echo   -- bench/peers/bin/echo_epoll --listen 127.0.0.1:5001
  bench/peers/check.py --mode packet -- bench/peers/bin/echo_uring --listen 127.0.0.1:5001 --mode packet

echo:   1 MiB of random bytes echoed byte-exact (sent while reading), the
        server closes after the client's EOF; 50 concurrent connections.
packet: packets of every size class (header 1 = empty, 2, 255, ...) split
        across writes at awkward points, echoed as whole packets only; an
        incomplete packet followed by EOF is not echoed; a header of 0 ends
        the connection after the whole packets before it.
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 10.0


def wait_port(host, port, proc, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server never accepted a connection")


def connect(addr):
    s = socket.create_connection(addr, timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(1 << 16, n - len(out)))
        if not chunk:
            raise AssertionError(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def expect_eof(s, what):
    rest = s.recv(1 << 16)
    if rest:
        raise AssertionError(f"{what}: expected EOF, got {len(rest)} more bytes")


def check_echo(addr):
    data = random.randbytes(1 << 20)
    s = connect(addr)

    def sender():
        view = memoryview(data)
        while view:
            step = random.randint(1, 100_000)
            s.sendall(view[:step])
            view = view[step:]
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=sender)
    t.start()
    got = recv_exact(s, len(data))
    t.join()
    assert got == data, "1 MiB echo differs"
    expect_eof(s, "echo after client EOF")
    s.close()
    print("  ok: 1 MiB echoed byte-exact, closed after EOF")

    socks = [connect(addr) for _ in range(50)]
    msgs = [random.randbytes(random.randint(1, 5000)) for _ in socks]
    for s, m in zip(socks, msgs):
        s.sendall(m)
    for s, m in zip(socks, msgs):
        assert recv_exact(s, len(m)) == m, "concurrent echo differs"
        s.close()
    print("  ok: 50 concurrent connections")


def packet(payload):
    assert len(payload) <= 254
    return bytes([len(payload) + 1]) + payload


def send_split(s, data, max_piece=7):
    """Writes `data` in small pieces with pauses, so that packets straddle reads."""
    view = memoryview(data)
    while view:
        step = random.randint(1, max_piece)
        s.sendall(view[:step])
        view = view[step:]
        time.sleep(0.002)


def check_packet(addr):
    sizes = [0, 1, 2, 10, 100, 253, 254, 0, 5]
    packets = [packet(random.randbytes(n)) for n in sizes]
    stream = b"".join(packets)

    s = connect(addr)
    send_split(s, stream)
    assert recv_exact(s, len(stream)) == stream, "split packets differ"
    s.close()
    print(f"  ok: {len(packets)} packets (1..255 bytes) split across writes")

    s = connect(addr)
    many = b"".join(packet(random.randbytes(random.randint(0, 254))) for _ in range(2000))
    send_split(s, many, max_piece=4000)
    assert recv_exact(s, len(many)) == many, "2000 packets differ"
    s.close()
    print(f"  ok: 2000 packets ({len(many)} bytes) in random-sized writes")

    s = connect(addr)
    whole = packet(b"abc")
    s.sendall(whole + bytes([200]) + b"only-part")
    assert recv_exact(s, len(whole)) == whole
    s.shutdown(socket.SHUT_WR)
    expect_eof(s, "incomplete packet then EOF")
    s.close()
    print("  ok: an incomplete packet is not echoed; closed after EOF")

    s = connect(addr)
    s.sendall(whole + b"\x00garbage")
    assert recv_exact(s, len(whole)) == whole
    expect_eof(s, "malformed header")
    s.close()
    print("  ok: header 0 closes the connection after the whole packets")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["echo", "packet"], required=True)
    ap.add_argument("--addr", default="127.0.0.1:5001",
                    help="where the server listens (must match its command)")
    ap.add_argument("server", nargs="+", help="server command, after --")
    args = ap.parse_args()
    host, port = args.addr.rsplit(":", 1)
    addr = (host, int(port))

    proc = subprocess.Popen(args.server, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_port(host, int(port), proc)
        print(f"{os.path.basename(args.server[0])} ({args.mode}):")
        (check_echo if args.mode == "echo" else check_packet)(addr)
        if proc.poll() is not None:
            raise AssertionError(f"server died during the checks ({proc.returncode})")
    except (AssertionError, OSError, RuntimeError) as e:
        print(f"  FAIL: {e}")
        return 1
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        if err.strip():
            print("  server stderr: " + err.decode(errors="replace").strip().replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
