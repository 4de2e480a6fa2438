"""Helpers the subcommands share. Commands import each other's code only through this module,
never from one another (tests/test_imports.py checks), so each command module stays one
command.

Conventions every command keeps (tests/test_cli.py checks the parser):
- ``--json`` is a switch: print JSON to stdout instead of the readable lines (one JSON object
  per line for message streams, one JSON document for a command's result); ``--json-out PATH``
  writes the JSON result to a file (``add_json_args`` / ``emit_json``).
- An invalid station config is reported the same way everywhere: every problem on its own line
  ``error: <file>: <key>: <problem>``, then ``<file>: N error(s); <consequence>``, exit 2
  (``load_or_report`` / ``report_config_errors``; validate-config prints the same lines).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from edge.errors import UserError
from edge.feed.security import ClientKeys, KeyFileError, curve_pair

if TYPE_CHECKING:
    from edge.config import StationConfig


def print_errors(errors: list[str]) -> None:
    for line in errors:
        print(f"error: {line}", file=sys.stderr)


def report_config_errors(path: Path | str, errors: list[str], consequence: str) -> None:
    """Every problem of an invalid config, one ``error: ...`` line each, then the count."""
    print_errors(errors)
    print(f"{path}: {len(errors)} error(s); {consequence}", file=sys.stderr)


def load_or_report(path: Path, consequence: str = "not starting") -> StationConfig | None:
    """The validated station config, or None after ``report_config_errors`` (the caller exits 2)."""
    from edge.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        report_config_errors(path, e.errors, consequence)
        return None


def add_json_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--json`` (print ``what`` as JSON to stdout instead of the readable output) and
    ``--json-out PATH`` (also write it to PATH)."""
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout instead of readable lines")
    p.add_argument("--json-out", type=Path, metavar="PATH", help=f"also write {what} as JSON to PATH")


def emit_json(args: argparse.Namespace, obj: Any) -> None:
    """What ``add_json_args`` promised: print ``obj`` if ``--json``, write it if ``--json-out``
    (parent folders made; 'wrote PATH' on stderr so stdout stays JSON)."""
    text = json.dumps(obj, indent=1) + "\n"
    if getattr(args, "json", False):
        sys.stdout.write(text)
    path = getattr(args, "json_out", None)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as e:
            raise UserError(f"{path}: cannot write: {e.strerror}") from None
        print(f"wrote {path}", file=sys.stderr)


def replay_config(config: Path | None, rec) -> Any:
    """The station config to replay ``rec`` with: the ``--config`` file (None after printing its
    errors, as validate-config does), or the defaults with calibration/<station>.toml."""
    from edge.pipeline import default_config

    return load_or_report(config) if config else default_config(rec.meta.station_id)


def add_client_key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", type=Path, metavar="DIR",
                   help="CURVE key folder holding client.key_secret and server.key (from `thermal-edge keygen`)")
    p.add_argument("--client-key", type=Path, metavar="FILE", help="this client's .key_secret (overrides --keys)")
    p.add_argument("--server-key", type=Path, metavar="FILE",
                   help="server public .key used where an endpoint has no =KEYFILE (overrides --keys)")


def client_keys(args) -> ClientKeys | None:
    """CURVE client keys from --keys/--client-key/--server-key, checked; None when none are given."""
    secret = args.client_key or (args.keys / "client.key_secret" if args.keys else None)
    server = args.server_key or (args.keys / "server.key" if args.keys else None)
    try:
        if not curve_pair(("--client-key", secret), ("--server-key", server),
                          "both --client-key and --server-key (or --keys DIR holding both)"):
            return None
    except ValueError as e:
        raise UserError(str(e)) from None
    keys = ClientKeys(secret, server)
    try:  # read (and checked) here, kept for every socket the listener makes
        keys.own()
        keys.server_public()
    except KeyFileError as e:
        raise UserError(str(e)) from None
    return keys


def install_stop_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


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


def run_demo(args: argparse.Namespace) -> int:
    """`thermal-edge demo` (and `replay` without --annotate): replay ``args.stream`` publishing on
    ``args.endpoint`` while a subscriber thread prints what it receives, then a summary."""
    from edge.feed.publishing import Publisher
    from edge.io.recording import open_recording
    from edge.replay import replay

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
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
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
