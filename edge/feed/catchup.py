"""Catch-up channel (zguide ch. 5, Clone pattern): a ROUTER answering "everything after
position (epoch, seq) of kind K" from the journal, in bounded batches.

Request (client DEALER -> ROUTER), two frames::

    [b"CATCHUP", JSON {"req": int, "kind": "alert", "positions": {publisher_id: [epoch, seq]},
                       "limit": int}]

The client sends its positions for every publisher it knows; the server uses the one of its
own publisher (absent: from the oldest retained). ``req`` is an integer (not a boolean); ``limit``
an integer, default and cap ``MAX_BATCH``, 0 = send nothing, only say in END whether ``more``
exists. Replies, every tag an ASCII frame (docs/messages.md has the exact contract)::

    [b"MSG", req, topic, body, *images]      one per journaled message after the position,
                                              oldest first; req as decimal ASCII digits
    [b"END", JSON {"req", "publisher_id", "count", "more", "last": [e, s],
                   "truncated": bool}]        req as a JSON number; ``more``: ask again after
                                              ``last``; ``truncated``: retention deleted some
                                              of what was asked for (the client logs the loss)
    [b"ERR", JSON {"req", "error"}]           malformed request (req 0 when unreadable)

The same thread sends the publisher's heartbeats, so a gateway whose pipeline stalls still says
it is alive only while its feed service runs; a stalled pipeline shows in status messages.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import zmq

from edge.feed.journal import Journal
from edge.feed.messages import JOURNALED_KINDS

log = logging.getLogger(__name__)

MAX_BATCH = 200  # messages per reply batch; the client asks again while ``more``


def parse_position(value) -> tuple[int, int]:
    """A JSON [epoch, seq] of the catch-up protocol -> (epoch, seq); ValueError unless two ints >= 0."""
    if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v >= 0 for v in value)):
        return value[0], value[1]
    raise ValueError(f"position must be [epoch, seq] non-negative ints, got {value!r}")


class CatchupServer:
    """Serves catch-up requests for ``publisher_id`` from the journal at ``journal_path``.

    router: a bound ROUTER socket (created and bound by the caller; used only by this
    server's thread once ``start()`` is called). heartbeat: called every ``heartbeat_s``
    from the same thread (Publisher.heartbeat), or None.
    """

    def __init__(self, router: zmq.Socket, journal_path, publisher_id: str, *,
                 heartbeat: Callable[[], object] | None = None, heartbeat_s: float = 1.0) -> None:
        self.router = router
        self.journal_path = journal_path
        self.publisher_id = publisher_id
        self.heartbeat = heartbeat
        self.heartbeat_s = heartbeat_s
        self.requests = 0
        self.sent = 0
        self.bad_requests = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.sndhwm = 4 * MAX_BATCH

    def start(self) -> CatchupServer:
        self._thread = threading.Thread(target=self._run, name="feed-catchup", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if not self.router.closed:
            self.router.close(linger=0)

    def _run(self) -> None:
        journal = Journal(self.journal_path, readonly=True) if self.journal_path else None
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self.heartbeat is not None and now >= next_beat:
                    next_beat = now + self.heartbeat_s
                    self._guard("heartbeat", self.heartbeat)
                timeout_ms = int(max(0.0, min(0.1, next_beat - now)) * 1000)
                if dict(poller.poll(timeout_ms)).get(self.router):
                    frames = self.router.recv_multipart()
                    self._guard("catch-up request", self._handle, journal, frames)
        except zmq.ContextTerminated:
            pass
        finally:
            if journal is not None:
                journal.close()

    def _guard(self, what: str, fn, *args) -> None:
        """One failing request or heartbeat (journal locked, disk error) must not end the service."""
        try:
            fn(*args)
        except zmq.ContextTerminated:
            raise
        except Exception as e:  # noqa: BLE001 -- logged with its traceback, the loop goes on
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.exception("feed thread: %s failed (%d so far): %s", what, self.errors, e)

    def _handle(self, journal: Journal | None, frames: list[bytes]) -> None:
        identity = frames[0]
        req = 0
        try:
            if len(frames) != 3 or frames[1] != b"CATCHUP":
                raise ValueError(f"expected [CATCHUP, json], got {len(frames) - 1} frames")
            request = json.loads(frames[2])
            if not isinstance(request, dict):
                raise ValueError("request is not a JSON object")
            req = request.get("req", 0)
            if not isinstance(req, int) or isinstance(req, bool):
                raise ValueError(f"req={req!r}: must be an integer")
            kind = request.get("kind")
            if kind not in JOURNALED_KINDS:
                raise ValueError(f"kind={kind!r}; catch-up serves {JOURNALED_KINDS}")
            positions = request.get("positions") or {}
            if not isinstance(positions, dict):
                raise ValueError("positions must be an object {publisher_id: [epoch, seq]}")
            epoch, seq = parse_position(positions.get(self.publisher_id, [0, 0]))
            limit = request.get("limit", MAX_BATCH)
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise ValueError(f"limit={limit!r}: must be an integer >= 0")
            limit = min(limit, MAX_BATCH)
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            self.bad_requests += 1
            if self.bad_requests == 1:
                log.warning("catch-up: malformed request (%s); counting further ones silently", e)
            ok_req = isinstance(req, int) and not isinstance(req, bool)
            self._send(identity, [b"ERR", json.dumps({"req": req if ok_req else 0, "error": str(e)[:200]}).encode()])
            return
        self.requests += 1
        # One more than asked: ``more`` then says exactly whether anything follows this reply
        # (limit 0 makes the request a cheap "is there anything after my position?" probe).
        entries = journal.read_after(self.publisher_id, kind, epoch, seq, limit + 1) if journal else []
        more = len(entries) > limit
        entries = entries[:limit]
        req_b = str(req).encode()
        for entry in entries:
            if not self._send(identity, [b"MSG", req_b, *entry.frames]):
                return
        self.sent += len(entries)
        pruned = journal.pruned_through(self.publisher_id, kind) if journal else (0, 0)
        last = [entries[-1].epoch, entries[-1].seq] if entries else [epoch, seq]
        end = {"req": req, "publisher_id": self.publisher_id, "count": len(entries),
               "more": more, "last": last, "truncated": (epoch, seq) < pruned}
        self._send(identity, [b"END", json.dumps(end).encode()])

    def _send(self, identity: bytes, frames: list[bytes]) -> bool:
        try:
            self.router.send_multipart([identity, *frames], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:  # the client stopped reading; it will time out and ask again
            log.debug("catch-up: client queue full, dropping the rest of the reply")
        except zmq.ZMQError as e:  # EHOSTUNREACH: the client went away
            log.debug("catch-up: client gone (%s)", e)
        return False
