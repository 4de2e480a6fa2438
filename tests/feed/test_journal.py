"""The gateway journal: order across epochs, retention, and durability under SIGKILL."""
from __future__ import annotations

import signal
import sqlite3

import pytest

from edge.feed.journal import Journal, JournalError

from .helpers import python_proc


def frames(i: int, size: int = 10) -> list[bytes]:
    return [b"alert.s", b"x" * size + str(i).encode()]


def test_read_after_spans_epochs_in_order(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e1 = j.start_epoch("p", now_unix_s=1000.0)
    for seq in (1, 2, 3):
        j.append("p", e1, "alert", seq, frames(seq))
    j.append("p", e1, "screening", 1, frames(99))
    e2 = j.start_epoch("p", now_unix_s=1000.0)  # same clock reading: still a new, larger epoch
    assert e2 > e1
    j.append("p", e2, "alert", 1, frames(4))
    j.append("other", e2, "alert", 1, frames(5))
    got = [(e.epoch, e.seq) for e in j.read_after("p", "alert", e1, 1, 10)]
    assert got == [(e1, 2), (e1, 3), (e2, 1)]
    assert [(e.epoch, e.seq) for e in j.read_after("p", "alert", 0, 0, 2)] == [(e1, 1), (e1, 2)]
    assert j.read_after("p", "alert", e2, 1, 10) == []
    assert j.read_after("p", "alert", e1, 3, 10)[0].frames == frames(4)


def test_epoch_never_goes_back_with_the_clock(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e1 = j.start_epoch("p", now_unix_s=2_000_000.0)
    assert j.start_epoch("p", now_unix_s=1_000_000.0) == e1 + 1


def test_duplicate_position_is_refused(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.append("p", 1, "alert", 1, frames(1))
    with pytest.raises(JournalError, match="j.sqlite"):
        j.append("p", 1, "alert", 1, frames(1))


def test_retention_by_age_then_size_records_what_was_pruned(tmp_path):
    j = Journal(tmp_path / "j.sqlite", max_age_days=1.0, max_bytes=10_000, prune_every=10**9)
    for seq in range(1, 11):
        j.append("p", 7, "alert", seq, frames(seq, size=1000))
    assert j.pruned_through("p", "alert") == (0, 0)
    with j._db:  # age the first three rows by two days
        j._db.execute("UPDATE messages SET stored_unix_s = stored_unix_s - 2*86400 WHERE seq <= 3")
    assert j.prune() == 3
    assert j.pruned_through("p", "alert") == (7, 3)
    for seq in range(11, 16):  # 12 rows of ~1 KB against a 10 KB limit
        j.append("p", 7, "alert", seq, frames(seq, size=1000))
    deleted = j.prune()
    assert deleted >= 2 and j.count() == 12 - deleted
    assert sum(len(b) + len(t) for t, b in j.all_frames("alert")) <= 10_000
    assert j.pruned_through("p", "alert") == (7, 3 + deleted)
    assert j.read_after("p", "alert", 0, 0, 100)[0].seq == 4 + deleted


def test_prune_runs_every_n_appends(tmp_path):
    j = Journal(tmp_path / "j.sqlite", max_bytes=2000, prune_every=5)
    for seq in range(1, 21):
        j.append("p", 1, "alert", seq, frames(seq, size=300))
    assert j.count() <= 8


def test_unwritable_journal_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "file" / "j.sqlite")


KILLER = """
import os, signal, sys
from edge.feed.journal import Journal
j = Journal(sys.argv[1])
for seq in range(1, int(sys.argv[2]) + 1):
    j.append("p", 1, "alert", seq, [b"alert.s", b"body %d" % seq])
    print(seq, flush=True)  # acknowledged: the row must survive what follows
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_journal_survives_sigkill(tmp_path):
    path = tmp_path / "j.sqlite"
    proc = python_proc(["-c", KILLER, str(path), "50"], stdout=-1, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    acknowledged = [int(x) for x in out.split()]
    assert acknowledged == list(range(1, 51))
    assert (tmp_path / "j.sqlite-wal").exists()  # killed before any checkpoint: rows live in the WAL
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [s for (s,) in db.execute("SELECT seq FROM messages ORDER BY seq")] == acknowledged
