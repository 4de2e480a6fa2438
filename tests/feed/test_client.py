"""Subscriber client on real loopback sockets: catch-up, gaps, dedupe, slow consumer, bad input."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.feed.client import Listener, Store, format_alert_line
from edge.feed.journal import Journal
from edge.feed.proxy import Proxy
from edge.feed.publishing import utc_iso
from tests.support import wait_until

from .helpers import ListenerThread, alert_event, assert_exactly_once, small_queue_feed


def journal_ids(tmp_path, station="gate-1", kind="alert") -> list[str]:
    j = Journal(tmp_path / f"{station}.sqlite", readonly=True)
    ids = [json.loads(b)["msg_id"] for _, b in j.all_frames(kind)]
    j.close()
    return ids


def test_late_subscriber_catches_up_then_follows_live(feeds, ctx, tmp_path):
    feed = feeds.open()
    for i in range(30):  # nobody is listening yet
        feed.publisher.publish_event(alert_event(i), utc_iso())
    with ListenerThread(ctx, [feed.endpoint], catchup=[feed.catchup_endpoint]) as lt:
        wait_until(lambda: len(lt.messages) >= 30, what="catch-up")
        for i in range(30, 60):
            feed.publisher.publish_event(alert_event(i), utc_iso())
        wait_until(lambda: len(lt.messages) >= 60, what="live alerts")
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path), "late subscriber")
    assert lt.listener.stats.caught_up >= 30


def test_catchup_endpoint_learned_from_messages(feeds, ctx, tmp_path):
    """No --catchup: the heartbeat names the gateway's catch-up endpoint and says what we missed."""
    feed = feeds.open()
    for i in range(5):
        feed.publisher.publish_event(alert_event(i), utc_iso())
    with ListenerThread(ctx, [feed.endpoint]) as lt:
        wait_until(lambda: len(lt.messages) >= 5, what="catch-up via the advertised endpoint")
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path), "learned catch-up")


def test_restarted_listener_resumes_from_its_store(feeds, ctx, tmp_path):
    feed = feeds.open()
    store_path = tmp_path / "room.sqlite"
    delivered = []
    for round_ in range(3):
        for i in range(10 * round_, 10 * round_ + 10):  # published while the listener is down
            feed.publisher.publish_event(alert_event(i), utc_iso())
        store = Store(store_path)
        with ListenerThread(ctx, [feed.endpoint], catchup=[feed.catchup_endpoint], store=store) as lt:
            wait_until(lambda: len(lt.messages) >= 10, what=f"round {round_}")
            wait_until(lambda: lt.listener.stats.catchup_requests > 0 and not lt.listener._requests,
                       what="catch-up finished")
        delivered += lt.msg_ids()
        store.close()
    assert_exactly_once(delivered, journal_ids(tmp_path), "listener restarts in-process")


def test_two_paths_to_one_gateway_deliver_once(feeds, ctx, tmp_path):
    """Subscribed directly and through a proxy: every alert arrives twice, is delivered once."""
    feed = feeds.open()
    proxy = Proxy(ctx, [(feed.endpoint, None)], "tcp://127.0.0.1:*")
    stop_proxy = threading.Event()
    proxy_thread = threading.Thread(target=proxy.run, args=(stop_proxy,), daemon=True)
    proxy_thread.start()
    assert proxy.bound.wait(10)
    try:
        with ListenerThread(ctx, [feed.endpoint, proxy.last_endpoint], catchup=[feed.catchup_endpoint]) as lt:
            wait_until(lambda: proxy.stats.forwarded > 2, what="proxy forwarding")
            for i in range(50):
                feed.publisher.publish_event(alert_event(i), utc_iso())
            wait_until(lambda: len(lt.messages) >= 50, what="alerts")
            wait_until(lambda: lt.listener.stats.duplicates >= 40, what="second copies")
    finally:
        stop_proxy.set()
        proxy_thread.join(5)
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path), "two paths")


@pytest.mark.slow
def test_slow_subscriber_beyond_high_water_mark_loses_nothing(feeds, ctx, tmp_path):
    # Built by hand (sockets are passed in): small queues and kernel buffers, set before bind, so a
    # slow consumer really overflows the high-water mark instead of resting in TCP buffers.
    feed = small_queue_feed(ctx, feeds, tmp_path)
    with ListenerThread(ctx, [feed.endpoint], rcv_hwm=5, rcv_buf=4096) as lt:
        lt.listener.slow_down_s = 0.01  # consumer far slower than the publisher
        wait_until(lambda: lt.listener.stats.received > 0, what="connected")
        for i in range(300):
            feed.publisher.publish_event(alert_event(i), utc_iso())
        wait_until(lambda: len(lt.messages) >= 300, what="all alerts")
    stats = lt.listener.stats
    # Dropped by the high-water mark, then fetched from the journal: the test is void without it.
    assert stats.caught_up > 0
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path),
                        f"slow subscriber ({stats.received - stats.heartbeats} live, {stats.caught_up} via catch-up)")


def test_without_journal_gaps_are_counted_as_lost(feeds, ctx, tmp_path):
    feed = feeds.open(journal_path=None, snd_hwm=5)
    with ListenerThread(ctx, [feed.endpoint], rcv_hwm=5) as lt:
        lt.listener.slow_down_s = 0.003
        wait_until(lambda: lt.listener.stats.received > 0, what="connected")
        for i in range(300):
            feed.publisher.publish_event(alert_event(i), utc_iso())
        stream = ("gate-1", "alert")
        wait_until(lambda: stream in lt.listener._streams and lt.listener._streams[stream].pos[1] == 300,
                   what="end of stream (from heartbeats)")
    assert 0 < lt.listener.stats.lost < 300 and len(lt.messages) < 300
    assert len(set(lt.msg_ids())) == len(lt.msg_ids())


def test_retention_loss_is_reported(feeds, ctx, tmp_path, caplog):
    feed = feeds.open()
    for i in range(20):
        feed.publisher.publish_event(alert_event(i), utc_iso())
    feed.publisher.journal.max_bytes = 3000  # 5 alerts (one is 575 B with topic, no images)
    feed.publisher.journal.prune()
    store = Store()
    epoch = feed.publisher.epoch
    store.set_position("gate-1", "alert", (epoch, 2))  # we had 2, the journal kept only the newest few
    with caplog.at_level(logging.WARNING), ListenerThread(ctx, [feed.endpoint], catchup=[feed.catchup_endpoint],
                                                        store=store) as lt:
        wait_until(lambda: store.position("gate-1", "alert") == (epoch, 20), what="caught up")
    assert 0 < len(lt.messages) < 18
    assert "deleted by the gateway's retention" in caplog.text


def test_malformed_messages_are_counted_logged_once_and_survived(feeds, ctx, tmp_path, caplog):
    feed = feeds.open()
    rogue = ctx.socket(zmq.PUB)
    rogue.linger = 0
    port = rogue.bind_to_random_port("tcp://127.0.0.1")
    garbage = [[b"alert.x", b"{not json"], [b"alert.x"], [b"alert.x", b"\xff" * 10],
               [b"alert.x", b"[]"], [b"alert.x", b"{}", b"img", b"img", b"img"], [b"heartbeat.x", b'{"schema": 9}']]
    with caplog.at_level(logging.WARNING), ListenerThread(
            ctx, [feed.endpoint, f"tcp://127.0.0.1:{port}"], catchup=[feed.catchup_endpoint]) as lt:
        def spray():
            for frames in garbage * 3:
                rogue.send_multipart(frames)
            return sum(lt.listener.stats.bad.values()) >= len(garbage) * 3
        wait_until(spray, what="garbage received")
        for i in range(10):
            feed.publisher.publish_event(alert_event(i), utc_iso())
        wait_until(lambda: len(lt.messages) >= 10, what="alerts after garbage")
    bad = lt.listener.stats.bad
    assert set(bad) == {"json", "frames", "encoding", "version"}
    assert caplog.text.count("dropped a malformed message (json") == 1  # logged once per reason
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path), "after garbage")
    rogue.close()


def test_catchup_server_answers_garbage_with_err_and_keeps_serving(feeds, ctx, tmp_path):
    feed = feeds.open()
    feed.publisher.publish_event(alert_event(1), utc_iso())
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(feed.catchup_endpoint)
    for frames in ([b"HELLO"], [b"CATCHUP", b"{bad"], [b"CATCHUP", b'{"kind": "status"}'],
                   [b"CATCHUP", b'{"kind": "alert", "positions": {"gate-1": [1]}}'],
                   [b"CATCHUP", b'{"kind": "alert", "positions": [["gate-1", 1, 2]]}']):
        dealer.send_multipart(frames)
        assert dealer.poll(5000), "no answer"
        assert dealer.recv_multipart()[0] == b"ERR"
    dealer.send_multipart([b"CATCHUP", b'{"req": 3, "kind": "alert", "positions": {}}'])
    assert dealer.poll(5000)
    assert dealer.recv_multipart()[:2] == [b"MSG", b"3"]
    assert dealer.recv_multipart()[0] == b"END"
    assert feed.server.bad_requests == 5 and feed.server.errors == 0  # refused, none failed inside
    dealer.close()


def test_silent_gateway_is_reported(feeds, ctx, tmp_path, caplog):
    feed = feeds.open(heartbeat_s=0.1)
    with caplog.at_level(logging.WARNING), ListenerThread(ctx, [feed.endpoint]) as lt:
        wait_until(lambda: lt.listener.stats.received >= 2, what="heartbeats")
        feed.close()
        wait_until(lambda: "silent" in caplog.text, what="silence noticed")


def test_on_heard_sees_every_publisher_message_heartbeats_included(feeds, ctx):
    """The public hook the console's stations table uses (online / silent): each body heard,
    heartbeats too, before any delivery logic."""
    feed = feeds.open(heartbeat_s=0.1)
    heard: list[dict] = []
    with ListenerThread(ctx, [feed.endpoint], on_heard=heard.append):
        wait_until(lambda: any(b["kind"] == "heartbeat" for b in heard), what="a heartbeat heard")
    assert {b["publisher_id"] for b in heard} == {feed.publisher.publisher_id}


@pytest.mark.parametrize("body, expected", [
    ({"kind": "alert", "type": "new", "time_utc": "T", "station_id": "g1", "track_id": 7, "core_temp_c": 38.44,
      "skin_temp_c": 35.9, "uncertainty_c": 0.25, "threshold_c": 37.5, "mask": "no",
      "verdict": {"status": "elevated", "reason": "", "method": "absolute"}, "msg_id": "g1/17/alert/3"},
     # the uncertainty is the core estimate's: it sits next to core, not skin (issue 14)
     "T ALERT station g1 track 7: core 38.4 ±0.25 °C (skin 35.9 °C) >= 37.5 °C (absolute), mask no "
     "[new: first reading] id g1/17/alert/3"),
    ({"kind": "screening", "type": "end", "time_utc": "T", "station_id": "g1", "track_id": 2, "core_temp_c": None,
      "skin_temp_c": None, "uncertainty_c": None, "threshold_c": None, "mask": "unknown",
      "verdict": {"status": "indeterminate", "reason": "glasses", "method": "none"}},
     "T INDETERMINATE station g1 track 2: core n/a °C (skin n/a) indeterminate (glasses), mask unknown "
     "[end: person left, final reading]"),
    ({"kind": "status", "time_utc": "T", "station_id": "g1"}, "T STATUS station g1"),
    ({"kind": "status", "time_utc": "T", "station_id": "g1", "status": {"pairs_per_s": 9.5, "ok": True,
                                                                       "cameras": {"rgb": {}}}},
     "T STATUS station g1: pairs_per_s=9.5 ok=True"),
    # nested fields are kept: a degraded station says which camera and why
    ({"kind": "status", "time_utc": "T", "station_id": "g1",
      "status": {"state": "degraded", "cameras": {"rgb": {"state": "offline", "offline_s": 12.5,
                                                          "last_error": "no frame for 2.0 s"},
                                                  "thermal": {"state": "online", "fps": 8.7}},
                 "pairing": {}, "tags": ["a", "b"]}},
     'T STATUS station g1: state=degraded cameras.rgb.state=offline cameras.rgb.offline_s=12.5 '
     'cameras.rgb.last_error="no frame for 2.0 s" cameras.thermal.state=online cameras.thermal.fps=8.7 '
     'tags=["a","b"]'),
])
def test_format_alert_line(body, expected):
    assert format_alert_line(body) == expected


def test_listener_needs_an_endpoint(ctx):
    with pytest.raises(ValueError, match="at least one endpoint"):
        Listener(ctx, [])


def test_garbled_catchup_endpoint_in_messages_is_survived(feeds, ctx, tmp_path):
    """A gateway advertising an endpoint we cannot connect to: counted, the feed still flows."""
    feed = feeds.open(journal_path=None)
    feed.publisher.catchup_endpoint = "tcp:/not an endpoint"
    with ListenerThread(ctx, [feed.endpoint]) as lt:
        wait_until(lambda: lt.listener.stats.received > 0, what="connected")
        for i in range(5):
            feed.publisher.publish_event(alert_event(i), utc_iso())
        wait_until(lambda: len(lt.messages) >= 5, what="alerts")
    assert lt.listener.stats.bad["catchup_endpoint"] == 1


def test_images_are_journaled_and_caught_up(feeds, ctx, tmp_path):
    feed = feeds.open(include_images=True)
    feed.publisher.publish_event(alert_event(1, images=True), utc_iso())
    with ListenerThread(ctx, [feed.endpoint], catchup=[feed.catchup_endpoint]) as lt:
        wait_until(lambda: len(lt.messages) >= 1, what="caught-up alert")
    msg = lt.messages[0]
    assert set(msg.images) == {"rgb_jpeg", "thermal_jpeg"} and lt.listener.stats.caught_up == 1
    assert all(img[:2] == b"\xff\xd8" for img in msg.images.values())


def test_proxy_drops_garbage_and_forwards_the_rest(feeds, ctx, tmp_path):
    feed = feeds.open()
    rogue = ctx.socket(zmq.PUB)
    port = rogue.bind_to_random_port("tcp://127.0.0.1")
    proxy = Proxy(ctx, [(feed.endpoint, None), (f"tcp://127.0.0.1:{port}", None)], "tcp://127.0.0.1:*")
    stop = threading.Event()
    thread = threading.Thread(target=proxy.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert proxy.bound.wait(10)
        with ListenerThread(ctx, [proxy.last_endpoint]) as lt:
            def spray():
                rogue.send_multipart([b"alert.x", b"\x00garbage"])
                rogue.send_multipart([b"heartbeat.x", b"{}", b"x", b"y", b"z"])
                return proxy.stats.bad["json"] > 0 and proxy.stats.bad["frames"] > 0
            wait_until(spray, what="garbage reaching the proxy")
            wait_until(lambda: lt.listener.stats.heartbeats > 0, what="heartbeats through the proxy")
            for i in range(10):
                feed.publisher.publish_event(alert_event(i), utc_iso())
            wait_until(lambda: len(lt.messages) >= 10, what="alerts through the proxy")
        assert sum(lt.listener.stats.bad.values()) == 0  # nothing malformed got through
    finally:
        stop.set()
        thread.join(5)
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path), "proxy with a garbage upstream")


def _listener_with_pending_request(ctx: zmq.Context) -> tuple[Listener, str]:
    """A Listener that has sent one catch-up request (to a dead endpoint) and waits for its reply."""
    listener = Listener(ctx, ["tcp://127.0.0.1:1"], catchup=["tcp://127.0.0.1:2"])
    listener._poller = zmq.Poller()
    listener._send_request("tcp://127.0.0.1:2", "alert", None)
    return listener, next(iter(listener._requests))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=6), st.sampled_from([b"MSG", b"END", b"ERR", b"?"]))
def test_fuzz_catchup_replies_never_crash_the_client(frames, tag):
    """Replies to a pending request with arbitrary content: counted as bad, never raised."""
    ctx = zmq.Context()
    try:
        listener, req = _listener_with_pending_request(ctx)
        listener._on_reply("tcp://127.0.0.1:2", [tag, str(req).encode() if tag == b"MSG" else
                                                 json.dumps({"req": req}).encode(), *frames])
        listener._on_reply("tcp://127.0.0.1:2", [tag, *frames])
        # ERR is only logged; any other garbage is counted (random bytes are never a valid message)
        assert tag == b"ERR" or sum(listener.stats.bad.values()) >= 1
        assert listener.stats.delivered == 0
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("reply", [
    {"req": [1]},  # a request id that cannot be one
    {"req": "REQ", "publisher_id": "gate-1", "last": "ab"},  # not a position
    {"req": "REQ", "publisher_id": "gate-1", "last": [1, "x"]},
    {"req": "REQ", "publisher_id": "gate-1", "last": [1, -2]},
    {"req": "REQ", "publisher_id": "gate-1", "last": [1, 2, 3]},
    {"req": "REQ", "publisher_id": 7, "last": [1, 2]},
])
def test_malformed_catchup_end_is_counted_and_ignored(reply):
    """A well-formed frame with a bad field must not crash the listener or move its positions."""
    ctx = zmq.Context()
    try:
        listener, req = _listener_with_pending_request(ctx)
        body = {k: req if v == "REQ" else v for k, v in reply.items()}
        listener._on_reply("tcp://127.0.0.1:2", [b"END", json.dumps(body).encode()])
        assert listener.stats.bad["reply"] == 1
        assert listener.store.positions("alert") == {}
    finally:
        ctx.destroy(linger=0)


def test_several_gateways_directly(feeds, ctx, tmp_path):
    """One listener, two gateways: each one's alerts caught up from its own journal, none mixed up."""
    gw1, gw2 = feeds.open("gate-1"), feeds.open("gate-2")
    for i in range(10):
        gw1.publisher.publish_event(alert_event(i), utc_iso())
        gw2.publisher.publish_event(alert_event(100 + i), utc_iso())
    with ListenerThread(ctx, [gw1.endpoint, gw2.endpoint]) as lt:
        wait_until(lambda: len(lt.messages) >= 20, what="both gateways caught up")
        for i in range(10, 20):
            gw1.publisher.publish_event(alert_event(i), utc_iso())
            gw2.publisher.publish_event(alert_event(100 + i), utc_iso())
        wait_until(lambda: len(lt.messages) >= 40, what="live alerts of both")
    assert_exactly_once(lt.msg_ids(), journal_ids(tmp_path, "gate-1") + journal_ids(tmp_path, "gate-2"),
                        "two gateways")
    assert {m.body["station_id"] for m in lt.messages if m.body["track_id"] >= 100} == {"gate-2"}


def test_store_prune_keeps_positions(tmp_path):
    from edge.feed.messages import decode as decode_frames

    store = Store(tmp_path / "room.sqlite")
    body = {"schema": 1, "kind": "heartbeat", "publisher_id": "p", "epoch": 5, "seq": 2, "msg_id": "p/5/heartbeat/2",
            "station_id": "s", "time_utc": "2026-01-01T00:00:00Z", "interval_s": 1.0, "last": {}}
    store.add(decode_frames([b"heartbeat.s", json.dumps(body).encode()]))
    store.set_position("p", "alert", (5, 9))
    assert store.prune(1.0) == 0 and store.has("p/5/heartbeat/2")
    assert store.prune(1.0, now_unix_s=time.time() + 2 * 86400) == 1 and not store.has("p/5/heartbeat/2")
    assert store.position("p", "alert") == (5, 9)


def test_listen_status_keeps_nested_fields_end_to_end(feeds, ctx, tmp_path):
    """`listen --kinds status`: a real status message from build_status through the feed keeps
    the per-camera fields in the printed line."""
    from edge.health import StationMetrics, build_status

    feed = feeds.open()
    cams = {"rgb": {"state": "offline", "offline_s": 3.0, "last_error": "device unplugged"},
            "thermal": {"state": "online", "fps": 8.7}}
    with ListenerThread(ctx, [feed.endpoint], kinds=("status",)) as lt:
        wait_until(lambda: lt.listener.stats.heartbeats > 0, what="connected")
        feed.publisher.publish_status(build_status("gate-1", cams, StationMetrics("gate-1")), utc_iso())
        wait_until(lambda: any(m.kind == "status" for m in lt.messages), what="status delivered")
    line = format_alert_line(next(m for m in lt.messages if m.kind == "status").body)
    assert "state=degraded" in line and "cameras.rgb.state=offline" in line
    assert 'cameras.rgb.last_error="device unplugged"' in line and "\n" not in line
