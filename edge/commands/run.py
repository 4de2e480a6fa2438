"""`thermal-edge run --config station.toml`: run a station from its config file until SIGTERM.

Refuses to start on an invalid config (every error printed with its key path, exit 2). Opens the
feed (edge.feed.publishing.open_feed), starts the cameras, the watchdog, the metrics endpoint and
the pipeline; SIGTERM or Ctrl-C shut it down in order (edge/station.py) and the feed's sockets
close with linger, so a decided alert leaves or stays journaled.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a station from its config file (cameras -> pipeline -> feed) until SIGTERM")
    p.add_argument("--config", "-c", type=Path, required=True, help="station config TOML")
    p.add_argument("--annotate", type=Path, help="also write an annotated preview video (mp4) here")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: run until SIGTERM)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import zmq

    from edge.commands._common import load_or_report
    from edge.errors import UserError
    from edge.feed.publishing import open_feed
    from edge.logs import setup_logging
    from edge.station import Station, quiet_opencv

    cfg = load_or_report(args.config)
    if cfg is None:
        return 2
    h = cfg.health
    setup_logging(h.log_format, h.log_level, h.log_repeat_window_s)
    quiet_opencv()
    annotate = args.annotate or cfg.station.annotate
    ctx = zmq.Context()
    try:
        feed = open_feed(ctx, cfg.feed, cfg.station.id)
    except ValueError as e:
        ctx.term()
        raise UserError(str(e)) from None
    annotator = None
    web = None
    try:
        if annotate:
            from edge.annotate import Annotator

            annotator = Annotator(annotate, cfg)
        hub = None
        if cfg.web.enabled:
            from edge.web.station.app import start_station_web

            hub, server = start_station_web(cfg)
            web = (hub, server)
            print(f"station {cfg.station.id}: web pages on {cfg.web.url} (live /, kiosk /kiosk, alignment /align)",
                  file=sys.stderr, flush=True)
        station = Station(cfg, publisher=feed.publisher, on_pair=annotator.write if annotator else None, web_hub=hub)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: station.request_stop(signal.Signals(signum).name))
        print(f"station {cfg.station.id}: feed on {feed.endpoint}", file=sys.stderr, flush=True)
        result = station.run(max_seconds=args.seconds)
    finally:
        if web is not None:  # the hub first: its streams end, so the server stops without waiting on them
            web[0].close()
            web[1].close()
        if annotator is not None:
            annotator.close()
        feed.close()
        ctx.term()
    last = result.statuses[-1] if result.statuses else {}
    cams = ", ".join(f"{c} {s.get('frames')} frames/{s.get('reconnects')} reconnects"
                     for c, s in last.get("cameras", {}).items())
    print(f"station {cfg.station.id} stopped ({result.stop_reason}): {result.pairs} pairs, "
          f"{len(result.events)} events; {cams}", file=sys.stderr)
    if annotator is not None and annotator.frames:
        print(f"preview {annotate} ({annotator.frames} frames, {annotator.codec})"
              + (f"; note: {annotator.codec_note}" if annotator.codec_note else ""), file=sys.stderr)
    return 0
