"""The gateway's alert journal: every journaled message is written here, synced, before it is sent.

SQLite in WAL mode with ``synchronous=FULL``: a commit returns only after the WAL is fsynced,
so a message that reached the socket survives SIGKILL or power loss of the gateway. The
catch-up server reads the same file through its own connection (WAL lets readers run beside
the single writer). Retention drops the oldest rows by age and by total stored bytes.

A Journal may be called from any thread, one call at a time: the Publisher that owns it holds
its lock around every append (a gateway's pipeline, a replay's loop or a test can publish from a
thread other than the one that opened the feed). Readers (the catch-up server) open their own.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.errors import UserError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    publisher_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stored_unix_s REAL NOT NULL,
    nbytes INTEGER NOT NULL,
    topic BLOB NOT NULL,
    body BLOB NOT NULL,
    image1 BLOB,
    image2 BLOB,
    UNIQUE (publisher_id, kind, epoch, seq)
);
CREATE TABLE IF NOT EXISTS epochs (
    publisher_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    started_unix_s REAL NOT NULL,
    PRIMARY KEY (publisher_id, epoch)
);
CREATE TABLE IF NOT EXISTS pruned (  -- newest position retention deleted, per stream
    publisher_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (publisher_id, kind)
);
"""


class JournalError(UserError):
    """The journal file cannot be opened or written (message names the file)."""


@dataclass
class JournalEntry:
    epoch: int
    seq: int
    frames: list[bytes]  # [topic, body, *images] exactly as sent


class Journal:
    """Append-only, synced store of the feed messages a publisher sends.

    path: SQLite file (created with its folder). max_age_days / max_bytes: retention; rows past
    either limit are deleted oldest first by ``prune()`` (called every ``prune_every`` appends).
    """

    def __init__(self, path: str | Path, *, max_age_days: float = 30.0, max_bytes: int = 512 * 2**20,
                 prune_every: int = 100, readonly: bool = False) -> None:
        self.path = Path(path)
        self.max_age_days = max_age_days
        self.max_bytes = max_bytes
        self.prune_every = prune_every
        self._appends = 0
        try:
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: the owner serialises calls (Publisher._lock); with the default an
            # append from another thread raised and the alert left without its journal copy
            self._db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if not readonly:
                self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise JournalError(f"{self.path}: cannot open journal: {e}") from None

    def close(self) -> None:
        self._db.close()

    # --- writer side ---------------------------------------------------------------------------

    def start_epoch(self, publisher_id: str, now_unix_s: float | None = None) -> int:
        """Record a publisher start; returns its new epoch, larger than every earlier one.

        Wall-clock milliseconds, bumped past the last recorded epoch so a clock step back
        cannot reuse an epoch.
        """
        now = time.time() if now_unix_s is None else now_unix_s
        (last,) = self._db.execute("SELECT MAX(epoch) FROM epochs WHERE publisher_id=?", (publisher_id,)).fetchone()
        epoch = max(int(now * 1000), (last or 0) + 1)
        with self._db:
            self._db.execute("INSERT INTO epochs VALUES (?,?,?)", (publisher_id, epoch, now))
        return epoch

    def append(self, publisher_id: str, epoch: int, kind: str, seq: int, frames: list[bytes]) -> None:
        """Store one message (committed and fsynced on return)."""
        topic, body, *images = frames
        image_cols: list[bytes | None] = [*images, None, None][:2]  # image1, image2 (NULL when absent)
        nbytes = sum(len(f) for f in frames)
        try:
            self._db.execute(
                "INSERT INTO messages (publisher_id, epoch, kind, seq, stored_unix_s, nbytes, topic, body,"
                " image1, image2) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (publisher_id, epoch, kind, seq, time.time(), nbytes, topic, body, *image_cols),
            )
        except sqlite3.Error as e:
            raise JournalError(f"{self.path}: cannot append: {e}") from None
        self._appends += 1
        if self._appends % self.prune_every == 0:
            self.prune()

    def prune(self, now_unix_s: float | None = None) -> int:
        """Delete rows older than max_age_days, then oldest rows until under max_bytes. Returns rows deleted."""
        now = time.time() if now_unix_s is None else now_unix_s
        with self._db:
            (cut,) = self._db.execute("SELECT MAX(id) FROM messages WHERE stored_unix_s < ?",
                                      (now - self.max_age_days * 86400.0,)).fetchone()
            (total,) = self._db.execute("SELECT COALESCE(SUM(nbytes),0) FROM messages").fetchone()
            if total > self.max_bytes:
                # The oldest rows whose cumulative size must go to get back under the limit.
                (size_cut,) = self._db.execute(
                    "SELECT id FROM (SELECT id, SUM(nbytes) OVER (ORDER BY id) AS c FROM messages)"
                    " WHERE c >= ? ORDER BY id LIMIT 1", (total - self.max_bytes,)).fetchone()
                cut = max(cut or 0, size_cut)
            if not cut:
                return 0
            # Remember the newest deleted position per stream, so catch-up can say "some were pruned".
            self._db.execute(
                "INSERT OR REPLACE INTO pruned SELECT publisher_id, kind, MAX(epoch), 0 FROM messages"
                " WHERE id <= ? GROUP BY publisher_id, kind", (cut,))
            self._db.execute(
                "UPDATE pruned SET seq = (SELECT MAX(m.seq) FROM messages m WHERE m.id <= ? AND"
                " m.publisher_id = pruned.publisher_id AND m.kind = pruned.kind AND m.epoch = pruned.epoch)"
                " WHERE seq = 0", (cut,))
            return self._db.execute("DELETE FROM messages WHERE id <= ?", (cut,)).rowcount

    # --- reader side ---------------------------------------------------------------------------

    def read_after(self, publisher_id: str, kind: str, epoch: int, seq: int, limit: int) -> list[JournalEntry]:
        """Up to ``limit`` messages of (publisher, kind) after position (epoch, seq), in order."""
        rows = self._db.execute(
            "SELECT epoch, seq, topic, body, image1, image2 FROM messages"
            " WHERE publisher_id=? AND kind=? AND (epoch > ? OR (epoch = ? AND seq > ?))"
            " ORDER BY epoch, seq LIMIT ?",
            (publisher_id, kind, epoch, epoch, seq, limit),
        ).fetchall()
        return [JournalEntry(e, s, [t, b] + [i for i in (i1, i2) if i is not None]) for e, s, t, b, i1, i2 in rows]

    def open_events(self, publisher_id: str, before_epoch: int) -> list[bytes]:
        """JSON bodies of the last message of every event (``event_id``) of ``publisher_id`` in an
        epoch before ``before_epoch`` that never got its ``end``: events left open by a run that was
        killed (a clean shutdown ends every track). Oldest first. One pass in SQLite's JSON1."""
        rows = self._db.execute(
            "SELECT m.body FROM messages m JOIN ("
            "  SELECT MAX(id) AS last_id, SUM(json_extract(CAST(body AS TEXT), '$.type') = 'end') AS ended"
            "  FROM messages WHERE publisher_id=? AND epoch<? AND kind IN ('alert', 'screening')"
            "  GROUP BY json_extract(CAST(body AS TEXT), '$.event_id')) e ON m.id = e.last_id"
            " WHERE e.ended = 0 ORDER BY m.id", (publisher_id, before_epoch)).fetchall()
        return [bytes(body) for (body,) in rows]

    def pruned_through(self, publisher_id: str, kind: str) -> tuple[int, int]:
        """Newest (epoch, seq) retention has deleted for this stream; (0, 0) if none."""
        row = self._db.execute("SELECT epoch, seq FROM pruned WHERE publisher_id=? AND kind=?",
                               (publisher_id, kind)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def count(self, publisher_id: str | None = None, kind: str | None = None) -> int:
        args: list[str] = []
        q = "SELECT COUNT(*) FROM messages WHERE 1=1"
        if publisher_id is not None:
            q, args = q + " AND publisher_id=?", args + [publisher_id]
        if kind is not None:
            q, args = q + " AND kind=?", args + [kind]
        return self._db.execute(q, args).fetchone()[0]

    def all_frames(self, kind: str) -> list[list[bytes]]:
        """Every retained message of ``kind`` (tests and tools)."""
        rows = self._db.execute("SELECT topic, body FROM messages WHERE kind=? ORDER BY id", (kind,)).fetchall()
        return [[t, b] for t, b in rows]
