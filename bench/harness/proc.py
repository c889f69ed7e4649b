"""Processes and ports: start a server, wait for it, watch it, kill it (and
every child on the way out), hand out a fresh port per server start."""

import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import time

from .peers import REPO

HOST = "127.0.0.1"  # the only address this harness ever uses


class PeerMissing(Exception):
    """The server cannot be run at all (not built, no such subcommand)."""


class RunFailed(Exception):
    """This one run failed; other repetitions may still succeed."""


LIVE = set()  # every child still running, killed on the way out


def kill_tree(proc, grace=3.0):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(timeout=10)
    LIVE.discard(proc)


def kill_all():
    """Kill every child still running (on the way out, whatever happened)."""
    for proc in list(LIVE):
        kill_tree(proc, grace=1.0)


def _die_with_parent():
    # In the child, before exec: SIGKILL it if the harness itself dies.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(argv, **kw):
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent, **kw)
    LIVE.add(proc)
    return proc


def pinned(cpu, argv):
    """argv run on CPU `cpu` (taskset execs it: same pid), or as is if cpu is None."""
    return argv if cpu is None else ["taskset", "-c", str(cpu)] + argv


class Ports:
    """Hands out a fresh port per server start: an io_uring server's listener
    can outlive the process briefly (the ring is torn down asynchronously)."""

    def __init__(self, base):
        self.base, self.next = base, base

    def take(self):
        for _ in range(1000):
            port = self.next
            self.next = self.base + (self.next + 1 - self.base) % 900
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((HOST, port))
                return port
            except OSError:
                continue
            finally:
                s.close()
        raise RunFailed("no free port")


def log_tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        return " | ".join(text.strip().splitlines()[-lines:])
    except OSError:
        return ""


class Server:
    """One server process, started on a fresh port, its output in a log file."""

    def __init__(self, settings, peer, mode):
        self.peer, self.mode = peer, mode
        self.port = settings.ports.take()
        self.addr = f"{HOST}:{self.port}"
        argv = peer.command(settings, mode, self.addr)
        if argv is None:
            raise PeerMissing(f"no {mode} mode")
        if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
            shown = os.path.relpath(argv[0], REPO) if argv[0].startswith(REPO + os.sep) else argv[0]
            raise PeerMissing(f"not built: {shown}")
        if peer.pinned:
            argv = pinned(settings.server_cpu, argv)
        self.argv = argv
        self.log = os.path.join(settings.tmp, f"server-{peer.name}-{self.port}.log")
        with open(self.log, "wb") as log:
            self.proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise PeerMissing(f"exited with status {self.proc.returncode}: {log_tail(self.log)}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RunFailed(f"did not accept within {timeout:.0f}s: {log_tail(self.log)}")

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RunFailed(f"server died (status {self.proc.returncode}): {log_tail(self.log)}")

    def stop(self):
        kill_tree(self.proc)


def raise_nofile():
    """Raise the soft open-files limit to the hard one (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    elif hard == resource.RLIM_INFINITY and soft < 65536:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, hard))
        soft = 65536
    return soft
