"""The console's subscriber: ``edge.feed.client.Listener`` (catch-up, dedupe, CURVE) running in a
thread, writing every message into the ``ConsoleStore`` and waking the pages.

Nothing is lost on a database error: the message is not recorded as held until it is stored, so
the ingest retries (logging and counting each failure) while the Listener's socket buffers and the
gateway's journal keep what follows; a stopped console simply catches up after its restart.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq
from sqlalchemy.exc import SQLAlchemyError

from edge.feed.client import Listener
from edge.feed.messages import Message
from edge.feed.security import ClientKeys
from edge.web.console.store import ConsoleStore

log = logging.getLogger(__name__)

KINDS = ("alert", "screening", "status")
HEARD_EVERY_S = 1.0  # write a station's "last heard" at most this often (heartbeats come every second)
RETRY_S = (0.05, 0.2, 0.5, 1.0, 2.0)


class StoppedWhileRetrying(Exception):
    """The console is stopping while the database refuses a write: the message stays un-held and
    is caught up after the restart."""


@dataclass
class IngestStats:
    stored: int = 0
    db_errors: int = 0
    last_db_error: str = ""
    last_db_error_unix_s: float | None = None
    by_kind: Counter = field(default_factory=Counter)


class _RetryingStore:
    """The Listener's Store interface over ConsoleStore, retrying database errors until ``stop``."""

    def __init__(self, store: ConsoleStore, ingest: Ingest) -> None:
        self._store, self._ingest = store, ingest

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._store, name)
        return lambda *a, **kw: self._ingest.retry(fn, *a, **kw)


class Ingest:
    """Subscribe with the Listener and store what it delivers. ``notify()`` is called after each
    stored change (from this thread): the web app wakes its event streams with it."""

    def __init__(self, ctx: zmq.Context, store: ConsoleStore, endpoints: list[str], *, catchup: Sequence[str] = (),
                 keys: ClientKeys | None = None, request_timeout_s: float = 2.0,
                 notify: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.notify = notify
        self.stats = IngestStats()
        self.stop_event = threading.Event()
        # on_heard: every publisher heard (heartbeats included) for the stations table's online/silent
        self.listener = Listener(ctx, endpoints, catchup=list(catchup), kinds=KINDS,
                                 store=_RetryingStore(store, self),  # type: ignore[arg-type]  # duck-typed Store
                                 keys=keys, request_timeout_s=request_timeout_s, on_heard=self._on_heard)
        self._heard_at: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def retry(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        for attempt in range(10**9):
            try:
                return fn(*args, **kwargs)
            except SQLAlchemyError as e:
                self.stats.db_errors += 1
                self.stats.last_db_error = str(e).splitlines()[0][:300]
                self.stats.last_db_error_unix_s = time.time()
                if attempt == 0 or attempt % 20 == 0:
                    log.error("console store: %s (retrying; nothing is lost, the feed keeps it)",
                              self.stats.last_db_error)
                if self.stop_event.is_set():
                    raise StoppedWhileRetrying() from None
                self.stop_event.wait(RETRY_S[min(attempt, len(RETRY_S) - 1)])
        raise AssertionError("unreachable")

    def _on_message(self, msg: Message) -> None:
        if self.retry(self.store.ingest, msg):
            self.stats.stored += 1
            self.stats.by_kind[msg.kind] += 1
            self.notify()

    def _on_heard(self, body: dict[str, Any]) -> None:
        now = time.monotonic()
        station = body["station_id"]
        if now - self._heard_at.get(station, 0.0) < HEARD_EVERY_S:
            return
        self._heard_at[station] = now
        try:
            self.store.heard(body)
        except SQLAlchemyError as e:  # liveness is refreshed by the next heartbeat
            self.stats.db_errors += 1
            self.stats.last_db_error = str(e).splitlines()[0][:300]

    def run(self) -> None:
        try:
            self.listener.run(self.stop_event, self._on_message)
        except StoppedWhileRetrying:
            log.warning("console store: stopped while the database refused writes; the feed will be caught up")
        except BaseException as e:  # shown in the diagnostics panel; the web pages keep serving
            self.error = e
            log.exception("feed subscriber stopped")
        finally:
            try:
                self.store.flush()
            except SQLAlchemyError as e:  # positions are only an optimisation: catch-up re-sends, dedupe drops
                log.warning("console store: positions not saved at stop (%s); catch-up will repeat a few", e)

    def start(self) -> Ingest:
        self._thread = threading.Thread(target=self.run, name="console-ingest", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def diagnostics(self) -> dict[str, Any]:
        s = self.listener.stats
        return {
            "subscriber": "running" if self.alive else f"stopped: {self.error!r}" if self.error else "stopped",
            "endpoints": [e for e, _ in self.listener.endpoints],
            "received": s.received, "heartbeats": s.heartbeats, "delivered": s.delivered,
            "duplicates dropped": s.duplicates, "via catch-up": s.caught_up, "gaps": s.gaps, "lost": s.lost,
            "unparseable": dict(s.bad), "unparseable total": sum(s.bad.values()),
            "stored": self.stats.stored, "database errors": self.stats.db_errors,
            "last database error": self.stats.last_db_error or "-",
        }
