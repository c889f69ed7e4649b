#!/usr/bin/env python3
"""Run a command with io_uring_setup denied (EPERM), as container runtimes'
default seccomp profiles do: `no_uring.py PROGRAM [ARGS...]`.

Installs a seccomp filter in this process (inherited across exec), then
execs the program. Test support for berth's engine fallback.
"""
import ctypes
import os
import platform
import struct
import sys

IO_URING_SETUP = 425  # the same number on x86_64 and aarch64
ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO_EPERM = 0x00050000 | 1


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


prog = b"".join([
    insn(BPF_LD_W_ABS, 0, 0, 4),          # seccomp_data.arch
    insn(BPF_JEQ_K, 1, 0, ARCH),          # our arch? check nr : allow
    insn(BPF_RET_K, 0, 0, RET_ALLOW),
    insn(BPF_LD_W_ABS, 0, 0, 0),          # seccomp_data.nr
    insn(BPF_JEQ_K, 0, 1, IO_URING_SETUP),
    insn(BPF_RET_K, 0, 0, RET_ERRNO_EPERM),
    insn(BPF_RET_K, 0, 0, RET_ALLOW),
])
count = len(prog) // 8
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("HP", count, ctypes.addressof(buf))  # native alignment pads
fprog_buf = ctypes.create_string_buffer(fprog)

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog_buf), 0, 0) != 0:
    sys.exit(f"prctl(SECCOMP): {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[1], sys.argv[1:])
