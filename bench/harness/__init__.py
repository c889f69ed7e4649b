"""The bench/compare harness: berth against its peers, written up as BENCHMARKS.md.

bench/compare (the executable next to this package) only calls cli.main.
One command runs the whole comparison (see bench/README.md):

    bench/peers/build.sh                      # once: build the peer servers
    cargo build --release -p berth-cli        # the berth binary under test
    bench/compare --out BENCHMARKS.md         # ~45 min per mode with 5 reps
    bench/compare --quick --loadgen "python3 bench/pyload.py"   # smoke run

Every server is pinned to CPU 0 (taskset) and the load generator to CPU 1;
within each repetition the servers run one after another in a rotating
order, and the table shows the median over --reps repetitions.

Modules, in the order a run uses them:
    cli.py       command line -> Settings (settings.py); main
    peers.py     the servers and workloads measured, where their binaries are
    runner.py    the plan (mode x repetition x workload x server) and its loop
    proc.py      starting, watching and killing processes; ports
    loadgen.py   the load generator's command line and JSON (its contract)
    measure.py   one run: load, churn or idle connections; /proc sampling
    machine.py   the machine and the peers' build versions, for the report
    report.py    tables, and the report: bench/report_template.md filled in
                 (the hand-written conclusion kept)
"""
