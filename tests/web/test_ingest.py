"""The console's subscriber on real ZeroMQ sockets (loopback, random ports): a real Publisher with
a journal publishes; the console's Ingest (edge.feed.client.Listener underneath) stores every
alert once, across its own restart and a locked database, and counts unparseable messages."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa
import zmq

from edge.web.console import queries
from edge.web.console import schema as t
from edge.web.console.ingest import Ingest
from edge.web.console.schema import make_engine
from edge.web.console.store import ConsoleStore
from tests.feed.helpers import alert_event, open_test_feed
from tests.support import wait_until

TIME = "2026-11-26T09:00:06.500Z"


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.term()


def stored_alerts(store: ConsoleStore) -> list[str]:
    with store.read() as c:
        return sorted(a["event_id"] for a in queries.queue(c, 10_000))


def alert_messages(store: ConsoleStore) -> int:
    with store.read() as c:
        return c.execute(sa.select(sa.func.count()).select_from(t.feed_messages)
                         .where(t.feed_messages.c.kind == "alert")).scalar()


def start_ingest(ctx, store, feed, notify=lambda: None) -> Ingest:
    return Ingest(ctx, store, [feed.endpoint], catchup=[feed.catchup_endpoint], request_timeout_s=0.5,
                  notify=notify).start()


@pytest.mark.slow
def test_alerts_images_status_and_heartbeats_arrive(ctx, tmp_path, store):
    notified = []
    with open_test_feed(ctx, tmp_path, include_images=True) as feed:
        ingest = start_ingest(ctx, store, feed, notify=lambda: notified.append(1))
        try:
            time.sleep(0.3)  # subscribed; earlier alerts would come by catch-up anyway
            for track in range(1, 6):
                feed.publisher.publish_event(alert_event(track, images=True), TIME)
                feed.publisher.publish_event(alert_event(track, type_="end", images=True), TIME)
            feed.publisher.publish_event(alert_event(7, kind="screening"), TIME)
            feed.publisher.publish_status({"state": "ok", "blackbody": {"state": "ok"}, "paired_fps": 8.5}, TIME)
            wait_until(lambda: alert_messages(store) == 10, what="10 alert messages stored")
            wait_until(lambda: ingest.stats.by_kind["status"] >= 1, what="status stored")
            wait_until(lambda: ingest.listener.stats.heartbeats >= 2, what="heartbeats")
        finally:
            ingest.stop()
    assert len(stored_alerts(store)) == 5  # one row per person: new + end
    with store.read() as c:
        a = queries.queue(c, 10)[0]
        assert a["images"] == "rgb_jpeg,thermal_jpeg" and a["last_type"] == "end"
        assert queries.image(c, a["event_id"], "rgb_jpeg")[:2] == b"\xff\xd8"
        (row,) = queries.stations(c, time.time(), 30)
    assert (row.station_id, row.liveness, row.blackbody, row.pairs_per_s) == ("gate-1", "online", "ok", 8.5)
    assert notified and ingest.diagnostics()["unparseable total"] == 0


@pytest.mark.slow
def test_console_restart_catches_up_exactly_once(ctx, tmp_path, store):
    with open_test_feed(ctx, tmp_path) as feed:
        ingest = start_ingest(ctx, store, feed)
        for track in range(1, 11):
            feed.publisher.publish_event(alert_event(track), TIME)
        wait_until(lambda: alert_messages(store) == 10, what="first 10")
        ingest.stop()
        for track in range(11, 31):  # while the console is down
            feed.publisher.publish_event(alert_event(track), TIME)
        ingest = start_ingest(ctx, store, feed)
        try:
            for track in range(31, 41):
                feed.publisher.publish_event(alert_event(track), TIME)
            wait_until(lambda: alert_messages(store) == 40, what="all 40 after the restart")
            time.sleep(0.5)
        finally:
            ingest.stop()
    assert stored_alerts(store) == sorted(f"gate-1-{feed.publisher.epoch}-alert-{i}" for i in range(1, 41))
    assert ingest.listener.stats.caught_up >= 20


def test_unparseable_messages_are_counted_not_fatal(ctx, tmp_path, store):
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    with open_test_feed(ctx, tmp_path) as feed:
        ingest = Ingest(ctx, store, [f"tcp://127.0.0.1:{port}", feed.endpoint], request_timeout_s=0.5).start()
        try:
            time.sleep(0.3)
            for frames in ([b"alert.gate-x", b"{not json"], [b"alert.gate-x", b'{"schema": 99}'],
                           [b"alert.gate-x", b"\xff\xfe", b"x"]):
                pub.send_multipart(frames)
            feed.publisher.publish_event(alert_event(1), TIME)
            wait_until(lambda: sum(ingest.listener.stats.bad.values()) == 3, what="3 bad messages counted")
            wait_until(lambda: alert_messages(store) == 1, what="the good alert")
        finally:
            ingest.stop()
            pub.close()
    d = ingest.diagnostics()
    assert d["unparseable total"] == 3 and set(d["unparseable"]) == {"json", "version", "encoding"}
    assert d["subscriber"] == "stopped"


@pytest.mark.slow
def test_locked_database_loses_nothing(ctx, tmp_path):
    path = tmp_path / "console.sqlite"
    store = ConsoleStore(make_engine(f"sqlite:///{path}", busy_timeout_s=0.1))
    with open_test_feed(ctx, tmp_path) as feed:
        ingest = start_ingest(ctx, store, feed)
        try:
            feed.publisher.publish_event(alert_event(1), TIME)
            wait_until(lambda: alert_messages(store) == 1, what="first alert")
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            for track in range(2, 21):
                feed.publisher.publish_event(alert_event(track), TIME)
            wait_until(lambda: ingest.stats.db_errors >= 2, what="the ingest to hit the lock")
            time.sleep(1.0)
            blocker.execute("COMMIT")
            blocker.close()
            wait_until(lambda: alert_messages(store) == 20, what="all 20 after the lock is released")
        finally:
            ingest.stop()
    assert len(stored_alerts(store)) == 20
    assert "locked" in ingest.diagnostics()["last database error"]
    store.engine.dispose()


def test_notify_is_called_from_the_ingest_thread(ctx, tmp_path, store):
    threads = set()
    with open_test_feed(ctx, tmp_path) as feed:
        ingest = start_ingest(ctx, store, feed, notify=lambda: threads.add(threading.current_thread().name))
        try:
            feed.publisher.publish_event(alert_event(1), TIME)
            wait_until(lambda: threads, what="a notification")
        finally:
            ingest.stop()
    assert threads == {"console-ingest"}


@pytest.mark.slow
def test_two_console_instances_share_postgresql(ctx, tmp_path, pg_cluster):
    """Several consoles on one PostgreSQL: each subscribes, every alert is stored once, and an
    acknowledgement made through one is refused to an operator of the other."""
    url = pg_cluster.new_database()
    stores = [ConsoleStore(make_engine(url)) for _ in range(2)]
    with open_test_feed(ctx, tmp_path) as feed:
        ingests = [start_ingest(ctx, s, feed) for s in stores]
        try:
            time.sleep(0.3)
            for track in range(1, 31):
                feed.publisher.publish_event(alert_event(track), TIME)
            wait_until(lambda: alert_messages(stores[0]) == 30, what="30 alerts in the shared database")
            time.sleep(1.0)
        finally:
            for i in ingests:
                i.stop()
    assert stored_alerts(stores[0]) == stored_alerts(stores[1]) and len(stored_alerts(stores[1])) == 30
    assert sum(i.stats.stored for i in ingests) == 30  # each message stored by exactly one instance
    eid = stored_alerts(stores[0])[0]
    stores[0].take(eid, "ann")
    with pytest.raises(Exception, match="already acknowledged by ann"):
        stores[1].take(eid, "bob")
    for s in stores:
        s.engine.dispose()


def test_full_database_loses_nothing(ctx, tmp_path):
    """SQLite 'database or disk is full' (max_page_count stands in for a full disk): the ingest
    retries, says why in the diagnostics, and stores everything once space is back."""
    from sqlalchemy import event

    limit = [1_000_000]
    engine = make_engine(f"sqlite:///{tmp_path / 'console.sqlite'}", busy_timeout_s=0.2)

    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn, _record) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {limit[0]}")

    store = ConsoleStore(engine)
    with open_test_feed(ctx, tmp_path, include_images=True) as feed:
        ingest = start_ingest(ctx, store, feed)
        try:
            feed.publisher.publish_event(alert_event(1, images=True), TIME)
            wait_until(lambda: alert_messages(store) == 1, what="first alert")
            with store.read() as c:
                limit[0] = c.exec_driver_sql("PRAGMA page_count").scalar()
            engine.dispose()  # new connections get the tiny limit: the disk is full
            for track in range(2, 21):
                feed.publisher.publish_event(alert_event(track, images=True), TIME)
            wait_until(lambda: ingest.stats.db_errors >= 2, what="the ingest to hit the full database")
            assert "full" in ingest.diagnostics()["last database error"]
            limit[0] = 1_000_000
            engine.dispose()  # space is back
            wait_until(lambda: alert_messages(store) == 20, what="all 20 once there is space again")
        finally:
            ingest.stop()
    assert len(stored_alerts(store)) == 20
    engine.dispose()
