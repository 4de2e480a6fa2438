"""Silence is a report too: the timers and rules that turn "nothing arrives" into a message.

One place for every liveness timer of the feed (the listener, the proxy's upstreams and the
ZAP denial log read them from here; tests/feed/test_liveness.py pins them):

- ``NO_HEARTBEAT_S``: an endpoint (gateway or proxy) that has sent nothing for this long is
  reported, once per endpoint, as "no heartbeat from EP for 5 s (gateway down, wrong endpoint, or
  CURVE key not accepted)". A CURVE client whose key the server refuses gets no error from
  ZeroMQ at all -- the connection just stays silent -- so this line is how it learns.
- ``SILENCE_REPEAT_S``: while the silence lasts, the report is repeated this often (one line,
  never a flood); when anything arrives again, one "back" line says so.
- ``DENIAL_REPEAT_S``: a server logs each refused client key once, then at most once per this
  window with the count of refusals since.

``SilenceWatch`` is a pure state machine over a caller-supplied monotonic clock, so its rules
are tested table-driven; the sockets stay with the listener and the proxy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.utc import utc_iso

NO_HEARTBEAT_S = 5.0  # gateway default heartbeat is 1 s (FeedConfig.heartbeat_s): 5 missed
SILENCE_REPEAT_S = 30.0
DENIAL_REPEAT_S = 60.0
HEARTBEATS_MISSED = 3  # a publisher with a slower heartbeat is silent only after this many
SILENCE_CAUSES = "gateway down, wrong endpoint, or CURVE key not accepted"


@dataclass
class Notice:
    """A change (or a repeat) of an endpoint's liveness, for logs and ``listen --json``.

    event: "no_heartbeat" (silent for ``silent_s``; repeated while it lasts) or
    "heartbeat_back" (something arrived after ``silent_s`` of silence).
    """

    endpoint: str
    event: str
    silent_s: float
    message: str

    def body(self, now_unix_s: float | None = None) -> dict[str, Any]:
        """The ``listen --json`` line (docs/messages.md, "Listener notices")."""
        return {"kind": "listener", "event": self.event, "endpoint": self.endpoint,
                "silent_s": round(self.silent_s, 1), "message": self.message,
                "time_utc": utc_iso(now_unix_s)}


class SilenceWatch:
    """Liveness of one endpoint from the times anything arrived on it.

    ``heard(now_s, interval_s)`` on every message (heartbeat ``interval_s`` when known),
    ``check(now_s)`` from the caller's timer loop; each returns a Notice when one is due.
    what: how the endpoint is named in messages ("" or e.g. "upstream ").
    """

    def __init__(self, endpoint: str, now_s: float, *, what: str = "", no_heartbeat_s: float = NO_HEARTBEAT_S,
                 repeat_s: float = SILENCE_REPEAT_S) -> None:
        self.endpoint = endpoint
        self.what = what
        self.no_heartbeat_s = no_heartbeat_s
        self.repeat_s = repeat_s
        self.last_heard_s = now_s  # since start-up: a never-heard endpoint is reported too
        self.interval_s = 0.0
        self.silent = False
        self.ever_heard = False
        self._next_report_s = 0.0

    def limit_s(self) -> float:
        """Silence longer than this is reported: NO_HEARTBEAT_S, or 3 heartbeats if they are slower."""
        return max(self.no_heartbeat_s, HEARTBEATS_MISSED * self.interval_s)

    def heard(self, now_s: float, interval_s: float | None = None) -> Notice | None:
        if interval_s:
            self.interval_s = max(self.interval_s, float(interval_s))
        gap_s = now_s - self.last_heard_s
        self.last_heard_s = now_s
        self.ever_heard = True
        if not self.silent:
            return None
        self.silent = False
        return Notice(self.endpoint, "heartbeat_back", gap_s,
                      f"heartbeats from {self.what}{self.endpoint} again after {gap_s:.0f} s of silence")

    def check(self, now_s: float) -> Notice | None:
        silent_s = now_s - self.last_heard_s
        if silent_s <= self.limit_s():
            return None
        if self.silent and now_s < self._next_report_s:
            return None
        first = not self.silent
        self.silent = True
        self._next_report_s = now_s + self.repeat_s
        since = "" if first else "still "
        never = "" if self.ever_heard else ", nothing received since start-up"
        return Notice(self.endpoint, "no_heartbeat", silent_s,
                      f"{since}no heartbeat from {self.what}{self.endpoint} for {silent_s:.0f} s "
                      f"({SILENCE_CAUSES}{never})")
