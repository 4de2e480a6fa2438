"""UTC wall time as every message, log line and recording writes it: ISO 8601 with microseconds
and a 'Z', e.g. ``2026-11-26T20:41:07.123456Z`` (docs/messages.md ``time_utc``). Microseconds
because an event's time comes from its frame's capture time (t_ns): a coarser stamp would put
frames 1 ms apart at the same time. The one formatter and its parser."""
from __future__ import annotations

import re
from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")  # what format_utc writes


def format_utc(t: datetime) -> str:
    """An aware datetime -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (converted to UTC)."""
    return t.astimezone(UTC).strftime(FORMAT)


def utc_iso(unix_s: float | None = None) -> str:
    """Now (or ``unix_s``, seconds since the epoch) as ``format_utc`` writes it."""
    return format_utc(datetime.now(UTC) if unix_s is None else datetime.fromtimestamp(unix_s, UTC))


def parse_utc(text: str) -> datetime:
    """ISO 8601 UTC ('Z' or '+00:00', any fraction) -> aware datetime (Python >= 3.11 reads 'Z')."""
    return datetime.fromisoformat(text)
