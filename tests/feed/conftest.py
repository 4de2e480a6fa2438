"""Fixtures of the feed tests: test feeds on random loopback ports and their ZeroMQ context."""
from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from .helpers import open_test_feed


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
