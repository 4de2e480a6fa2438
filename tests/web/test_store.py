"""The console store on SQLite and on a real PostgreSQL server: idempotent ingest, one row per
person across new/update/end, operator actions with their audit trail, retention, queries."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from edge.web.console import queries
from edge.web.console import schema as t
from edge.web.console.store import ActionError, CloseForm, parse_close_form
from tests.web.feedmsgs import event_msg, status_msg

NOW = 1_800_000_000.0


def audit(store, eid):
    with store.read() as c:
        return [(e["actor"], e["action"]) for e in queries.audit_for(c, eid)]


def alert(store, eid):
    with store.read() as c:
        return queries.alert(c, eid)


def test_ingest_is_idempotent_and_one_row_per_person(store):
    new, end = event_msg(1, core_c=38.2, images=True), event_msg(2, track=1, type_="end", core_c=38.6)
    assert store.ingest(new, NOW) is True
    assert store.ingest(new, NOW) is False  # redelivered (e.g. after a crash): nothing doubles
    assert store.ingest(end, NOW + 1) is True
    eid = new.body["event_id"]
    a = alert(store, eid)
    assert (a["core_temp_c"], a["last_type"], a["n_messages"], a["state"]) == (38.6, "end", 2, "open")
    assert a["images"] == "rgb_jpeg,thermal_jpeg"
    with store.read() as c:
        assert len(queries.queue(c, 100)) == 1
        assert queries.image(c, eid, "rgb_jpeg").startswith(b"\xff\xd8")
    assert audit(store, eid) == [("station gate-1", "received new"), ("station gate-1", "received end")]
    assert store.has(new.msg_id) and store.has_position("gate-1", "alert", 1000, 2)


def test_older_message_after_newer_does_not_roll_back(store):
    store.ingest(event_msg(2, track=1, type_="end", core_c=38.6), NOW)
    store.ingest(event_msg(1, track=1, type_="new", core_c=38.0), NOW)  # caught up late
    a = alert(store, "gate-1-1000-alert-1")
    assert (a["core_temp_c"], a["last_type"], a["n_messages"]) == (38.6, "end", 2)


def test_listener_store_interface_positions(store):
    assert store.position("gate-1", "alert") is None
    store.set_position("gate-1", "alert", (1000, 5))
    store.set_position("gate-1", "alert", (1001, 2))
    assert store.position("gate-1", "alert") == (1001, 2)
    assert store.positions("alert") == {"gate-1": [1001, 2]}


def test_take_close_and_audit(store):
    m = event_msg(1)
    store.ingest(m, NOW)
    eid = m.body["event_id"]
    store.take(eid, "ann", NOW + 5)
    with pytest.raises(ActionError, match="already acknowledged by ann") as e:
        store.take(eid, "bob", NOW + 6)
    assert e.value.status == 409
    with pytest.raises(ActionError, match="acknowledged by ann: only they can close"):
        store.close(eid, "bob", CloseForm("not_found", None, None, ""), NOW + 7)
    store.close(eid, "ann", CloseForm("confirmed", 38.4, "oral", "sent home"), NOW + 60)
    a = alert(store, eid)
    assert (a["state"], a["taken_by"], a["outcome"], a["secondary_c"], a["secondary_site"], a["note"]) == \
        ("closed", "ann", "confirmed", 38.4, "oral", "sent home")
    with pytest.raises(ActionError, match="already closed by ann"):
        store.take(eid, "bob", NOW + 61)
    store.add_note(eid, "bob", "called the family", NOW + 70)
    assert audit(store, eid) == [("station gate-1", "received new"), ("ann", "acknowledged"), ("ann", "closed"),
                                 ("bob", "note")]


def test_close_without_take_acknowledges_first(store):
    store.ingest(event_msg(1), NOW)
    store.close("gate-1-1000-alert-1", "ann", CloseForm("left", None, None, ""), NOW + 1)
    assert [a for _, a in audit(store, "gate-1-1000-alert-1")] == ["received new", "acknowledged", "closed"]


def test_unknown_alert(store):
    with pytest.raises(ActionError, match="not found") as e:
        store.take("nope", "ann")
    assert e.value.status == 404


def test_audit_is_append_only(store):
    store.ingest(event_msg(1), NOW)
    store.take("gate-1-1000-alert-1", "ann", NOW)
    store.release("gate-1-1000-alert-1", "ann", NOW + 1)
    store.take("gate-1-1000-alert-1", "bob", NOW + 2)
    with store.read() as c:
        ids = list(c.execute(sa.select(t.audit.c.id).order_by(t.audit.c.id)).scalars())
    assert len(ids) == 4 and ids == sorted(set(ids))
    assert [x for x in audit(store, "gate-1-1000-alert-1")][1:] == [("ann", "acknowledged"), ("ann", "released"),
                                                                   ("bob", "acknowledged")]


@pytest.mark.parametrize("form, error", [
    ({}, "outcome: choose one of"),
    ({"outcome": "maybe"}, "outcome: choose one of"),
    ({"outcome": "confirmed"}, "needs the secondary reading"),
    ({"outcome": "confirmed", "secondary_c": "38.4"}, "needs the secondary reading"),
    ({"outcome": "confirmed", "secondary_c": "abc", "site": "oral"}, "'abc' is not a number"),
    ({"outcome": "confirmed", "secondary_c": "83.4", "site": "oral"}, "outside 30-45"),
    ({"outcome": "confirmed", "secondary_c": "nan", "site": "oral"}, "outside 30-45"),
    ({"outcome": "not_found", "secondary_c": "37.0"}, "site: say where"),
    ({"outcome": "left", "site": "armpit"}, "site: choose one of"),
    ({"outcome": "left", "note": "x" * 2001}, "at most 2000"),
])
def test_close_form_errors(form, error):
    with pytest.raises(ActionError, match=error):
        parse_close_form(form)


@pytest.mark.parametrize("form, parsed", [
    ({"outcome": "confirmed", "secondary_c": "38,45", "site": "oral"}, CloseForm("confirmed", 38.45, "oral", "")),
    ({"outcome": "not_confirmed", "secondary_c": " 36.9 ", "site": "tympanic", "note": " ok "},
     CloseForm("not_confirmed", 36.9, "tympanic", "ok")),
    ({"outcome": "left"}, CloseForm("left", None, None, "")),
])
def test_close_form_ok(form, parsed):
    assert parse_close_form(form) == parsed


def test_image_retention(store):
    store.ingest(event_msg(1, images=True), NOW - 40 * 86400)
    store.ingest(event_msg(2, images=True), NOW - 1 * 86400)
    assert store.prune_images(30, NOW) == 2  # the two images of the old alert
    old, new = alert(store, "gate-1-1000-alert-1"), alert(store, "gate-1-1000-alert-2")
    assert (old["images"], old["images_deleted"]) == ("", True)
    assert new["images"] == "rgb_jpeg,thermal_jpeg"
    assert audit(store, "gate-1-1000-alert-1")[-1] == ("console", "images deleted")
    assert store.prune_images(30, NOW) == 0


def test_stations_liveness_and_screening_figures(store):
    now = 1_764_147_700.0  # 2025-11-26 09:01:40 UTC
    day = "2025-11-26T09:00:0"
    store.ingest(status_msg(1, {"state": "ok", "cameras": {"rgb": {"state": "online"}}, "blackbody": {"state": "ok"},
                                "paired_fps": 8.6}), now - 1)
    for i, (st, reason) in enumerate([("normal", ""), ("indeterminate", "glasses"), ("indeterminate", "glasses"),
                                      ("indeterminate", "too_far")], start=1):
        store.ingest(event_msg(i, kind="screening", status=st, reason=reason, time_utc=f"{day}{i}.000Z"), now)
    store.heard({"station_id": "gate-2", "publisher_id": "gate-2", "interval_s": 1.0}, now - 60)
    with store.read() as c:
        rows = {r.station_id: r for r in queries.stations(c, now, red_after_s=30)}
    g1, g2 = rows["gate-1"], rows["gate-2"]
    assert (g1.liveness, g1.red, g1.state, g1.blackbody, g1.pairs_per_s) == ("online", False, "ok", "ok", 8.6)
    assert (g1.screened_today, g1.indeterminate_share, g1.top_reasons) == (4, 0.75, [("glasses", 2), ("too_far", 1)])
    assert queries.station_label(g1) == "online"
    assert (g2.liveness, g2.red, queries.station_label(g2)) == ("silent", True, "silent")


def test_history_filters_and_ppv(store):
    for i, core in enumerate([38.4, 38.9, 37.9], start=1):
        store.ingest(event_msg(i, core_c=core, time_utc=f"2026-11-26T09:00:0{i}.000Z"), NOW)
    store.ingest(event_msg(1, kind="screening", status="normal", track=9, time_utc="2026-11-26T09:00:05.000Z"), NOW)
    store.close("gate-1-1000-alert-1", "ann", CloseForm("confirmed", 38.3, "oral", ""), NOW)
    store.close("gate-1-1000-alert-2", "ann", CloseForm("not_confirmed", 36.8, "oral", ""), NOW)
    with store.read() as c:
        assert [r["kind"] for r in queries.history(c, queries.HistoryFilter())] == \
            ["screening", "alert", "alert", "alert"]
        assert [r["event_id"] for r in queries.history(c, queries.HistoryFilter(outcome="confirmed"))] == \
            ["gate-1-1000-alert-1"]
        assert len(queries.history(c, queries.HistoryFilter(outcome="open"))) == 1
        assert len(queries.history(c, queries.HistoryFilter(verdict="normal"))) == 1
        assert queries.history(c, queries.HistoryFilter(station="gate-9")) == []
        t0 = 1_795_683_602.0  # 2026-11-26T09:00:02Z
        assert [r["event_id"] for r in queries.history(c, queries.HistoryFilter(from_unix_s=t0, to_unix_s=t0 + 1))] \
            == ["gate-1-1000-alert-2"]
        (o,) = queries.outcomes_per_station(c)
        assert (o.alerts, o.closed, o.confirmed, o.not_confirmed, o.ppv) == (3, 2, 1, 1, 0.5)
        assert [r["event_id"] for r in queries.calibration_rows(c, "oral")] == \
            ["gate-1-1000-alert-1", "gate-1-1000-alert-2"]
        assert queries.calibration_rows(c, "tympanic") == []


def test_changes_follow_every_write(store):
    with store.read() as c:
        start = queries.last_change_id(c)
    store.ingest(event_msg(1), NOW)
    store.ingest(status_msg(1, {"state": "ok"}), NOW)
    store.take("gate-1-1000-alert-1", "ann", NOW)
    with store.read() as c:
        topics = [(topic, key) for _, topic, key in queries.changes_after(c, start)]
    assert topics == [("alert", "gate-1-1000-alert-1"), ("station", "gate-1"), ("alert", "gate-1-1000-alert-1")]


def test_station_known_only_from_caught_up_alerts(store):
    store.ingest(event_msg(1, station="gate-7"), NOW)
    with store.read() as c:
        (row,) = queries.stations(c, NOW + 5, red_after_s=30)
    assert (row.station_id, row.liveness, row.red, row.last_alert_unix_s) == ("gate-7", "never", True, NOW)
    assert queries.station_label(row) == "never heard"
