"""The subscriber's local store (SQLite): every message delivered, and the position reached per
(publisher, kind), so a restarted control room resumes where it was and never shows a message twice."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from edge.feed.messages import Message

Position = tuple[int, int]  # (epoch, seq)


class Store:
    """The subscriber's local SQLite store: received messages and last position per stream.

    path: file, or ":memory:" for a listener that need not survive restarts.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: survives a process crash
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS messages (
                msg_id TEXT PRIMARY KEY, publisher_id TEXT, kind TEXT, epoch INTEGER, seq INTEGER,
                station_id TEXT, event_id TEXT, time_utc TEXT, received_unix_s REAL, body TEXT);
            CREATE INDEX IF NOT EXISTS messages_stream ON messages (publisher_id, kind, epoch, seq);
            CREATE TABLE IF NOT EXISTS positions (
                publisher_id TEXT, kind TEXT, epoch INTEGER, seq INTEGER, PRIMARY KEY (publisher_id, kind));
        """)

    def has(self, msg_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM messages WHERE msg_id=?", (msg_id,)).fetchone() is not None

    def has_position(self, publisher_id: str, kind: str, epoch: int, seq: int) -> bool:
        return self._db.execute("SELECT 1 FROM messages WHERE publisher_id=? AND kind=? AND epoch=? AND seq=?",
                                (publisher_id, kind, epoch, seq)).fetchone() is not None

    def add(self, msg: Message) -> None:
        b = msg.body
        self._db.execute("INSERT OR IGNORE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (b["msg_id"], b["publisher_id"], b["kind"], b["epoch"], b["seq"], b["station_id"],
                          b.get("event_id"), b["time_utc"], time.time(), json.dumps(b)))

    def position(self, publisher_id: str, kind: str) -> Position | None:
        row = self._db.execute("SELECT epoch, seq FROM positions WHERE publisher_id=? AND kind=?",
                               (publisher_id, kind)).fetchone()
        return (row[0], row[1]) if row else None

    def set_position(self, publisher_id: str, kind: str, pos: Position) -> None:
        self._db.execute("INSERT OR REPLACE INTO positions VALUES (?,?,?,?)", (publisher_id, kind, *pos))

    def positions(self, kind: str) -> dict[str, list[int]]:
        rows = self._db.execute("SELECT publisher_id, epoch, seq FROM positions WHERE kind=?", (kind,))
        return {p: [e, s] for p, e, s in rows}

    def prune(self, max_age_days: float, now_unix_s: float | None = None) -> int:
        """Forget messages received more than ``max_age_days`` ago; positions stay. Safe for dedupe:
        catch-up only ever sends what follows a position, and two-path copies arrive together."""
        now = time.time() if now_unix_s is None else now_unix_s
        return self._db.execute("DELETE FROM messages WHERE received_unix_s < ?",
                                (now - max_age_days * 86400.0,)).rowcount

    def close(self) -> None:
        self._db.close()
