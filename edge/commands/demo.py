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
import json
import tempfile
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
    add_subscriber_args(p)
    p.set_defaults(func=run)


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


def replay_config(config: Path | None, rec) -> Any:
    """The station config to replay ``rec`` with: the ``--config`` file (None after printing its
    errors, as validate-config does), or the defaults with calibration/<station>.toml."""
    from edge.commands.run import load_or_report
    from edge.pipeline import default_config

    return load_or_report(config) if config else default_config(rec.meta.station_id)


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


def run(args: argparse.Namespace) -> int:
    from edge.feed.catchup import CatchupServer
    from edge.feed.journal import Journal, JournalError
    from edge.feed.publishing import Publisher, utc_iso
    from edge.io.recording import open_recording
    from edge.pipeline import replay

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
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
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
    journal_path = args.journal or Path(tmp.name) / "journal.sqlite"
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
                          catchup_endpoint=router.last_endpoint.decode())
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
    if len(received) < len(sent):
        print(f"error: subscriber received {len(received)} of {len(sent)} messages", flush=True)
        return 1
    return 0
