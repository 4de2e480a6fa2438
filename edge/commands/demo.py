"""`thermal-edge demo STREAM`: replay a recording through the full pipeline, publish on a local
ZeroMQ endpoint, and print what a subscriber on that endpoint receives -- one line per alert --
then a summary. This is what `make run` shows a newcomer."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands._common import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="replay a recording end to end and print the alerts a subscriber receives")
    p.add_argument("stream", type=Path, help="recording folder (see sample_streams/FORMAT.md)")
    p.add_argument("--config", type=Path, help="station config TOML (default: defaults + calibration/<station>.toml)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:*", help="where to bind the feed (default: random loopback port)")
    p.add_argument("--json", action="store_true", help="print raw JSON bodies instead of readable lines")
    p.add_argument("--all", action="store_true", help="also print screening results (normal/indeterminate)")
    p.set_defaults(func=run_demo)
