"""Pieces of the benchmark (`thermal-edge bench`, edge/bench/suite.py).

stream.py   the benchmark stream: rendered from benchmarks/bench_scenario.toml into build/bench/
procstat.py RSS and CPU readings of this process from /proc, percentiles
replay.py   instrumented replay (no sleeping) with per-stage times and RSS samples
live.py     real-time replay of the live path (capture threads, hub, pairing, pipeline, PUB/SUB)
gateway.py  how many camera pairs one gateway sustains in real time
"""
