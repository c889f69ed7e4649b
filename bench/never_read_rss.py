#!/usr/bin/env python3
"""Server memory under clients that send and never read.

    bench/never_read_rss.py BERTH_BINARY ENGINE CLIENTS [SECONDS]

Starts `BERTH_BINARY echo --engine ENGINE` on a loopback port, lets CLIENTS
connections write 64 KiB chunks as fast as the server takes them and never
read, for SECONDS (default 4), and prints the server's resident memory
(VmRSS from /proc/PID/status) before and after: what never-reading peers
cost a server whose write queues are bounded. Stops by itself.
"""
import os
import socket
import subprocess
import sys
import threading
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    binary, engine, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) == 5 else 4.0
    port = 20000 + os.getpid() % 20000
    server = subprocess.Popen(
        [binary, "echo", "--listen", f"127.0.0.1:{port}", "--engine", engine],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.05)
        before = rss_mib(server.pid)
        stop = time.time() + seconds

        def flood():
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                chunk = b"x" * 65536
                while time.time() < stop:
                    try:
                        s.send(chunk)
                    except socket.timeout:
                        pass
                    except OSError:
                        return

        threads = [threading.Thread(target=flood) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    growth = after - before
    print(
        f"engine={engine} clients={clients} rss_before={before:.1f}MiB "
        f"rss_after={after:.1f}MiB growth={growth:.1f}MiB "
        f"per_client={growth / clients:.2f}MiB"
    )


if __name__ == "__main__":
    main()
