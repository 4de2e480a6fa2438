"""Shared pieces of the feed tests: events, a feed on random loopback ports, a listener thread.
The fixtures (``feeds``, ``ctx``) are in conftest.py; free_port, wait_until and the SUB helper in
tests/support.py."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import zmq

from edge.feed.client import Listener
from edge.feed.publishing import FeedConfig, open_feed
from edge.paths import REPO_ROOT
from edge.types import ScreeningEvent, Verdict


def alert_event(track_id: int, *, kind: str = "alert", type_: str = "new", core_c: float = 38.2,
                images: bool = False) -> ScreeningEvent:
    verdict = (Verdict("elevated", method="absolute", threshold_c=37.5, core_temp_c=core_c,
                       skin_temp_c=core_c - 2.5, uncertainty_c=0.21) if kind == "alert"
               else Verdict("indeterminate", reason="glasses"))
    rgb = np.random.default_rng(track_id).integers(0, 255, (40, 32, 3), dtype=np.uint8) if images else None
    thermal = np.full((12, 10), 35.5, np.float32) if images else None
    return ScreeningEvent(kind, type_, track_id, 1_000_000 * track_id, verdict, (10.0, 20.0, 50.5, 70.25),
                          (2.0, 3.0, 9.0, 11.0), 0.93, "yes" if track_id % 2 else "no", 0.8, 7, rgb, thermal)


def open_test_feed(ctx: zmq.Context, tmp_path: Path, station: str = "gate-1", **cfg):
    defaults = dict(endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*",
                    journal_path=str(tmp_path / f"{station}.sqlite"), heartbeat_s=0.2)
    return open_feed(ctx, FeedConfig(**{**defaults, **cfg}), station)


class ListenerThread:
    """Runs a Listener in a thread, collecting delivered messages."""

    def __init__(self, ctx: zmq.Context, endpoints, **kwargs) -> None:
        self.listener = Listener(ctx, endpoints, **kwargs)
        self.messages = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop, self.messages.append),
                                       daemon=True)

    def __enter__(self) -> ListenerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "listener thread did not stop"

    def msg_ids(self, kind: str = "alert") -> list[str]:
        return [m.msg_id for m in list(self.messages) if m.kind == kind]


def python_proc(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env, **kwargs)


def assert_exactly_once(received: list[str], sent: list[str], label: str) -> None:
    dups = len(received) - len(set(received))
    missing = set(sent) - set(received)
    extra = set(received) - set(sent)
    print(f"\nFEED-FIGURE {label}: sent {len(sent)}, received {len(received)} "
          f"(unique {len(set(received))}, duplicates {dups}, missing {len(missing)})")
    assert not missing, f"{label}: {len(missing)} of {len(sent)} alerts never arrived, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{label}: received alerts that were never sent: {sorted(extra)[:3]}"
    assert dups == 0, f"{label}: {dups} alerts delivered more than once"


def small_queue_feed(ctx: zmq.Context, feeds, tmp_path: Path):
    """A journaled gate-1 feed built by hand (sockets are passed in) with small queues and kernel
    buffers, set before bind, so a slow consumer really overflows the high-water mark instead of
    resting in TCP buffers; closed with the test's other feeds."""
    from edge.feed.catchup import CatchupServer
    from edge.feed.journal import Journal
    from edge.feed.publishing import Feed, Publisher

    pub = ctx.socket(zmq.PUB)
    pub.sndhwm, pub.sndbuf = 5, 4096
    pub.bind("tcp://127.0.0.1:*")
    router = ctx.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    journal = tmp_path / "gate-1.sqlite"
    publisher = Publisher(pub, "gate-1", Journal(journal), catchup_endpoint=router.last_endpoint.decode(),
                          heartbeat_s=0.2)
    feed = Feed(publisher, CatchupServer(router, journal, "gate-1", heartbeat=publisher.heartbeat,
                                         heartbeat_s=0.2).start())
    feeds.opened.append(feed)
    return feed
