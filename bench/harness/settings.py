"""Settings: everything one invocation of bench/compare runs with (built by cli.py)."""

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class Settings:
    command: str               # the command line, as the report shows it
    modes: List[str]           # "echo" and/or "packet"
    workloads: list            # peers.Workload, in the order given
    peers: list                # peers.Peer, berth first if it runs at all
    reps: int                  # repetitions of every (mode, workload, server)
    quick: bool                # smoke-run durations
    duration: Optional[float]  # measured seconds of a load run (None: the workload's)
    warmup: Optional[float]    # warm-up seconds (None: the workload's)
    berth: str                 # absolute path of the berth binary under test
    berth_b: Optional[str]     # a second berth binary measured as a peer, if any
    loadgen: List[str]         # argv prefix of the load generator
    load_threads: int          # its --threads
    rate: float                # its --rate for W1-W4 (0: closed loop)
    server_cpu: Optional[int]  # taskset CPU of the servers (None: no pinning)
    load_cpu: Optional[int]    # taskset CPU of the load generator
    idle_cap: int              # most idle connections the open-files limit allows
    ports: object              # proc.Ports: a fresh port per server start
    conclusion: str = ""       # the hand-written conclusion the report keeps
    tmp: str = ""              # scratch directory of this invocation (logs)
