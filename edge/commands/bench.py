"""`thermal-edge bench [--quick] [--json PATH]`: the performance benchmark (edge/bench/suite.py).

Prints one table (throughput on one and two cores, pipeline vs detector time, per-stage
times, live capture-to-alert latency, memory, camera pairs per gateway) and writes the full
results as JSON (default benchmarks/latest.json).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from edge.bench.suite import JSON_DEFAULT

    p = sub.add_parser("bench", help="measure throughput, latency, memory and gateway capacity (make bench)")
    p.add_argument("--quick", action="store_true", help="short runs (about 2 minutes) instead of the full bench")
    p.add_argument("--json", type=Path, default=JSON_DEFAULT,
                   help=f"where to write the results as JSON (default: {JSON_DEFAULT.relative_to(JSON_DEFAULT.parents[1])})")
    p.add_argument("--console", action="store_true",
                   help="instead: the control-room console bench (alerts ingested/s with a page open, "
                        "publish-to-page latency in headless Chromium; edge/bench/console.py)")
    p.add_argument("--runs", type=int, default=3, help="--console: runs to take the median of (default 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.console:
        from edge.bench.console import run as run_console_bench

        run_console_bench(args.runs, None if args.json == _default_json() else args.json)
        return 0
    from edge.bench.suite import run_and_report

    return run_and_report(args.quick, args.json)


def _default_json() -> Path:
    from edge.bench.suite import JSON_DEFAULT

    return JSON_DEFAULT
