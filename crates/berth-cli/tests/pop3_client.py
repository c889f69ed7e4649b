#!/usr/bin/env python3
"""A real POP3 client (the standard library's poplib) for the berth pop3 tests.

Usage: pop3_client.py SCENARIO HOST PORT [ARGS...]

Runs one scenario against the server and prints its results as one JSON
object on stdout. Message contents are hex-encoded. Every socket operation
has a timeout, so a scenario never hangs.
"""

import json
import poplib
import socket
import sys
import threading
import time

TIMEOUT = 10


def connect(host, port):
    return poplib.POP3(host, int(port), timeout=TIMEOUT)


def login(host, port, user, password):
    p = connect(host, port)
    p.user(user)
    p.pass_(password)
    return p


def err_text(e):
    """The server's response line carried by a poplib.error_proto."""
    arg = e.args[0] if e.args else b""
    return arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)


def wire(lines):
    """Message lines from poplib (unstuffed, without CRLF) as bytes on disk."""
    return b"".join(line + b"\r\n" for line in lines).hex()


def login_user(host, port, user, password):
    p = connect(host, port)
    out = {"welcome": p.getwelcome().decode("latin-1")}
    out["user"] = p.user(user).decode()
    out["pass"] = p.pass_(password).decode()
    out["stat"] = list(p.stat())
    out["capa"] = sorted(p.capa().keys())
    out["quit"] = p.quit().decode()
    return out


def login_apop(host, port, user, secret):
    p = connect(host, port)
    out = {"apop": p.apop(user, secret).decode()}
    out["stat"] = list(p.stat())
    out["quit"] = p.quit().decode()
    # A wrong digest is refused.
    q = connect(host, port)
    try:
        q.apop(user, secret + "-wrong")
        out["wrong_apop"] = "accepted"
    except poplib.error_proto as e:
        out["wrong_apop"] = err_text(e)
    q.quit()
    return out


def auth_failures(host, port, user, password, attempts):
    """Wrong passwords until the server closes the session."""
    p = connect(host, port)
    replies = []
    for _ in range(int(attempts)):
        p.user(user)
        try:
            p.pass_(password + "-wrong")
            replies.append("accepted")
        except poplib.error_proto as e:
            replies.append(err_text(e))
    rest = p.file.read()
    p.close()
    return {"replies": replies, "eof": rest == b""}


def fetch(host, port, user, password, number, top_lines):
    number, top_lines = int(number), int(top_lines)
    p = login(host, port, user, password)
    out = {"stat": list(p.stat())}
    _, listing, _ = p.list()
    out["list"] = [line.decode() for line in listing]
    out["list_one"] = p.list(number).decode()
    _, uidls, _ = p.uidl()
    out["uidl"] = [line.decode() for line in uidls]
    out["uidl_one"] = p.uidl(number).decode()
    resp, lines, _ = p.top(number, top_lines)
    out["top_resp"] = resp.decode()
    out["top"] = wire(lines)
    resp, lines, _ = p.retr(number)
    out["retr_resp"] = resp.decode()
    out["retr"] = wire(lines)
    out["quit"] = p.quit().decode()
    return out


def dele(host, port, user, password, numbers, ending):
    """DELE each of the comma-separated numbers, then end the session:
    `quit`, `close` (drop the connection), `reset` (drop it with a RST), or
    `flood-reset` (send many RETR at once, and reset the connection
    without reading the answers)."""
    p = login(host, port, user, password)
    out = {"dele": [p.dele(int(n)).decode() for n in numbers.split(",")]}
    out["stat"] = list(p.stat())
    if ending == "quit":
        out["quit"] = p.quit().decode()
    else:
        if ending == "flood-reset":
            p.sock.sendall(b"RETR 2\r\n" * 200)
        if ending in ("reset", "flood-reset"):
            p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        p.close()
    return out


def stat_retry(host, port, user, password):
    """Log in (retrying while an earlier session still holds the mailbox),
    STAT, QUIT."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        p = connect(host, port)
        p.user(user)
        try:
            p.pass_(password)
            break
        except poplib.error_proto as e:
            p.quit()
            if "[IN-USE]" not in err_text(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    out = {"stat": list(p.stat())}
    _, uidls, _ = p.uidl()
    out["uidl"] = [line.decode() for line in uidls]
    out["quit"] = p.quit().decode()
    return out


def rset(host, port, user, password):
    p = login(host, port, user, password)
    out = {"before": list(p.stat())}
    p.dele(1)
    p.dele(2)
    out["after_dele"] = list(p.stat())
    try:
        p.retr(1)
        out["retr_deleted"] = "accepted"
    except poplib.error_proto as e:
        out["retr_deleted"] = err_text(e)
    out["rset"] = p.rset().decode()
    out["after_rset"] = list(p.stat())
    out["quit"] = p.quit().decode()
    return out


def in_use(host, port, user, password):
    first = login(host, port, user, password)
    out = {"first": list(first.stat())}
    second = connect(host, port)
    second.user(user)
    try:
        second.pass_(password)
        out["second"] = "accepted"
    except poplib.error_proto as e:
        out["second"] = err_text(e)
    out["first_quit"] = first.quit().decode()
    # The refused session stays usable: once the first one has quit (the
    # lock is released before its reply is sent), it logs in.
    second.user(user)
    out["second_retry"] = second.pass_(password).decode()
    out["after_release"] = list(second.stat())
    out["second_quit"] = second.quit().decode()
    return out


def many(host, port, prefix, password, count):
    """`count` sessions at once, user prefix00, prefix01, ...: all log in,
    wait for each other, then STAT, RETR 1 and QUIT."""
    count = int(count)
    barrier = threading.Barrier(count, timeout=TIMEOUT)
    results = [None] * count

    def one(i):
        user = "%s%02d" % (prefix, i)
        try:
            p = login(host, port, user, password)
            barrier.wait()
            count_, _ = p.stat()
            _, lines, _ = p.retr(1)
            subject = next((l for l in lines if l.startswith(b"Subject:")), b"")
            p.quit()
            results[i] = {"user": user, "ok": True, "stat": count_,
                          "subject": subject.decode()}
        except Exception as e:  # reported, not raised: the test shows all failures
            try:
                barrier.abort()
            except Exception:
                pass
            results[i] = {"user": user, "ok": False, "error": repr(e)}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    return {"results": results}


def long_line(host, port, user, password):
    p = connect(host, port)
    out = {}
    # 300 octets: over RFC 2449's 255, in both states.
    try:
        out["auth_long"] = p._shortcmd("USER " + "u" * 295).decode()
    except poplib.error_proto as e:
        out["auth_long"] = err_text(e)
    p.user(user)
    p.pass_(password)
    try:
        out["tx_long"] = p._shortcmd("NOOP " + "x" * 295).decode()
    except poplib.error_proto as e:
        out["tx_long"] = err_text(e)
    # 255 octets with CRLF is still allowed (and NOOP takes no argument).
    try:
        out["at_limit"] = p._shortcmd("NOOP " + "x" * 248).decode()
    except poplib.error_proto as e:
        out["at_limit"] = err_text(e)
    out["stat"] = list(p.stat())
    out["quit"] = p.quit().decode()
    return out


def idle(host, port, user, password, active_secs):
    """Stay active with NOOPs for `active_secs`, then go quiet until the
    server's autologout."""
    p = login(host, port, user, password)
    out = {"dele": p.dele(1).decode()}
    end = time.monotonic() + float(active_secs)
    noops = 0
    while time.monotonic() < end:
        p.noop()
        noops += 1
        time.sleep(0.2)
    out["noops"] = noops
    started = time.monotonic()
    out["unsolicited"] = p.file.readline().decode("latin-1")
    out["idle_secs"] = time.monotonic() - started
    out["eof"] = p.file.read() == b""
    p.close()
    return out


SCENARIOS = {
    f.__name__: f
    for f in [login_user, login_apop, auth_failures, fetch, dele, stat_retry,
              rset, in_use, many, long_line, idle]
}


def main():
    scenario, host, port, *args = sys.argv[1:]
    print(json.dumps(SCENARIOS[scenario](host, port, *args)))


if __name__ == "__main__":
    main()
