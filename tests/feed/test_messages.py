"""The message contract: real published messages against the committed JSON Schema, decoder
rejections table-driven, and a hypothesis fuzz of the decoder."""
from __future__ import annotations

import json
import math

import jsonschema
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.feed.messages import (
    MAX_BODY_BYTES,
    SCHEMA_FILE,
    MessageError,
    decode,
    encode_body,
    json_schema,
    make_topic,
)
from edge.feed.publishing import utc_iso
from edge.paths import REPO_ROOT
from tests.support import Subscriber

from .helpers import alert_event, open_test_feed

# What edge.guidance.Guide produces for a person wearing glasses (Guidance.body()).
GUIDANCE = {"message_key": "glasses", "text": "Please remove your glasses", "language": "en", "track_id": 2,
            "reason": "glasses", "people": 1, "t_ns": 5_000_000_000, "since_t_ns": 4_800_000_000}


def committed_schema() -> dict:
    return json.loads((REPO_ROOT / SCHEMA_FILE).read_text())


def test_committed_schema_is_current():
    assert committed_schema() == json_schema(), f"regenerate {SCHEMA_FILE}: python -m edge.feed.messages"


@pytest.fixture
def published(tmp_path):
    """Every kind of message, as a real SUB socket receives it from a real feed."""
    ctx = zmq.Context()
    feed = open_test_feed(ctx, tmp_path, include_images=True)
    sub = Subscriber(ctx, feed.endpoint)

    def receive_until(prefix: bytes, ping=None) -> None:
        sub.receive(lambda s: s.has(prefix), ping=ping, what=f"a {prefix!r} message")

    # Status messages until the subscription is through (PUB drops what it sends before that).
    receive_until(b"status.", lambda: feed.publisher.publish_status(
        {"pairs_per_s": 9.5, "nan": float("nan"), "cams": {"rgb": "ok"}}, utc_iso()))
    feed.publisher.publish_event(alert_event(3, images=True), utc_iso())
    feed.publisher.publish_guidance(GUIDANCE, utc_iso())
    feed.publisher.publish_event(alert_event(4, kind="screening", type_="end"), utc_iso())
    receive_until(b"screening.")
    receive_until(b"heartbeat.")
    yield sub.frames
    sub.close()
    feed.close()
    ctx.term()


def test_published_messages_follow_committed_schema(published):
    validator = jsonschema.Draft202012Validator(committed_schema())
    kinds = set()
    for frames in published:
        body = json.loads(frames[1])
        validator.validate(body)
        msg = decode(frames)
        kinds.add(msg.kind)
        assert frames[0] == make_topic(msg.kind, "gate-1")
        assert msg.body["time_utc"].endswith("Z")
    assert kinds == {"alert", "screening", "status", "heartbeat", "guidance"}
    alert = next(decode(f) for f in published if f[0] == b"alert.gate-1")
    assert set(alert.images) == {"rgb_jpeg", "thermal_jpeg"}
    assert all(img[:2] == b"\xff\xd8" for img in alert.images.values())  # JPEG
    b = alert.body
    assert (b["track_id"], b["type"], b["mask"], b["core_temp_c"], b["threshold_c"]) == (3, "new", "yes", 38.2, 37.5)
    assert b["event_id"] == f"gate-1-{b['epoch']}-alert-3"
    status = next(decode(f) for f in published if f[0] == b"status.gate-1")
    assert status.body["status"]["nan"] is None  # NaN is not JSON: sent as null
    guidance = next(decode(f) for f in published if f[0] == b"guidance.gate-1")
    assert {k: guidance.body[k] for k in GUIDANCE} == GUIDANCE


def test_schema_rejects_what_decode_rejects(published):
    """The committed schema is strict where the decoder is: a wrong verdict fails both."""
    validator = jsonschema.Draft202012Validator(committed_schema())
    frames = next(f for f in published if f[0] == b"alert.gate-1")
    body = json.loads(frames[1])
    body["verdict"]["status"] = "fine"
    assert list(validator.iter_errors(body))
    with pytest.raises(MessageError) as e:
        decode([frames[0], json.dumps(body).encode()] + frames[2:])
    assert e.value.reason == "schema"


def test_guidance_schema_refuses_unknown_message_key(published):
    validator = jsonschema.Draft202012Validator(committed_schema())
    body = json.loads(next(f for f in published if f[0] == b"guidance.gate-1")[1])
    body["message_key"] = "ok"  # a kiosk must never be told something the station did not decide
    assert list(validator.iter_errors(body))
    with pytest.raises(ValueError, match="message_key"):
        encode_body(body)


def _valid_frames() -> list[bytes]:
    body = {"schema": 1, "kind": "heartbeat", "publisher_id": "p", "epoch": 5, "seq": 2, "msg_id": "p/5/heartbeat/2",
            "station_id": "s", "time_utc": "2026-01-01T00:00:00Z", "interval_s": 1.0, "last": {"alert": 0}}
    return [b"heartbeat.s", json.dumps(body).encode()]


def _with(**changes):
    body = json.loads(_valid_frames()[1])
    body.update(changes)
    return [b"heartbeat.s", json.dumps(body).encode()]


@pytest.mark.parametrize("frames, reason", [
    ([b"heartbeat.s"], "frames"),
    (_valid_frames() + [b"x", b"y", b"z"], "frames"),
    ([b"heartbeat.s", b"{" * (MAX_BODY_BYTES + 1)], "oversized"),
    ([b"heartbeat.s", b"\xff\xfe"], "encoding"),
    ([b"heartbeat.s", b'{"schema": 1,'], "json"),
    ([b"heartbeat.s", b"[1, 2]"], "json"),
    ([b"heartbeat.s", b"[" * 100000], "oversized"),
    (_with(schema=2), "version"),
    (_with(epoch=0), "schema"),
    (_with(kind="gossip"), "schema"),
    (_with(msg_id="p/5/heartbeat/3"), "schema"),
    (_with(station_id="a.b"), "schema"),
    ([b"alert.s", _valid_frames()[1]], "topic"),
    (_valid_frames() + [b"\xff\xd8 stray image"], "images"),
])
def test_decode_rejects_bad_input(frames, reason):
    with pytest.raises(MessageError) as e:
        decode(frames)
    assert e.value.reason == reason


def test_decode_accepts_unknown_fields_for_forward_compatibility():
    msg = decode(_with(future_field={"x": 1}))
    assert msg.kind == "heartbeat" and msg.position == (5, 2)


def test_encode_refuses_nan_and_oversize():
    with pytest.raises(ValueError):
        encode_body({"t": math.nan})
    with pytest.raises(ValueError, match="limit"):
        encode_body({"x": "a" * MAX_BODY_BYTES})


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_fuzz_decode_raw_frames(frames):
    try:
        decode(frames)
    except MessageError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
@pytest.mark.slow
def test_fuzz_decode_mutated_bodies(data):
    """Valid envelope with fields replaced, dropped or added: only MessageError, never a crash."""
    body = json.loads(_valid_frames()[1])
    for key in data.draw(st.lists(st.sampled_from(sorted(body)), max_size=4)):
        if data.draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = data.draw(json_values)
    body.update(data.draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
    topic = data.draw(st.sampled_from([b"heartbeat.s", b"alert.s", b"", b"\xff"]))
    try:
        msg = decode([topic, json.dumps(body).encode()])
    except MessageError:
        return
    assert msg.kind == "heartbeat"
