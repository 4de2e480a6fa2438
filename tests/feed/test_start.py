"""Where a listener starts: "now" (the gateway's position at first contact) unless history is
asked for (--since / --from-start); journal lines are marked as caught up."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from edge.feed.publishing import utc_iso
from edge.paths import REPO_ROOT
from tests.support import wait_until

from .helpers import ListenerThread, alert_event, assert_exactly_once, small_queue_feed

N_HISTORY = 5


def publish(feed, ids, time_utc=None):
    for i in ids:
        feed.publisher.publish_event(alert_event(i), time_utc(i) if time_utc else utc_iso())


def ids_of(feed, seqs):
    return [f"gate-1/{feed.publisher.epoch}/alert/{s}" for s in seqs]


@pytest.mark.slow
@pytest.mark.parametrize("catchup_given", [True, False], ids=["--catchup given", "catch-up learned"])
def test_now_skips_the_journal_but_catches_up_after_first_contact(feeds, ctx, catchup_given):
    feed = feeds.open()
    publish(feed, range(N_HISTORY))  # retained history
    catchup = [feed.catchup_endpoint] if catchup_given else []
    with ListenerThread(ctx, [feed.endpoint], catchup=catchup, start="now") as lt:
        wait_until(lambda: lt.listener.stats.heartbeats >= 2, what="first contact")
        publish(feed, range(N_HISTORY, N_HISTORY + 3))
        wait_until(lambda: len(lt.messages) >= 3, what="new alerts")
        time.sleep(0.6)  # heartbeats and any catch-up had their chance to add history
    assert_exactly_once(lt.msg_ids(), ids_of(feed, range(N_HISTORY + 1, N_HISTORY + 4)), "start now")
    assert not any(m.caught_up for m in lt.messages)
    if catchup_given:
        assert lt.listener.stats.history_skipped == N_HISTORY


@pytest.mark.slow
def test_now_still_fills_gaps_after_first_contact(feeds, ctx, tmp_path):
    """A slow consumer past its high-water mark: what it drops after first contact comes from the
    journal (marked caught up); what was there before it came is not delivered."""
    feed = small_queue_feed(ctx, feeds, tmp_path)
    publish(feed, range(N_HISTORY))
    with ListenerThread(ctx, [feed.endpoint], rcv_hwm=5, rcv_buf=4096, start="now") as lt:
        wait_until(lambda: lt.listener.stats.heartbeats > 0, what="first contact")
        lt.listener.slow_down_s = 0.01
        publish(feed, range(N_HISTORY, N_HISTORY + 200))
        wait_until(lambda: len(lt.messages) >= 200, what="all new alerts")
        time.sleep(0.5)
    assert lt.listener.stats.caught_up > 0  # void without a real gap
    assert sum(m.caught_up for m in lt.messages) == lt.listener.stats.caught_up  # each journal copy is marked
    assert_exactly_once(lt.msg_ids(), ids_of(feed, range(N_HISTORY + 1, N_HISTORY + 201)), "start now, gaps filled")


def test_since_delivers_history_measured_since_then(feeds, ctx):
    feed = feeds.open()
    publish(feed, range(6), time_utc=lambda i: f"2026-11-26T09:00:0{i}.000000Z")
    since = datetime(2026, 11, 26, 9, 0, 3, tzinfo=UTC)
    with ListenerThread(ctx, [feed.endpoint], catchup=[feed.catchup_endpoint], since_utc=since) as lt:
        wait_until(lambda: len(lt.messages) >= 3, what="history since 09:00:03")
        time.sleep(0.5)
    assert_exactly_once(lt.msg_ids(), ids_of(feed, [4, 5, 6]), "since")
    assert all(m.caught_up for m in lt.messages)
    assert lt.listener.stats.history_skipped == 3


def _listen(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "listen", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(proc: subprocess.Popen, n: int, timeout_s: float = 20.0) -> list[str]:
    out: list[str] = []

    def read():
        while len(out) < n:
            line = proc.stdout.readline()
            if not line:
                return
            out.append(line.rstrip("\n"))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout_s)
    return out


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    return proc.communicate(timeout=10)


@pytest.mark.slow
def test_cli_listen_starts_now_and_marks_caught_up_lines(feeds):
    feed = feeds.open()
    publish(feed, range(N_HISTORY), time_utc=lambda i: f"2026-11-26T09:00:0{i}.123456Z")
    now = _listen([feed.endpoint, "--json", "--catchup", feed.catchup_endpoint])
    full = _listen([feed.endpoint, "--from-start"])
    try:
        first = _lines(full, N_HISTORY)
        assert len(first) == N_HISTORY
        assert all(ln.endswith(" (caught up)") for ln in first), first
        assert first[0].startswith("2026-11-26T09:00:00.123456Z ALERT")  # the original time
        time.sleep(2.0)  # `now` has had its first heartbeats
        publish(feed, [99])
        got = _lines(now, 1)
        assert len(got) == 1
        body = json.loads(got[0])
        assert body["seq"] == N_HISTORY + 1 and "caught_up" not in body  # live, and only the new one
    finally:
        out, err = _stop(now)
        _stop(full)
    assert out == ""  # nothing else followed: the journal was not printed
    assert f"{N_HISTORY} older journal messages not shown" in err


def test_cli_since_must_be_a_time(capsys):
    from edge.cli import main as cli_main

    assert cli_main(["listen", "tcp://127.0.0.1:1", "--since", "yesterday"]) == 2
    err = capsys.readouterr().err
    assert "--since 'yesterday'" in err and err.count("\n") == 1
