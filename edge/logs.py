"""Station logging: one JSON object per line (or readable text), repeats rate-limited.

A camera that fails 8.7 times a second for an hour must not write 30 000 identical lines: the
``RepeatFilter`` lets the first occurrence of a message through, swallows repeats for
``window_s`` seconds, then lets the next one through carrying ``repeated`` = how many were
swallowed. Messages are "the same" when logger, level and the rendered text agree -- so
"camera rgb offline" and "camera thermal offline" are counted apart, and a message that carries
a changing number is not a repeat (keep such numbers in ``extra`` when the line can flood).

Extra fields passed with ``extra={...}`` (camera, event, outage_s...) become JSON keys.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

from edge.utc import utc_iso

# LogRecord attributes that are not user extras
_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """{"t": ISO-8601 UTC, "level", "logger", "msg", extras..., "exc"?} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "t": utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record_extras(record).items():
            out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        s = super().format(record)
        n = getattr(record, "repeated", 0)
        return f"{s} (repeated {n} more times)" if n else s


class RepeatFilter(logging.Filter):
    """Pass a message once per ``window_s``; count the repeats in between (see module doc)."""

    def __init__(self, window_s: float, clock: Any = time.monotonic):
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple, list] = {}  # key -> [last emitted at, suppressed count]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window_s <= 0:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return False
            if entry is not None and entry[1]:
                record.repeated = entry[1]
            self._seen[key] = [now, 0]
            if len(self._seen) > 10_000:  # bound memory under a flood of distinct messages
                self._seen.clear()
        return True


def setup_logging(fmt: str = "json", level: str = "info", repeat_window_s: float = 60.0,
                  stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger for a station process. Returns the handler (tests remove it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RepeatFilter(repeat_window_s))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_thermal_edge", False):
            root.removeHandler(h)
    handler._thermal_edge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
