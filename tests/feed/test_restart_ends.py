"""Events a SIGKILLed gateway left open get their `end` when it restarts (end_reason
gateway_restart), journaled and delivered; a second restart closes nothing twice."""
from __future__ import annotations

import json
import signal

import pytest
import zmq

from edge.feed.journal import Journal
from edge.feed.messages import decode
from tests.support import free_port, wait_until

from .helpers import ListenerThread
from .test_faults import procs, start_gateway  # noqa: F401 (fixture)

N = 6


def journal_bodies(path) -> list[dict]:
    j = Journal(path, readonly=True)
    try:
        return [decode(f).body for f in j.all_frames("alert")]
    finally:
        j.close()


@pytest.mark.slow
def test_sigkilled_gateway_closes_open_events_on_restart(procs, tmp_path):  # noqa: F811
    journal = tmp_path / "gw.sqlite"
    pub_port, catchup_port = free_port(), free_port()
    gw = start_gateway(procs, journal, pub_port, catchup_port, N, 0.01)
    assert gw.stdout.readline().strip() == "done"
    # one event ended normally before the kill: it must not be closed again
    first = journal_bodies(journal)
    assert len(first) == N and all(b["type"] == "new" for b in first)
    gw.send_signal(signal.SIGKILL)
    gw.wait(10)
    j = Journal(journal)  # the killed run had also sent an ordinary end for track 0
    ended = dict(first[0], type="end", seq=N + 1, msg_id=f"gate-1/{first[0]['epoch']}/alert/{N + 1}")
    j.append("gate-1", first[0]["epoch"], "alert", N + 1, [b"alert.gate-1", json.dumps(ended).encode()])
    j.close()

    ctx = zmq.Context()
    try:
        with ListenerThread(ctx, [f"tcp://127.0.0.1:{pub_port}"], catchup=[f"tcp://127.0.0.1:{catchup_port}"]) as lt:
            gw2 = start_gateway(procs, journal, pub_port, catchup_port, N, 0.01)
            assert gw2.stdout.readline().strip() == "done"
            closes = [b for b in journal_bodies(journal) if b.get("end_reason") == "gateway_restart"]
            wait_until(lambda: sum(m.body.get("end_reason") == "gateway_restart" for m in lt.messages) >= N - 1,
                       what="restart ends delivered")
        open_ids = {b["event_id"] for b in first[1:]}
        assert {b["event_id"] for b in closes} == open_ids and len(closes) == N - 1
        for b in closes:
            assert b["type"] == "end" and b["epoch"] > first[0]["epoch"] and b["images"] == []
            orig = next(o for o in first if o["event_id"] == b["event_id"])
            assert (b["track_id"], b["verdict"], b["core_temp_c"]) == (orig["track_id"], orig["verdict"],
                                                                       orig["core_temp_c"])
        # a second kill and restart: nothing is left open, nothing is closed twice
        gw2.send_signal(signal.SIGKILL)
        gw2.wait(10)
        gw3 = start_gateway(procs, journal, pub_port, catchup_port, N, 0.01)
        assert gw3.stdout.readline().strip() == "done"
        assert sum(b.get("end_reason") == "gateway_restart" for b in journal_bodies(journal)) == N - 1
    finally:
        ctx.destroy(linger=0)
