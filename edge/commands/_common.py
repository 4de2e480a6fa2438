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
import tempfile
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
    errors, as validate-config does), or the defaults with the calibration ``find_calibration``
    finds ($THERMAL_EDGE_CALIBRATION, the recording's calibration.toml, calibration/<station>.toml)."""
    from edge.pipeline import default_config

    return load_or_report(config) if config else default_config(rec.meta.station_id, stream_dir=rec.path)


def report_losses(result: Any, strict: bool) -> int:
    """Print one line per camera and reason for the frames a damaged recording lost (stderr);
    the exit code: 1 with --strict when anything was lost, else 0."""
    for line in result.loss_lines():
        print(f"{'error' if strict else 'warning'}: {line}", file=sys.stderr, flush=True)
    return 1 if strict and result.lost_frames else 0


def add_client_key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", type=Path, metavar="DIR",
                   help="CURVE key folder holding this client's secret key (client.key_secret, or the only "
                        "*.key_secret there) and the server's server.key (from `thermal-edge keygen`)")
    p.add_argument("--client-key", type=Path, metavar="FILE", help="this client's .key_secret (overrides --keys)")
    p.add_argument("--server-key", type=Path, metavar="FILE",
                   help="server public .key used where an endpoint has no =KEYFILE (overrides --keys)")


def own_secret_in(folder: Path) -> Path:
    """--keys DIR: DIR/client.key_secret, else the only *.key_secret in DIR (a second control
    room's key is made with another --name, e.g. `keygen keys/room2 --name room2 --authorize ...`)."""
    default = folder / "client.key_secret"
    if default.exists() or not folder.is_dir():
        return default  # a missing one is reported by name when read
    found = sorted(folder.glob("*.key_secret"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"--keys {folder}: no client.key_secret (or other *.key_secret) in it; "
                        "create one with `thermal-edge keygen`")
    raise UserError(f"--keys {folder}: several secret keys ({', '.join(f.name for f in found)}) and no "
                    "client.key_secret; name one with --client-key")


def client_keys(args) -> ClientKeys | None:
    """CURVE client keys from --keys/--client-key/--server-key, checked; None when none are given."""
    secret = args.client_key or (own_secret_in(args.keys) if args.keys else None)
    server = args.server_key or (args.keys / "server.key" if args.keys else None)
    try:
        if not curve_pair(("--client-key", secret), ("--server-key", server),
                          "both --client-key and --server-key (or --keys DIR holding both)"):
            return None
    except ValueError as e:
        raise UserError(str(e)) from None
    assert secret is not None and server is not None  # curve_pair: both or neither
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


def add_subscriber_args(p: argparse.ArgumentParser) -> None:
    """The feed options demo and replay share (replay without --annotate runs demo)."""
    p.add_argument("--catchup-endpoint", default="tcp://127.0.0.1:*",
                   help="where the catch-up channel binds (default: random loopback port; advertised in messages)")
    p.add_argument("--journal", type=Path, metavar="FILE",
                   help="journal every alert/screening message into this SQLite file and keep it (default: a "
                        "temporary journal, removed at the end); a second run appends, as a restarted gateway does")
    p.add_argument("--realtime", action="store_true",
                   help="pace frames at their recorded times (default: as fast as the pipeline goes)")
    p.add_argument("--loop", type=int, default=1, metavar="N",
                   help="replay the recording N times, one feed, seq going on (0: until Ctrl-C; default 1)")
    p.add_argument("--subscribers", type=int, metavar="N",
                   help="wait for N subscribers besides the local one (a proxy, `listen`) to subscribe to "
                        "alerts before replaying (default: 1 with a fixed --endpoint, 0 with a random port)")
    p.add_argument("--wait-s", type=float, default=60.0, metavar="S",
                   help="how long to wait for them (default 60 s); then error, nothing replayed")


def expected_subscribers(args: argparse.Namespace) -> int:
    if args.subscribers is not None:
        if args.subscribers < 0:
            raise UserError(f"--subscribers {args.subscribers}: must be >= 0")
        return args.subscribers
    return 0 if args.endpoint.endswith(":*") else 1


def wait_for_subscribers(pub: zmq.Socket, endpoint: str, topic: bytes, local: int, external: int,
                         wait_s: float, station: str) -> None:
    """Read an XPUB_VERBOSE socket's subscription messages until ``local + external`` subscriptions
    cover ``topic`` (every subscriber socket sends its own; a subscription to a prefix of the topic,
    e.g. ``alert.``, covers it). Raise UserError naming the endpoint after ``wait_s``."""
    if external:
        print(f"station {station}: waiting for {external} subscriber(s) on {endpoint} (a proxy or `listen`; "
              f"--subscribers 0 to not wait)", flush=True)
    need, have = local + external, 0
    deadline = time.monotonic() + (wait_s if external else 5.0)
    while have < need:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0 or not pub.poll(left_ms, zmq.POLLIN):
            who = "the local subscriber" if have < local else f"{need - have} of {external} subscriber(s)"
            raise UserError(f"{endpoint}: {who} never subscribed to {topic.decode()} within "
                            f"{wait_s if external else 5.0:.0f} s; nothing was replayed")
        frame = pub.recv()
        if frame[:1] in (b"\x00", b"\x01") and topic.startswith(frame[1:]):
            have += 1 if frame[:1] == b"\x01" else -1
    while pub.poll(100, zmq.POLLIN):  # drain the other subscription frames
        pub.recv()


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


class _Pacer:
    """--realtime: hold each processed pair until its recorded time has come (one clock per loop)."""

    def __init__(self) -> None:
        self.start: tuple[float, int] | None = None

    def __call__(self, res: Any) -> None:
        if self.start is None:
            self.start = (time.monotonic(), res.pair.t_ns)
        delay = self.start[0] + (res.pair.t_ns - self.start[1]) / 1e9 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class _LoopPublisher:
    """--loop: each loop's tracker numbers people from 1 again; within one feed epoch a track id
    (and so an ``event_id``) must name one person, so later loops' ids are shifted past the
    earlier ones."""

    def __init__(self, publisher: Any, offset: int) -> None:
        self.publisher = publisher
        self.offset = offset
        self.max_track_id = offset

    def publish_event(self, event: Any, time_utc: str) -> dict:
        import dataclasses

        event = dataclasses.replace(event, track_id=event.track_id + self.offset)
        self.max_track_id = max(self.max_track_id, event.track_id)
        return self.publisher.publish_event(event, time_utc)


def run_demo(args: argparse.Namespace) -> int:
    """`thermal-edge demo` (and `replay` without --annotate): replay ``args.stream`` publishing on
    ``args.endpoint`` (journaled, catch-up served) while a subscriber thread prints what it receives,
    then a summary; see edge/commands/demo.py for the options."""
    from edge.feed.catchup import CatchupServer
    from edge.feed.journal import Journal, JournalError
    from edge.feed.publishing import Publisher, utc_iso
    from edge.io.recording import open_recording
    from edge.replay import replay, why_nobody_screened

    if args.loop < 0:
        raise UserError(f"--loop {args.loop}: must be >= 0 (0 = until Ctrl-C)")
    rec = open_recording(args.stream)
    cfg = replay_config(args.config, rec)
    if cfg is None:
        return 2
    station = cfg.station.id
    ctx = zmq.Context()
    external = expected_subscribers(args)
    # XPUB so we can wait for the subscribers' subscriptions before the first alert:
    # a plain PUB would drop everything sent during the slow-joiner window. Verbose: every
    # subscriber's subscription is seen, not only the first of each topic.
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 2000)
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    try:
        pub.bind(args.endpoint)
    except zmq.ZMQError as e:
        pub.close(linger=0)
        ctx.term()
        raise UserError(f"--endpoint {args.endpoint}: cannot bind: {e}") from None
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    topics = [f"alert.{station}".encode()] + ([f"screening.{station}".encode()] if args.all else [])
    received: list[dict] = []
    ready, stop = threading.Event(), threading.Event()
    th = threading.Thread(target=_subscriber, args=(ctx, endpoint, topics, received, ready, stop, args.json), daemon=True)
    th.start()
    ready.wait(5)
    try:
        wait_for_subscribers(pub, endpoint, topics[0], 1, external, args.wait_s, station)
    except UserError:
        stop.set()
        th.join(2)
        pub.close(linger=0)
        ctx.term()
        raise
    tmp = tempfile.TemporaryDirectory(prefix="thermal-edge-replay-") if args.journal is None else None
    journal_path = args.journal if tmp is None else Path(tmp.name) / "journal.sqlite"
    router = ctx.socket(zmq.ROUTER)
    try:
        journal = Journal(journal_path)
        router.bind(args.catchup_endpoint)
    except (JournalError, zmq.ZMQError) as e:
        stop.set()
        th.join(2)
        router.close(linger=0)
        pub.close(linger=0)
        ctx.term()
        raise UserError(f"--journal {journal_path} / --catchup-endpoint {args.catchup_endpoint}: {e}") from None
    publisher = Publisher(pub, station, journal, include_images=False, heartbeat_s=1.0,
                          catchup_endpoint=router.getsockopt_string(zmq.LAST_ENDPOINT))
    publisher.close_open_events(utc_iso())  # a kept journal: events a killed earlier run left open
    # Heartbeats and catch-up from their own thread (the subscriptions above were read first:
    # one thread at a time on the XPUB socket, the Publisher's lock serialises the sends).
    server = CatchupServer(router, journal_path, publisher.publisher_id, heartbeat=publisher.heartbeat,
                           heartbeat_s=1.0).start()
    print(f"station {station}: replaying {args.stream} -> publishing on {endpoint}, catch-up on "
          f"{publisher.catchup_endpoint}" + (f", journal {args.journal}" if args.journal else ""), flush=True)
    kinds = {t.decode().split(".")[0] for t in topics}
    sent: list[dict] = []
    loops, track_offset = 0, 0
    try:
        while args.loop == 0 or loops < args.loop:
            loop_pub = _LoopPublisher(publisher, track_offset) if loops else publisher
            result = replay(args.stream, cfg, publisher=loop_pub, on_pair=_Pacer() if args.realtime else None)
            sent += [b for b in result.published if b.get("kind") in kinds]
            track_offset = max([track_offset] + [b["track_id"] for b in result.published])
            loops += 1
    except KeyboardInterrupt:  # --loop 0 ends here; a partial loop's messages were sent and journaled
        if loops == 0:
            raise
    deadline = time.monotonic() + 5
    while len(received) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    th.join(2)
    server.close()
    # Linger: what is still queued for other subscribers (a proxy) leaves before the socket closes.
    pub.close(linger=5000 if external else 0)
    publisher.close()  # the journal
    ctx.term()
    if tmp is not None:
        tmp.cleanup()

    statuses = [v.status for v in result.verdicts.values()]
    alerts = {b.get("event_id") for b in received if b.get("kind") == "alert"}
    det_ms = result.stage_median_ms().get("detect", float("nan"))
    print(
        f"summary: subjects seen {len(statuses)}, alerts {len(alerts)}, "
        f"elevated {statuses.count('elevated')}, normal {statuses.count('normal')}, "
        f"indeterminate {statuses.count('indeterminate')} | pairs {result.pairs} "
        f"({result.stats.describe_unpaired()}) at {result.pairs_per_s:.1f} pairs/s, "
        f"detector median {det_ms:.1f} ms | messages sent {len(sent)}, received {len(received)} by the local subscriber"
        + (f" ({external} other subscriber(s) subscribed before the first message)" if external else "")
        + (f" | {loops} loops" if loops != 1 else ""),
        flush=True,
    )
    if not result.verdicts and (note := why_nobody_screened(result.pairs, result.pairs_with_faces, cfg)):
        print(f"note: {note}", flush=True)
    rc = report_losses(result, args.strict)  # first: a lost-message error must not hide lost frames
    if len(received) < len(sent):
        print(f"error: subscriber received {len(received)} of {len(sent)} messages", flush=True)
        return 1
    return rc
