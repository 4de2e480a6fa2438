"""Live updates: the ingest thread wakes the event streams (``Notifier``); each stream follows the
``changes`` table from the id the page last saw (``ChangeCursor``), so a page that reconnects
after a network cut or a console restart (EventSource sends ``Last-Event-ID``) gets exactly what
it missed. Streams also poll the table every second: changes made by another console instance on
a shared PostgreSQL appear too.
"""
from __future__ import annotations

import asyncio
import time


class Notifier:
    """Wake every waiting stream; ``notify_threadsafe`` may be called from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def _set(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    def notify_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._set)
            except RuntimeError:  # loop closing at shutdown
                pass

    async def wait(self, timeout_s: float) -> bool:
        """Until the next notification (True) or ``timeout_s`` (False)."""
        event = self._event
        if event is None:
            await asyncio.sleep(timeout_s)
            return False
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False


class ChangeCursor:
    """Which change ids a stream has sent. Ids come from an increasing counter but, on PostgreSQL
    with several writers, may become visible out of order: a hole below the newest id seen is
    re-checked for ``hole_wait_s`` before it is taken for a rolled-back (never visible) id.

    ``low``: every id <= low is settled (sent or given up); ``pending``: ids > low already sent.
    """

    def __init__(self, after_id: int, hole_wait_s: float = 5.0) -> None:
        self.low = after_id
        self.sent: set[int] = set()
        self.holes: dict[int, float] = {}  # missing id -> when first noticed (monotonic)
        self.hole_wait_s = hole_wait_s

    def accept(self, ids: list[int], now: float | None = None) -> list[int]:
        """Of the ids just read (those > low, plus any re-checked holes), the ones to send now."""
        now = time.monotonic() if now is None else now
        new = sorted(i for i in set(ids) if i > self.low and i not in self.sent)
        self.sent.update(new)
        for i in new:
            self.holes.pop(i, None)
        top = max(self.sent, default=self.low)
        for i in range(self.low + 1, top):
            if i not in self.sent and i not in self.holes:
                self.holes[i] = now
        for i, since in list(self.holes.items()):
            if now - since > self.hole_wait_s:
                del self.holes[i]
                self.sent.add(i)  # given up: treated as settled
        while self.low + 1 in self.sent:
            self.low += 1
            self.sent.discard(self.low)
        return new

    @property
    def last_id(self) -> int:
        """The id to resume after (what the page should send as Last-Event-ID)."""
        return self.low
