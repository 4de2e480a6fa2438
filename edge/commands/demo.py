"""`thermal-edge demo STREAM`: replay a recording through the full pipeline, publish on a local
ZeroMQ endpoint, and print what a subscriber on that endpoint receives -- one line per alert --
then a summary. This is what `make run` shows a newcomer.

With ``--endpoint`` set to a fixed address, other subscribers (a proxy, ``listen``) are expected
there: the replay waits until that many (``--subscribers``, default 1) have subscribed to
alerts before it sends the first message, as it does for its own subscriber -- a PUB socket
drops what it sends before a subscriber's subscription arrives. The summary's "received" counts
only what the local subscriber received, and says so.

The replay is a gateway testers can exercise catch-up against: alert and screening messages are
journaled (``--journal FILE`` keeps the journal; by default it is a temporary file removed at
the end), the catch-up channel is served on ``--catchup-endpoint`` and advertised in every
message, heartbeats go out every second, ``--realtime`` paces the frames at their recorded times
and ``--loop N`` replays the recording N times (0: until Ctrl-C)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands._common import add_subscriber_args, run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="replay a recording end to end and print the alerts a subscriber receives")
    p.add_argument("stream", type=Path, help="recording folder (see sample_streams/FORMAT.md)")
    p.add_argument("--config", type=Path, help="station config TOML (default: defaults + $THERMAL_EDGE_CALIBRATION, else STREAM/calibration.toml, else calibration/<station>.toml)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:*", help="where to bind the feed (default: random loopback port)")
    p.add_argument("--json", action="store_true", help="print raw JSON bodies instead of readable lines")
    p.add_argument("--all", action="store_true", help="also print screening results (normal/indeterminate)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any frame of the recording could not be read (default: replay every "
                        "readable frame, report the rest as lost, exit 0)")
    add_subscriber_args(p)
    p.set_defaults(func=run_demo)
