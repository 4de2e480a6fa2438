"""Shared pieces of the feed tests: events, a feed on random loopback ports, a listener thread."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from edge.feed.client import Listener
from edge.feed.publishing import FeedConfig, open_feed
from edge.paths import REPO_ROOT
from edge.types import ScreeningEvent, Verdict

TIMEOUT_S = 30.0


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


def wait_until(predicate, timeout_s: float = TIMEOUT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


class ListenerThread:
    """Runs a Listener in a thread, collecting delivered messages."""

    def __init__(self, ctx: zmq.Context, endpoints, **kwargs) -> None:
        self.listener = Listener(ctx, endpoints, **kwargs)
        self.messages = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop, self.messages.append),
                                       daemon=True)

    def __enter__(self) -> "ListenerThread":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "listener thread did not stop"

    def msg_ids(self, kind: str = "alert") -> list[str]:
        return [m.msg_id for m in list(self.messages) if m.kind == kind]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Feeds:
    """Opens test feeds and closes whatever is left open, so a failed test cannot hang ctx.term()."""

    def __init__(self, tmp_path: Path) -> None:
        self.ctx = zmq.Context()
        self.tmp_path = tmp_path
        self.opened = []

    def open(self, station: str = "gate-1", **cfg):
        feed = open_test_feed(self.ctx, self.tmp_path, station, **cfg)
        self.opened.append(feed)
        return feed

    def close(self) -> None:
        for feed in self.opened:
            feed.close()
        self.ctx.destroy(linger=0)


@pytest.fixture
def feeds(tmp_path):
    """Test feeds on random loopback ports, all closed (and the context destroyed) at the end."""
    f = Feeds(tmp_path)
    yield f
    f.close()


@pytest.fixture
def ctx(feeds):
    return feeds.ctx
