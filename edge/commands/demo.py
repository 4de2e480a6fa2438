"""`thermal-edge demo STREAM`: replay a recording through the full pipeline, publish on a local
ZeroMQ endpoint, and print what a subscriber on that endpoint receives -- one line per alert --
then a summary. This is what `make run` shows a newcomer."""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from edge.cli import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="replay a recording end to end and print the alerts a subscriber receives")
    p.add_argument("stream", type=Path, help="recording folder (see sample_streams/FORMAT.md)")
    p.add_argument("--config", type=Path, help="station config TOML (default: defaults + calibration/<station>.toml)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:*", help="where to bind the feed (default: random loopback port)")
    p.add_argument("--json", action="store_true", help="print raw JSON bodies instead of readable lines")
    p.add_argument("--all", action="store_true", help="also print screening results (normal/indeterminate)")
    p.set_defaults(func=run)


def _subscriber(ctx: zmq.Context, endpoint: str, topics: list[bytes], out: list[dict],
                ready: threading.Event, stop: threading.Event, as_json: bool) -> None:
    from edge.feed.client import format_alert_line

    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for t in topics:
        sub.setsockopt(zmq.SUBSCRIBE, t)
    sub.connect(endpoint)
    ready.set()
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    try:
        while not stop.is_set() or poller.poll(0):
            if not poller.poll(50):
                continue
            frames = sub.recv_multipart()
            body = json.loads(frames[1])
            out.append(body)
            print(json.dumps(body) if as_json else format_alert_line(body), flush=True)
    finally:
        sub.close(linger=0)


def replay_config(config: Path | None, rec) -> Any:
    """The station config to replay ``rec`` with: the ``--config`` file (None after printing its
    errors, as validate-config does), or the defaults with calibration/<station>.toml."""
    from edge.commands.run import load_or_report
    from edge.pipeline import default_config

    return load_or_report(config) if config else default_config(rec.meta.station_id)


def run(args: argparse.Namespace) -> int:
    from edge.feed.publishing import Publisher
    from edge.io.recording import open_recording
    from edge.pipeline import replay

    rec = open_recording(args.stream)
    cfg = replay_config(args.config, rec)
    if cfg is None:
        return 2
    station = cfg.station.id
    ctx = zmq.Context()
    # XPUB so we can wait for the subscriber's subscription before the first alert:
    # a plain PUB would drop everything sent during the slow-joiner window.
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 2000)
    pub.bind(args.endpoint)
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    topics = [f"alert.{station}".encode()] + ([f"screening.{station}".encode()] if args.all else [])
    received: list[dict] = []
    ready, stop = threading.Event(), threading.Event()
    th = threading.Thread(target=_subscriber, args=(ctx, endpoint, topics, received, ready, stop, args.json), daemon=True)
    th.start()
    ready.wait(5)
    if not pub.poll(5000, zmq.POLLIN):
        raise UserError(f"{endpoint}: the subscriber never subscribed")
    while pub.poll(100, zmq.POLLIN):  # drain every subscription frame
        pub.recv()
    print(f"station {station}: replaying {args.stream} -> publishing on {endpoint}", flush=True)
    publisher = Publisher(pub, station, None, include_images=False)
    result = replay(args.stream, cfg, publisher=publisher)
    kinds = {t.decode().split(".")[0] for t in topics}
    sent = [b for b in result.published if b.get("kind") in kinds]
    deadline = time.monotonic() + 5
    while len(received) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    th.join(2)
    pub.close(linger=0)
    ctx.term()

    statuses = [v.status for v in result.verdicts.values()]
    alerts = {b.get("event_id") for b in received if b.get("kind") == "alert"}
    det_ms = result.stage_median_ms().get("detect", float("nan"))
    print(
        f"summary: subjects seen {len(statuses)}, alerts {len(alerts)}, "
        f"elevated {statuses.count('elevated')}, normal {statuses.count('normal')}, "
        f"indeterminate {statuses.count('indeterminate')} | pairs {result.pairs} "
        f"({result.stats.unpaired_thermal} thermal unpaired) at {result.pairs_per_s:.1f} pairs/s, "
        f"detector median {det_ms:.1f} ms | messages sent {len(sent)}, received {len(received)}",
        flush=True,
    )
    if len(received) < len(sent):
        print(f"error: subscriber received {len(received)} of {len(sent)} messages", flush=True)
        return 1
    return 0
