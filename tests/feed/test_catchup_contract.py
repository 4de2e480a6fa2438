"""The catch-up contract exactly as docs/messages.md states it, against a real ROUTER and journal:
ASCII tags, `req` as decimal digits in MSG and a JSON number in END, replies strictly after the
position, and what an absent position, count 0, a position ahead, and limit 0 return."""
from __future__ import annotations

import json

import pytest
import zmq

from edge.feed.messages import decode
from edge.feed.publishing import utc_iso

from .helpers import alert_event

N = 5


@pytest.fixture
def gateway(feeds):  # noqa: F811
    feed = feeds.open(publisher_id="gate-1-main")  # publisher id != station id: positions use the former
    for i in range(N):
        feed.publisher.publish_event(alert_event(i), utc_iso())
    dealer = feeds.ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(feed.catchup_endpoint)
    yield feed, dealer
    dealer.close()


def ask(dealer, request) -> tuple[list[list[bytes]], str, dict]:
    dealer.send_multipart([b"CATCHUP", json.dumps(request).encode()])
    msgs = []
    while True:
        assert dealer.poll(5000), "no reply"
        frames = dealer.recv_multipart()
        if frames[0] != b"MSG":
            return msgs, frames[0].decode("ascii"), json.loads(frames[1])
        msgs.append(frames)


def E(feed):
    return feed.publisher.epoch


# request (with EPOCH as a placeholder) -> (seqs of MSG, END fields)
CASES = {
    "absent position: from the oldest": ({"req": 7, "kind": "alert"}, [1, 2, 3, 4, 5],
                                         {"count": 5, "more": False, "last": ["EPOCH", 5]}),
    "keyed by publisher_id, strictly after": ({"req": 8, "kind": "alert", "positions": {"gate-1-main": ["EPOCH", 2],
                                                                                      "gate-1": ["EPOCH", 4]}},
                                              [3, 4, 5], {"count": 3, "more": False, "last": ["EPOCH", 5]}),
    "at the head: count 0, last = the position": ({"req": 9, "kind": "alert",
                                                   "positions": {"gate-1-main": ["EPOCH", 5]}},
                                                  [], {"count": 0, "more": False, "last": ["EPOCH", 5]}),
    "ahead of the journal": ({"req": 10, "kind": "alert", "positions": {"gate-1-main": ["EPOCH", 99]}},
                             [], {"count": 0, "more": False, "last": ["EPOCH", 99]}),
    "limit 2: more, exactly": ({"req": 11, "kind": "alert", "limit": 2}, [1, 2],
                               {"count": 2, "more": True, "last": ["EPOCH", 2]}),
    "limit 2 at the last two: no more": ({"req": 12, "kind": "alert", "limit": 2,
                                         "positions": {"gate-1-main": ["EPOCH", 3]}}, [4, 5],
                                        {"count": 2, "more": False, "last": ["EPOCH", 5]}),
    "limit 0: a probe, nothing sent": ({"req": 13, "kind": "alert", "limit": 0}, [],
                                       {"count": 0, "more": True, "last": [0, 0]}),
    "limit 0 at the head": ({"req": 14, "kind": "alert", "limit": 0, "positions": {"gate-1-main": ["EPOCH", 5]}},
                            [], {"count": 0, "more": False, "last": ["EPOCH", 5]}),
    "another kind: nothing": ({"req": 15, "kind": "screening"}, [], {"count": 0, "more": False, "last": [0, 0]}),
}


def _fill(value, epoch):
    if isinstance(value, dict):
        return {k: _fill(v, epoch) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, epoch) for v in value]
    return epoch if value == "EPOCH" else value


@pytest.mark.parametrize("request_, seqs, end", CASES.values(), ids=CASES.keys())
def test_catchup_replies(gateway, request_, seqs, end):
    feed, dealer = gateway
    request_, end = _fill(request_, E(feed)), _fill(end, E(feed))
    msgs, tag, reply = ask(dealer, request_)
    assert tag == "END"
    for frames in msgs:
        assert frames[1] == str(request_["req"]).encode("ascii") and frames[1].isdigit()  # decimal ASCII
        msg = decode(frames[2:])  # the message exactly as published
        assert msg.publisher_id == "gate-1-main" and msg.body["station_id"] == "gate-1"
    assert [decode(f[2:]).body["seq"] for f in msgs] == seqs
    assert reply == {"req": request_["req"], "publisher_id": "gate-1-main", "truncated": False, **end}
    assert isinstance(reply["req"], int)  # a JSON number in END


@pytest.mark.parametrize("request_, error", [
    ({"req": "7", "kind": "alert"}, "req='7'"),
    ({"req": True, "kind": "alert"}, "req=True"),
    ({"req": 3, "kind": "alert", "limit": -1}, "limit=-1"),
    ({"req": 3, "kind": "alert", "limit": "5"}, "limit='5'"),
    ({"req": 3, "kind": "status"}, "kind='status'"),
])
def test_malformed_requests_get_err(gateway, request_, error):
    _, dealer = gateway
    msgs, tag, reply = ask(dealer, request_)
    assert msgs == [] and tag == "ERR"
    assert error in reply["error"]
    assert reply["req"] == (request_["req"] if type(request_["req"]) is int else 0)


def test_schema_and_decoder_agree_seq_starts_at_1():
    from edge.feed.messages import MessageError, json_schema

    env = json_schema()["$defs"]["HeartbeatBody"]["properties"]["seq"]
    assert env["minimum"] == 1
    body = {"schema": 1, "kind": "heartbeat", "publisher_id": "p", "epoch": 5, "seq": 0, "msg_id": "p/5/heartbeat/0",
            "station_id": "s", "time_utc": "2026-11-26T20:41:07.123Z", "interval_s": 1.0, "last": {}}
    with pytest.raises(MessageError):
        decode([b"heartbeat.s", json.dumps(body).encode()])
