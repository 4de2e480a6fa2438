"""Visitor guidance: the message rules table-driven, the config's checks, and the stateful Guide
over real Detections, events and the Screener's live verdicts."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge.decision import DecisionConfig, Screener
from edge.guidance import (
    DEFAULT_MESSAGES,
    MESSAGE_KEYS,
    Choice,
    GuidanceConfig,
    Guide,
    PersonView,
    StationView,
    choose,
    held_after_end,
)
from edge.types import Detections, ScreeningEvent, Verdict

CFG = GuidanceConfig()
OK = StationView(True, "ok")


def person(gate="", verdict=None, reason="", in_view_s=1.0, area=10_000.0, tid=1):
    return PersonView(tid, gate, area, in_view_s, verdict, reason)


@pytest.mark.parametrize("people, station, held, expected", [
    # station-wide first: nobody may be told anything about their reading
    ([person(verdict="normal")], StationView(False, "ok"), None, Choice("paused", reason="cameras")),
    ([person(verdict="normal")], StationView(True, "missing"), None, Choice("paused", reason="blackbody_missing")),
    ([], StationView(True, "moved"), None, Choice("paused", reason="blackbody_moved")),
    ([], StationView(True, "unstable"), None, Choice("paused", reason="blackbody_unstable")),
    ([], StationView(True, "disabled", blackbody_required=True), None, Choice("paused", reason="blackbody_disabled")),
    ([], StationView(True, "disabled", blackbody_required=False), None, Choice("idle")),
    ([person()], StationView(True, "ffc"), None, Choice("wait", reason="ffc")),
    # elevated anyone in view beats the crowd and the nearest person
    ([person(gate="several_faces", area=9e4, tid=1), person(gate="several_faces", verdict="elevated", area=1e4, tid=2)],
     OK, None, Choice("see_staff", 2, "elevated")),
    ([person(gate="several_faces", tid=1), person(gate="several_faces", tid=2)], OK, None,
     Choice("one_at_a_time", reason="several_faces")),
    # the nearest person decides
    ([person(gate="too_far", area=100.0, tid=7), person(verdict="normal", area=5e4, tid=8)], OK, None,
     Choice("proceed", 8, "normal")),
    ([person(gate="too_far")], OK, None, Choice("step_closer", 1, "too_far")),
    ([person(gate="outside_thermal_view")], OK, None, Choice("center", 1, "outside_thermal_view")),
    ([person(gate="turned_away")], OK, None, Choice("look", 1, "turned_away")),
    ([person(gate="motion_blur")], OK, None, Choice("hold_still", 1, "motion_blur")),
    ([person(gate="no_skin")], OK, None, Choice("uncover", 1, "no_skin")),
    ([person(gate="glasses")], OK, None, Choice("glasses", 1, "glasses")),
    ([person(gate="")], OK, None, Choice("measuring", 1, "")),
    ([person(gate="blackbody_missing")], OK, None, Choice("paused", 1, "blackbody_missing")),
    # never "proceed" from an indeterminate verdict: measuring, then staff
    ([person(gate="", verdict="indeterminate", reason="borderline", in_view_s=3.0)], OK, None,
     Choice("measuring", 1, "borderline")),
    ([person(gate="", verdict="indeterminate", reason="borderline", in_view_s=10.0)], OK, None,
     Choice("see_staff", 1, "borderline")),
    ([person(gate="glasses", in_view_s=12.0)], OK, None, Choice("see_staff", 1, "glasses")),
    # waiting far away or at the edge is not a reason to call staff
    ([person(gate="too_far", in_view_s=60.0)], OK, None, Choice("step_closer", 1, "too_far")),
    ([person(gate="outside_thermal_view", in_view_s=60.0)], OK, None, Choice("center", 1, "outside_thermal_view")),
    # elevated / normal stay what they are however long the person stays
    ([person(verdict="normal", in_view_s=60.0)], OK, None, Choice("proceed", 1, "normal")),
    ([person(verdict="elevated", in_view_s=0.5)], OK, None, Choice("see_staff", 1, "elevated")),
    # nobody in view: the held outcome, else idle
    ([], OK, Choice("proceed", 3, "normal"), Choice("proceed", 3, "normal")),
    ([], OK, None, Choice("idle")),
    # a new person replaces a held outcome
    ([person(gate="too_far", tid=4)], OK, Choice("proceed", 3, "normal"), Choice("step_closer", 4, "too_far")),
])
def test_choose(people, station, held, expected):
    assert choose(people, station, held, CFG) == expected


@pytest.mark.parametrize("status, reason, held", [
    ("normal", "", "proceed"),
    ("elevated", "", "see_staff"),
    ("indeterminate", "glasses", "see_staff"),
    ("indeterminate", "borderline", "see_staff"),
    ("indeterminate", "too_far", None),
    ("indeterminate", "outside_thermal_view", None),
    ("indeterminate", "no_valid_frames", None),
    ("indeterminate", "blackbody_missing", None),
    ("indeterminate", "ffc", None),
])
def test_held_after_end(status, reason, held):
    assert held_after_end(status, reason) == held


def test_proceed_only_from_normal_for_every_input():
    """Exhaustive over the state space: 'proceed' appears only when the nearest person's live
    verdict is normal, the station is screening and nobody is elevated."""
    gates = ["", "too_far", "outside_thermal_view", "turned_away", "motion_blur", "no_skin", "glasses",
             "several_faces", "blackbody_missing", "ffc"]
    for bb in ("ok", "missing", "moved", "unstable", "disabled", "ffc"):
        for cams in (True, False):
            for gate in gates:
                for verdict in (None, "normal", "elevated", "indeterminate"):
                    for t in (0.0, 30.0):
                        c = choose([person(gate, verdict, "borderline" if verdict == "indeterminate" else "", t)],
                                   StationView(cams, bb), None, CFG)
                        if c.key == "proceed":
                            assert verdict == "normal" and cams and bb == "ok", (gate, verdict, bb, cams)
                        if verdict == "indeterminate":
                            assert c.key != "proceed"


def test_every_language_has_every_key():
    for lang, msgs in DEFAULT_MESSAGES.items():
        assert set(msgs) == set(MESSAGE_KEYS), lang
    assert GuidanceConfig(language="de").text("glasses") == "Bitte nehmen Sie die Brille ab"
    assert GuidanceConfig(messages={"proceed": "Merci"}).text("proceed") == "Merci"


@pytest.mark.parametrize("data, match", [
    ({"messages": {"hello": "x"}}, "messages.hello: unknown message key"),
    ({"messages": {"proceed": ""}}, "messages.proceed: must be 1..120"),
    ({"language": "nl"}, "give every key in messages"),
    ({"language": "english"}, "string_pattern_mismatch|should match"),
    ({"staff_after_s": 1}, "greater than or equal"),
    ({"colour": "red"}, "Extra inputs"),
])
def test_config_rejects(data, match):
    with pytest.raises(ValidationError, match=match):
        GuidanceConfig(**data)


def test_config_accepts_a_language_with_every_key():
    cfg = GuidanceConfig(language="nl", messages={k: f"nl {k}" for k in MESSAGE_KEYS})
    assert cfg.text("glasses") == "nl glasses"


def _dets(tracks: list[tuple[int, str, float]]) -> Detections:
    """(track_id, gate, box side px) per face."""
    n = len(tracks)
    boxes = np.array([[100, 100, 100 + s, 100 + s] for _, _, s in tracks], np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(n, 0.9, np.float32), np.zeros((n, 5, 2), np.float32),
                      {"track_id": np.array([t for t, _, _ in tracks], np.int64),
                       "gate": np.array([g for _, g, _ in tracks], dtype=object)})


def _end(tid: int, status: str, reason: str = "") -> ScreeningEvent:
    return ScreeningEvent("screening", "end", tid, 0, Verdict(status, reason), (0, 0, 1, 1), None, 0.9)


def test_guide_sequence_of_visits():
    g = Guide(GuidanceConfig(proceed_hold_s=2.0, staff_after_s=5.0, staff_hold_s=3.0))
    verdicts: dict[int, Verdict] = {}
    s = 1_000_000_000

    def step(t_s, tracks, events=(), bb="ok"):
        return g.update(int(t_s * s), _dets(tracks), verdicts.get, list(events), bb)

    assert step(0.0, []).key == "idle"
    assert step(0.5, [(1, "too_far", 40)]).key == "step_closer"
    m = step(1.0, [(1, "", 120)])
    assert (m.key, m.text, m.track_id) == ("measuring", "Measuring…", 1)
    assert step(1.2, [(1, "", 120)]).since_t_ns == m.since_t_ns  # unchanged message keeps its start
    verdicts[1] = Verdict("normal")
    assert step(1.5, [(1, "", 120)]).key == "proceed"
    assert step(1.9, []).people == 1  # a frame or two without the face: still in view
    assert step(2.1, []).key == "proceed"  # left: held for proceed_hold_s
    assert step(3.0, [], [_end(1, "normal")]).key == "proceed"  # the final verdict refines, never extends
    assert step(4.0, []).key == "proceed"
    assert step(4.2, []).key == "idle"
    # a person who keeps glasses on: the glasses message, then staff, also after they left
    assert step(5.0, [(2, "glasses", 120)]).key == "glasses"
    assert step(9.9, [(2, "glasses", 120)]).key == "glasses"
    assert step(10.1, [(2, "glasses", 120)]).key == "see_staff"
    assert step(10.7, []).key == "see_staff"
    assert step(13.8, []).key == "idle"
    # someone walking past far away leaves nothing behind
    assert step(14.0, [(3, "too_far", 30)]).key == "step_closer"
    assert step(14.6, []).key == "idle"
    assert step(15.0, [], bb="missing").key == "paused"
    assert g.update_idle(int(16 * s)).key == "paused"
    assert step(17.0, [(4, "too_far", 30)]).key == "step_closer"


def test_guide_late_end_event_of_an_earlier_person_does_not_replace_the_hold():
    """A normal person's track ends (max_age later) while a febrile one stands there; when the
    febrile one leaves, 'see staff' is held, not the earlier person's 'proceed'."""
    g = Guide(GuidanceConfig())
    verdicts = {1: Verdict("normal"), 2: Verdict("elevated")}
    s = 1_000_000_000

    def step(t_s, tracks, events=()):
        return g.update(int(t_s * s), _dets(tracks), verdicts.get, list(events), "ok")

    assert step(0.0, [(1, "", 120)]).key == "proceed"
    assert step(1.0, [(2, "", 120)]).key == "see_staff"
    verdicts.pop(1)
    assert step(2.0, [(2, "", 120)], [_end(1, "normal")]).key == "see_staff"
    m = step(3.0, [])
    assert (m.key, m.track_id) == ("see_staff", 2)
    assert step(4.0, [], [_end(2, "elevated")]).key == "see_staff"


def test_guide_reads_the_screeners_live_verdict():
    """Real Screener: after min_valid_frames valid frames of a clearly normal reading, the live
    verdict is normal and guidance says proceed; an elevated one sends to staff at once."""
    screener = Screener(DecisionConfig(method="absolute", min_valid_frames=3), calibration_threshold_c=37.5)
    g = Guide(GuidanceConfig())
    for k, core in enumerate([36.5, 36.6, 36.5, 36.6]):
        dets = _dets([(5, "", 120)]).with_data(
            core_temp_c=np.array([core], np.float32), skin_temp_c=np.array([core - 1.3], np.float32),
            uncertainty_c=np.array([0.4], np.float32), skin_sd_c=np.array([0.1], np.float32),
            quality=np.array([0.8], np.float32))
        t = k * 115_000_000
        events = screener.update(dets, t, [])
        msg = g.update(t, dets, screener.live_verdict, events, "ok")
        assert msg.key == ("measuring" if k < 2 else "proceed"), k
    for k, core in enumerate([38.9, 39.0, 38.9]):
        dets = _dets([(6, "", 120)]).with_data(
            core_temp_c=np.array([core], np.float32), skin_temp_c=np.array([core - 1.3], np.float32),
            uncertainty_c=np.array([0.4], np.float32), skin_sd_c=np.array([0.1], np.float32),
            quality=np.array([0.8], np.float32))
        t = (10 + k) * 115_000_000
        events = screener.update(dets, t, [5] if k == 0 else [])
        msg = g.update(t, dets, screener.live_verdict, events, "ok")
    assert screener.live_verdict(6).status == "elevated"
    assert (msg.key, msg.track_id) == ("see_staff", 6)


def _guidance_over(stream_name: str) -> tuple[list[tuple[str, int]], dict[int, Verdict], dict[int, set[str]]]:
    """Replay a sample through the real pipeline (ONNX detector) with a Guide reading its
    Screener: (message changes as (key, track), final verdicts, keys shown per track)."""
    from edge.io.recording import open_recording, recording_pairs
    from edge.pipeline import WallClock, build_pipeline, default_config
    from tests.support import sample_stream

    path = sample_stream(stream_name)
    rec = open_recording(path)
    cfg = default_config(rec.meta.station_id)
    pipe = build_pipeline(cfg, wall_clock=WallClock.from_iso(rec.meta.start_utc, rec.meta.t0_ns),
                          thermal_units=rec.meta.thermal.units)
    guide = Guide(GuidanceConfig(), blackbody_required=not cfg.measurement.allow_without_blackbody)
    changes: list[tuple[str, int]] = []
    shown: dict[int, set[str]] = {}

    for pair in recording_pairs(path, cfg.pairing):
        res = pipe.process_pair(pair)
        g = guide.update(pair.t_ns, res.detections, pipe.screener.live_verdict, res.events, res.blackbody.state)
        if not changes or changes[-1] != (g.key, g.track_id):
            changes.append((g.key, g.track_id))
        shown.setdefault(g.track_id, set()).add(g.key)
    pipe.finish()
    return changes, pipe.screener.verdicts(), shown


@pytest.mark.slow
@pytest.mark.parametrize("stream, expected", [
    # expected: message keys that appear in this order (others may come between)
    ("glasses", ["step_closer", "glasses", "see_staff"]),
    ("febrile", ["step_closer", "measuring", "see_staff"]),
    ("blackbody_occluded", ["measuring", "proceed", "paused", "step_closer", "measuring", "proceed"]),
    ("masked_queue", ["proceed", "proceed", "see_staff", "proceed"]),
    ("running", ["hold_still", "see_staff"]),
])
def test_guidance_over_sample_scenarios(stream, expected):
    changes, finals, shown = _guidance_over(stream)
    keys = iter(k for k, _ in changes)
    assert all(any(k == e for k in keys) for e in expected), (expected, changes)
    for tid, v in finals.items():  # never 'proceed' to someone whose verdict is not normal
        if "proceed" in shown.get(tid, set()):
            assert v.status == "normal", (tid, v, changes)
        if v.status == "elevated":
            assert "see_staff" in shown[tid], (tid, changes)
