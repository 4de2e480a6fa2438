"""Publishing stage: FeedConfig rules, and the Publisher on real sockets and a real journal."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zmq
from pydantic import ValidationError

from edge.feed.journal import Journal
from edge.feed.messages import decode
from edge.feed.publishing import (
    FeedConfig,
    Publisher,
    encode_thermal_jpeg,
    open_feed,
    utc_iso,
)
from tests.support import Subscriber

from .helpers import alert_event


@pytest.mark.parametrize("fields, error", [
    ({}, None),
    ({"endpoint": "tcp://0.0.0.0:5560"}, "feed.endpoint=tcp://0.0.0.0:5560 is not loopback"),
    ({"endpoint": "tcp://*:5560"}, "feed.server_secret_key is not set"),
    ({"catchup_endpoint": "tcp://10.0.0.5:5561"}, "feed.catchup_endpoint"),
    ({"endpoint": "tcp://localhost:5560"}, None),
    ({"endpoint": "ipc:///tmp/feed"}, None),
    ({"endpoint": "tcp://[::1]:5560"}, None),
    ({"endpoint": "tcp://0.0.0.0:5560", "server_secret_key": "k/server.key_secret",
      "authorized_clients_dir": "k/authorized"}, None),
    ({"server_secret_key": "k/server.key_secret"}, "feed.authorized_clients_dir must be set too"),
    ({"heartbeat_s": 0.0}, "heartbeat_s"),
    ({"publisher_id": "gw.1"}, "no dots"),
    ({"colour": "red"}, "colour"),
])
def test_feed_config_rules(fields, error):
    if error is None:
        FeedConfig(**fields)
    else:
        with pytest.raises(ValidationError, match=error.replace(".", r"\.").replace("*", r"\*")
                           .replace("[", r"\[")):
            FeedConfig(**fields)


def test_feed_config_defaults_are_private():
    cfg = FeedConfig()
    assert cfg.include_images is False and cfg.server_secret_key is None
    assert cfg.endpoint.startswith("tcp://127.0.0.1:")


def subscriber(ctx, feed, prefix=b"") -> Subscriber:
    return Subscriber(ctx, feed.endpoint, prefix)


def receive(sub: Subscriber, n, ping=None):
    """The next ``n`` messages (at least) ``sub`` receives, ``ping()`` before each poll."""
    sub.frames.clear()
    return list(sub.receive(n, ping=ping))


def test_event_is_journaled_before_it_is_sent_and_identical(feeds, ctx, tmp_path, monkeypatch):
    feed = feeds.open()
    order: list[tuple[str, int]] = []  # ('journal' | 'send', alert seq), in the order they happened
    real_socket, real_append = feed.publisher.socket, feed.publisher.journal.append

    class SpySocket:
        def send_multipart(self, frames, **kw):
            if frames[0].startswith(b"alert."):
                order.append(("send", json.loads(frames[1])["seq"]))
            return real_socket.send_multipart(frames, **kw)

        def __getattr__(self, name):
            return getattr(real_socket, name)

    def spy_append(publisher_id, epoch, kind, seq, frames):
        if kind == "alert":
            order.append(("journal", seq))
        return real_append(publisher_id, epoch, kind, seq, frames)

    monkeypatch.setattr(feed.publisher, "socket", SpySocket())
    monkeypatch.setattr(feed.publisher.journal, "append", spy_append)
    sub = subscriber(ctx, feed, b"alert.")
    hb = subscriber(ctx, feed, b"heartbeat.")
    receive(hb, 1)  # connected
    sent = []
    receive(sub, 1, ping=lambda: sent.append(feed.publisher.publish_event(alert_event(len(sent)), utc_iso())))
    journal = Journal(tmp_path / "gate-1.sqlite", readonly=True)
    journaled = [json.loads(b) for _, b in journal.all_frames("alert")]
    assert journaled == sent  # every alert returned by publish_event is in the journal
    assert [m["seq"] for m in sent] == list(range(1, len(sent) + 1))
    assert order == [(step, m["seq"]) for m in sent for step in ("journal", "send")]
    sub.close()
    hb.close()
    journal.close()


def test_images_only_when_enabled_and_bad_snapshot_keeps_alert(ctx, tmp_path):
    pub = ctx.socket(zmq.PUB)
    pub.bind("tcp://127.0.0.1:*")
    off = Publisher(pub, "st", None)
    assert off.publish_event(alert_event(1, images=True), utc_iso())["images"] == []
    on = Publisher(pub, "st", None, include_images=True)
    assert on.publish_event(alert_event(1, images=True), utc_iso())["images"] == ["rgb_jpeg", "thermal_jpeg"]
    bad = alert_event(2, images=True)
    bad.snapshot_rgb = np.zeros((0, 3, 3), np.uint8)  # empty crop: skipped
    bad.snapshot_thermal_c = np.zeros((3, 3, 3, 3), np.float32)  # wrong shape: logged, alert still sent
    body = on.publish_event(bad, utc_iso())
    assert body["images"] == [] and body["track_id"] == 2


def test_epoch_changes_on_restart_and_event_id_groups_lifecycle(feeds, ctx, tmp_path):
    bodies = []
    for _ in range(2):
        feed = feeds.open()
        for type_ in ("new", "update", "end"):
            bodies.append(feed.publisher.publish_event(alert_event(5, type_=type_), utc_iso()))
        feed.close()
    first, second = bodies[:3], bodies[3:]
    assert second[0]["epoch"] > first[0]["epoch"]
    assert [b["seq"] for b in second] == [1, 2, 3]  # sequences restart with the epoch
    assert len({b["event_id"] for b in first}) == 1 and first[0]["event_id"] != second[0]["event_id"]
    assert len({b["msg_id"] for b in bodies}) == 6


def test_heartbeat_carries_last_seq_and_catchup_endpoint(feeds, ctx, tmp_path):
    feed = feeds.open()
    feed.publisher.publish_event(alert_event(1), utc_iso())
    feed.publisher.publish_event(alert_event(2), utc_iso())
    feed.publisher.publish_event(alert_event(3, kind="screening"), utc_iso())
    beat = feed.publisher.heartbeat()
    assert beat["last"] == {"alert": 2, "screening": 1}
    assert beat["catchup"] == feed.catchup_endpoint and feed.catchup_endpoint.startswith("tcp://127.0.0.1:")


def test_nan_temperatures_are_sent_as_null(feeds, ctx, tmp_path):
    feed = feeds.open()
    ev = alert_event(1, kind="screening")
    ev.verdict.core_temp_c = float("nan")
    body = feed.publisher.publish_event(ev, utc_iso())
    assert body["core_temp_c"] is None
    assert decode([b"screening.gate-1", json.dumps(body).encode()]).body["verdict"]["reason"] == "glasses"


def test_bind_conflict_is_a_one_line_error(feeds, ctx, tmp_path):
    feed = feeds.open()
    with pytest.raises(ValueError, match="cannot bind"):
        open_feed(ctx, FeedConfig(endpoint=feed.endpoint, journal_path=None), "gate-2")


def test_thermal_false_colour_is_enlarged_and_fixed_scale():
    import cv2

    crop = np.full((12, 10), 30.0, np.float32)
    crop[0, 0] = 40.0
    img = cv2.imdecode(np.frombuffer(encode_thermal_jpeg(crop), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[0] >= 96
    assert img[2, 2].sum() > img[-3, -3].sum() + 200  # 40 degC bright, 30 degC dark
    # fixed scale, not stretched per crop: a uniform 35 degC crop has the colour of mid-range
    uniform = cv2.imdecode(np.frombuffer(encode_thermal_jpeg(np.full((12, 10), 35.0, np.float32)), np.uint8),
                           cv2.IMREAD_COLOR)
    mid = cv2.applyColorMap(np.array([[127]], np.uint8), cv2.COLORMAP_INFERNO)[0, 0]
    assert np.abs(uniform[48, 40].astype(int) - mid).max() <= 8  # JPEG tolerance


def test_open_feed_user_errors_name_the_key(ctx, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="feed.journal_path: .*cannot open journal"):
        open_feed(ctx, FeedConfig(endpoint="tcp://127.0.0.1:*", catchup_endpoint=None,
                                  journal_path=str(tmp_path / "file" / "j.sqlite")), "gate-1")
    with pytest.raises(ValueError, match="missing.key_secret"):
        open_feed(ctx, FeedConfig(server_secret_key=str(tmp_path / "missing.key_secret"),
                                  authorized_clients_dir=str(tmp_path)), "gate-1")


def test_invalid_message_fails_at_the_sender_and_leaves_no_hole(feeds, ctx):
    feed = feeds.open()
    with pytest.raises(ValueError, match="time_utc"):
        feed.publisher.publish_event(alert_event(1), "yesterday")
    bad = alert_event(2)
    bad.n_frames = -1
    with pytest.raises(ValueError, match="n_frames"):
        feed.publisher.publish_event(bad, utc_iso())
    assert feed.publisher.publish_event(alert_event(3), utc_iso())["seq"] == 1  # no seq was used up
    assert feed.publisher.heartbeat()["last"]["alert"] == 1


def test_failed_open_feed_releases_what_it_opened(ctx, tmp_path):
    """An error after binding (here a bad station id) must not leave the port bound or the journal open."""
    from tests.support import free_port, wait_until

    cfg = FeedConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", catchup_endpoint=f"tcp://127.0.0.1:{free_port()}",
                     journal_path=str(tmp_path / "j.sqlite"))
    with pytest.raises(ValueError, match="station_id='gate.1'"):
        open_feed(ctx, cfg, "gate.1")
    opened = []

    def reopen() -> bool:
        # ZeroMQ unbinds a closed socket in its I/O thread, a moment later on a loaded machine
        try:
            opened.append(open_feed(ctx, cfg, "gate-1"))  # same endpoints: free again
        except ValueError as e:
            assert "Address already in use" in str(e), e
            return False
        return True

    wait_until(reopen, 5.0, "the endpoints of the failed open_feed to be free again")
    opened[0].close()


def test_every_time_utc_has_one_precision(feeds):
    """Events (stamped from their frame's capture time by the pipeline's WallClock), status and
    heartbeat bodies, log lines and the docs' example: one format, microseconds, 'Z' (edge.utc)."""
    import logging
    import re
    from datetime import UTC, datetime

    from edge.logs import JsonFormatter
    from edge.paths import REPO_ROOT
    from edge.pipeline import WallClock
    from edge.utc import PATTERN, parse_utc

    feed = feeds.open()
    clock = WallClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC), 0)
    bodies = [feed.publisher.publish_event(alert_event(1), clock.iso(1_500_000_001)),
              feed.publisher.publish_status({"state": "ok"}, utc_iso()), feed.publisher.heartbeat()]
    assert bodies[0]["time_utc"] == "2026-11-26T09:00:01.500000Z"
    assert all(PATTERN.match(b["time_utc"]) for b in bodies), [b["time_utc"] for b in bodies]
    assert parse_utc(clock.iso(123_456_789_000)) == clock.utc_at_t0.replace(microsecond=0) + (
        parse_utc("2026-11-26T09:02:03.456789Z") - parse_utc("2026-11-26T09:00:00Z"))
    record = logging.LogRecord("edge.test", logging.INFO, __file__, 1, "hello", None, None)
    assert PATTERN.match(json.loads(JsonFormatter().format(record))["t"])
    example = re.search(r"\| `time_utc` \| str \|[^`]*`([^`]+)`", (REPO_ROOT / "docs" / "messages.md").read_text())
    assert PATTERN.match(example.group(1))


def test_one_utc_formatter():
    """edge/utc.py writes every UTC stamp; a module formatting its own would drift from it."""
    import re

    from edge.paths import REPO_ROOT

    pattern = re.compile(r"strftime\(\s*[\"']%Y-%m-%dT|isoformat\(\s*timespec")
    offenders = [p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "edge").rglob("*.py")
                 if p.name != "utc.py" and "web" not in p.parts and pattern.search(p.read_text())]
    assert offenders == []


# Bytes of an alert body as the publisher sent it before it built EventBody models (a dict
# validated afterwards): the move must not change one byte on the wire.
GOLDEN_ALERT = (
    '{"schema":1,"kind":"alert","publisher_id":"gw-1","epoch":7,"seq":1,"msg_id":"gw-1/7/alert/1",'
    '"station_id":"gate-1","time_utc":"2026-11-26T09:00:01.500000Z","catchup":"tcp://127.0.0.1:5561",'
    '"type":"new","event_id":"gw-1-7-alert-3","track_id":3,"t_ns":123456789,'
    '"verdict":{"status":"elevated","reason":"","method":"absolute"},"skin_temp_c":36.9,'
    '"core_temp_c":38.212,"uncertainty_c":0.412,"threshold_c":37.5,"box_xyxy_rgb":[10.0,20.1,50.5,70.2],'
    '"box_xyxy_thermal":[2.0,3.0,9.0,11.0],"score":0.93,"mask":"yes","mask_conf":0.8,"n_frames":7,"images":[]}')


def test_event_body_is_built_as_the_model_and_its_bytes_are_unchanged(ctx):
    """publish_event builds an EventBody (validated as built) and sends its dump; the bytes are
    the ones receivers have always had, with the decision's StrEnums as with plain words."""
    from edge.feed.messages import EventBody, dump_body
    from edge.types import EventKind, EventType, ScreeningEvent, Verdict, VerdictStatus

    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.bind("tcp://127.0.0.1:*")
    p = Publisher(pub, "gate-1", None, publisher_id="gw-1", catchup_endpoint="tcp://127.0.0.1:5561")
    p.epoch = 7
    sub = Subscriber(ctx, pub.getsockopt_string(zmq.LAST_ENDPOINT), b"alert.")
    for kind, typ, status in (("alert", "new", "elevated"),
                              (EventKind.ALERT, EventType.NEW, VerdictStatus.ELEVATED)):
        ev = ScreeningEvent(kind, typ, 3, 123456789, Verdict(status, method="absolute", threshold_c=37.5,
                            core_temp_c=38.21234, skin_temp_c=36.9, uncertainty_c=0.4123),
                            (10.0, 20.123, 50.5, 70.25), (2.0, 3.0, 9.0, 11.0), 0.93, "yes", 0.8, 7)
        bodies = []

        def send(ev=ev, bodies=bodies):
            p.seq["alert"] = 0  # every resend is seq 1 (PUB drops until the SUB has joined)
            bodies.append(p.publish_event(ev, "2026-11-26T09:00:01.500000Z"))
        got = receive(sub, 1, ping=send)
        assert {frames[1].decode() for frames in got} == {GOLDEN_ALERT}
        assert dump_body(EventBody.model_validate(bodies[-1]))[1].decode() == GOLDEN_ALERT
    p.close()


def test_an_alert_published_from_another_thread_is_journaled(feeds):
    """The pipeline may run in a thread other than the one that opened the feed (a replay loop,
    the console demo): its alerts must still be journaled before they are sent, so catch-up can
    serve them -- not sent 'without a journal copy'."""
    import threading

    from edge.feed.journal import Journal

    feed = feeds.open()
    bodies = []
    th = threading.Thread(target=lambda: bodies.append(feed.publisher.publish_event(alert_event(1), utc_iso())))
    th.start()
    th.join(10)
    assert bodies and feed.publisher.journal_errors == 0
    reader = Journal(feed.publisher.journal.path, readonly=True)
    try:
        stored = reader.read_after(feed.publisher.publisher_id, "alert", 0, 0, 10)
    finally:
        reader.close()
    assert [json.loads(e.frames[1])["msg_id"] for e in stored] == [bodies[0]["msg_id"]]
