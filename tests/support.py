"""Helpers every test package shares (one copy each): a free loopback port, waiting for a
condition with a deadline, and a ZeroMQ SUB socket that collects what a real feed sends.

Plain functions and classes, imported as ``from tests.support import ...``; the fixtures built on
them live in the conftest.py of each test package.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

TIMEOUT_S = 30.0


def sample_stream(name: str) -> Path:
    """sample_streams/<name>, rendered: `make test` renders every sample at set-up, so a missing
    one is a broken set-up (a failure naming the fix), never a silent skip."""
    from edge.paths import STREAMS_DIR

    path = STREAMS_DIR / name
    if not (path / "stream.json").is_file():
        pytest.fail(f"{path} is not rendered; `make test` renders it (python -m edge.sim.render_all)")
    return path


def free_port() -> int:
    """A TCP port free on loopback right now (for feeds, metrics and ffmpeg servers in tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout_s: float = TIMEOUT_S, what: str = "condition") -> bool:
    """Poll ``predicate`` every 20 ms until it is true (returns True) or ``timeout_s`` passes
    (AssertionError naming ``what``): a hung component fails the test with a reason."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return True


class Subscriber:
    """A SUB socket (linger 0) connected to ``endpoint``, subscribed to ``prefixes`` (all topics
    if none), collecting every multipart message it receives into ``frames``.

    Collect by polling (``receive``: until a condition holds, optionally sending something each
    round -- a PUB drops what it sends before the subscription reaches it) or in a background
    thread while the code under test publishes (``with sub.collecting(): ...``).
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, *prefixes: bytes) -> None:
        self.socket = ctx.socket(zmq.SUB)
        self.socket.linger = 0
        for p in prefixes or (b"",):
            self.socket.subscribe(p)
        self.socket.connect(endpoint)
        self.frames: list[list[bytes]] = []

    # --- what was received ---
    def bodies(self, prefix: bytes = b"") -> list[dict[str, Any]]:
        """JSON bodies (second frame) of the messages whose topic starts with ``prefix``."""
        return [json.loads(f[1]) for f in self.frames if f[0].startswith(prefix)]

    def has(self, prefix: bytes) -> bool:
        return any(f[0].startswith(prefix) for f in self.frames)

    # --- collecting ---
    def drain(self, timeout_ms: int = 20) -> int:
        """Take every message that arrives within ``timeout_ms`` of the previous one; how many."""
        n = 0
        while self.socket.poll(timeout_ms):
            self.frames.append(self.socket.recv_multipart())
            n += 1
        return n

    def receive(self, until: Callable[[Subscriber], bool] | int, *, ping: Callable[[], Any] | None = None,
                timeout_s: float = TIMEOUT_S, what: str | None = None) -> list[list[bytes]]:
        """Collect until ``until(self)`` holds (an int n: until n messages); ``ping()`` is called
        before each round. Returns ``frames``."""
        if isinstance(until, int):
            n = until
            until, what = (lambda s: len(s.frames) >= n), what or f"{n} messages"

        def step() -> bool:
            if ping is not None:
                ping()
            self.drain()
            return until(self)

        wait_until(step, timeout_s, what or "the expected messages")
        return self.frames

    def collecting(self) -> _Collecting:
        """Context manager: a thread drains the socket until the block ends, then everything
        still in flight (poll pause 200 ms) is taken too."""
        return _Collecting(self)

    def close(self) -> None:
        self.socket.close(linger=0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Collecting:
    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            self.sub.drain(50)
        self.sub.drain(200)

    def __enter__(self) -> Subscriber:
        self.thread.start()
        return self.sub

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "subscriber thread did not stop"
