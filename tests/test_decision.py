"""Alarm logic (table-driven) and the Screener's per-person lifecycle."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.decision import (
    DecisionConfig,
    RelativeBaseline,
    Screener,
    absolute_verdict,
    aggregate,
    combine_verdicts,
    relative_verdict,
    trimmed_mean,
)
from edge.types import Detections, Verdict

NAN = float("nan")
DT = 115_000_000


@pytest.mark.parametrize("core,unc,sd,thr,k,status,reason", [
    (38.0, 0.4, 0.1, 37.5, 2.0, "elevated", ""),
    (37.5, 0.4, 0.1, 37.5, 2.0, "elevated", ""),  # at the threshold fires
    (36.8, 0.4, 0.1, 37.5, 2.0, "normal", ""),
    (37.25, 0.4, 0.1, 37.5, 2.0, "normal", ""),  # 37.25 + 2 * 0.1 < 37.5
    (37.35, 0.4, 0.1, 37.5, 2.0, "indeterminate", "borderline"),  # 37.35 + 0.2 >= 37.5
    (37.2, 0.4, 0.25, 37.5, 2.0, "indeterminate", "borderline"),  # a small, noisy face
    (37.2, 0.4, None, 37.5, 1.0, "indeterminate", "borderline"),  # no skin sigma: total guards
    (36.9, 0.4, None, 37.5, 1.0, "normal", ""),
    (37.2, 0.4, 0.25, 37.5, 0.0, "normal", ""),  # k = 0 switches the guard band off
    (37.0, NAN, NAN, 37.5, 2.0, "indeterminate", "borderline"),  # unknown sigma is never normal
    (NAN, 0.4, 0.1, 37.5, 2.0, "indeterminate", "no_valid_frames"),
    (37.9, 0.4, 0.1, 38.0, 2.0, "indeterminate", "borderline"),
    (37.9, 0.4, 0.1, 37.8, 2.0, "elevated", ""),
])
def test_absolute_verdict(core, unc, sd, thr, k, status, reason):
    v = absolute_verdict(core, unc, thr, k, skin_c=core - 1.3, guard_sd_c=sd)
    assert (v.status, v.reason) == (status, reason)
    if not math.isnan(core):
        assert v.method == "absolute" and v.threshold_c == thr and v.core_temp_c == core


CFG = DecisionConfig()


@pytest.mark.parametrize("skin,baseline,sd,status,reason,thr", [
    (36.0, None, 0.1, "indeterminate", "relative_warmup", None),
    (36.1, 35.0, 0.1, "elevated", "", 36.0),
    (36.0, 35.0, 0.1, "elevated", "", 36.0),
    (35.5, 35.0, 0.1, "normal", "", 36.0),
    (35.85, 35.0, 0.0, "normal", "", 36.0),
    (35.95, 35.0, 0.0, "indeterminate", "borderline", 36.0),  # within relative_margin_c
    (35.7, 35.0, 0.15, "indeterminate", "borderline", 36.0),  # 35.7 + 2 * 0.15 >= 36.0 - 0.1
    (35.7, 34.7, 0.1, "elevated", "", 35.7),
])
def test_relative_verdict(skin, baseline, sd, status, reason, thr):
    v = relative_verdict(skin, baseline, CFG, guard_sd_c=sd)
    assert (v.status, v.reason, v.method, v.threshold_c) == (status, reason, "relative", thr)
    assert v.skin_temp_c == skin


A_EL = Verdict("elevated", method="absolute", threshold_c=37.5, core_temp_c=38.0)
A_NO = Verdict("normal", method="absolute", threshold_c=37.5, core_temp_c=36.8)
A_BL = Verdict("indeterminate", "borderline", method="absolute", threshold_c=37.5, core_temp_c=37.3)
R_EL = Verdict("elevated", method="relative", threshold_c=36.0, skin_temp_c=36.2)
R_NO = Verdict("normal", method="relative", threshold_c=36.0, skin_temp_c=35.2)
R_BL = Verdict("indeterminate", "borderline", method="relative", threshold_c=36.0, skin_temp_c=35.9)
R_WU = Verdict("indeterminate", "relative_warmup", method="relative")


@pytest.mark.parametrize("a,r,method,expected", [
    (A_EL, R_NO, "both", A_EL), (A_NO, R_EL, "both", R_EL), (A_EL, R_EL, "both", A_EL),
    (A_NO, R_NO, "both", A_NO), (A_NO, R_WU, "both", A_NO), (A_NO, R_BL, "both", R_BL),
    (A_BL, R_NO, "both", A_BL), (A_BL, R_WU, "both", A_BL), (A_BL, R_EL, "both", R_EL),
    (A_NO, R_EL, "absolute", A_NO), (A_EL, R_WU, "relative", R_WU), (A_NO, R_NO, "relative", R_NO),
])
def test_combine_verdicts(a, r, method, expected):
    assert combine_verdicts(a, r, method) is expected


@pytest.mark.parametrize("thr,ok", [(37.5, True), (34.0, True), (39.0, True), (37.3, True), (38.1, True),
                                    (37.55, False), (33.9, False), (39.1, False), (37.51, False)])
def test_threshold_validation(thr, ok):
    if ok:
        assert DecisionConfig(threshold_c=thr).threshold_c == pytest.approx(thr)
    else:
        with pytest.raises(ValueError, match="threshold_c"):
            DecisionConfig(threshold_c=thr)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(warmup_subjects=30, baseline_window=20), r"warmup_subjects=30 exceeds baseline_window=20"),
    (dict(method="median"), "method"), (dict(percentile=40), "percentile"), (dict(trim=0.1), "trim"),
])
def test_config_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DecisionConfig(**kwargs)


def test_trimmed_mean_and_aggregate():
    assert trimmed_mean(np.array([30.0, 35.0, 35.2, 35.4, 40.0]), 0.2) == pytest.approx(35.2)
    assert trimmed_mean(np.array([35.0, 36.0]), 0.1) == pytest.approx(35.5)
    # 15 mediocre normal frames and 5 best-quality febrile frames: the febrile reading wins
    core = np.r_[np.full(15, 36.8), np.full(5, 38.1)]
    q = np.r_[np.full(15, 0.3), np.full(5, 0.9)]
    c, s, u, sd = aggregate(core, core - 1.3, np.full(20, 0.4), np.r_[np.full(15, 0.3), np.full(5, 0.1)], q,
                            best_n=10, percentile=90)
    assert c >= 38.0 and s == pytest.approx(c - 1.3) and u == pytest.approx(0.4)
    assert sd == pytest.approx(0.2)  # median over the best 10 (5 x 0.1, 5 x 0.3)
    # a single hot outlier among the best 10 does not decide alone at the 90th percentile
    core = np.r_[np.full(9, 36.7), 39.0]
    c, _, _, _ = aggregate(core, core, np.full(10, 0.4), np.full(10, 0.1), np.full(10, 0.5), 10, 90)
    assert 36.7 <= c < 37.5


def test_baseline_warmup_window_and_age():
    cfg = DecisionConfig(warmup_subjects=3, baseline_window=4, baseline_max_age_s=60, trim_fraction=0.0)
    b = RelativeBaseline(cfg)
    for k, s in enumerate([35.0, 35.2]):
        b.add(s, k * 10**9)
    assert b.value(2 * 10**9) is None
    b.add(35.4, 2 * 10**9)
    assert b.value(3 * 10**9) == pytest.approx(35.2)
    for k, s in enumerate([36.0, 36.0], start=3):
        b.add(s, k * 10**9)
    assert len(b) == 4  # window: the oldest fell out
    assert b.value(5 * 10**9) == pytest.approx((35.2 + 35.4 + 36.0 + 36.0) / 4)
    assert b.value(63 * 10**9 + 1) is None  # entries older than 60 s dropped: warm-up again


# -- Screener ------------------------------------------------------------------------------------

def person_frame(track_id, core, gate="", quality=0.8, unc=0.35, x=100.0, mask="no", sd=0.08):
    """Tracked + measured Detections for one face (or none when track_id is None)."""
    if track_id is None:
        return Detections.empty()
    box = np.array([[x, 50, x + 60, 130]], np.float32)
    measured = gate == ""
    return Detections(box, [0.9], np.zeros((1, 5, 2), np.float32), dict(
        track_id=np.array([track_id], np.int64), gate=np.array([gate], object),
        core_temp_c=np.array([core if measured else NAN], np.float32),
        skin_temp_c=np.array([core - 1.3 if measured else NAN], np.float32),
        uncertainty_c=np.array([unc if measured else NAN], np.float32),
        skin_sd_c=np.array([sd if measured else NAN], np.float32),
        quality=np.array([quality if measured else 0.0], np.float32),
        box_xyxy_thermal=box / 4, mask=np.array([mask], object), mask_conf=np.array([0.9], np.float32)))


RGB = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
THERMAL = np.random.default_rng(1).normal(30, 1, (120, 160)).astype(np.float32)


def walk(screener, track_id, cores, t0=0, gates=None, qualities=None, end=True, unc=0.35):
    """Feed one person's frames, then end the track; returns all events."""
    events = []
    for k, c in enumerate(cores):
        g = gates[k] if gates else ""
        q = qualities[k] if qualities else 0.8
        events += screener.update(person_frame(track_id, c, g, q, unc), t0 + k * DT, [], RGB, THERMAL)
    if end:
        events += screener.update(Detections.empty(), t0 + len(cores) * DT, [track_id], RGB, THERMAL)
    return events


def kinds(events):
    return [(e.kind, e.type) for e in events]


def test_febrile_person_gives_exactly_one_alert_then_end_and_one_screening():
    rng = np.random.default_rng(2)
    s = Screener(DecisionConfig(threshold_c=37.5))
    ev = walk(s, 7, 38.3 + rng.normal(0, 0.05, 20))
    assert kinds(ev) == [("alert", "new"), ("alert", "end"), ("screening", "end")]
    new = ev[0]
    assert new.track_id == 7 and new.verdict.status == "elevated" and new.verdict.method == "absolute"
    assert new.verdict.threshold_c == 37.5 and new.verdict.core_temp_c >= 38.2
    assert new.snapshot_rgb.shape[2] == 3 and new.snapshot_rgb.dtype == np.uint8
    assert new.snapshot_thermal_c.dtype == np.float32 and new.box_xyxy_thermal is not None
    assert new.t_ns == 0  # the best frame so far (equal quality: the first) -- box and snapshot's time
    assert ev[-1].verdict.status == "elevated" and ev[-1].n_frames == 20
    assert s.verdicts()[7].status == "elevated"
    assert s.counts["alerts"] == 1 and s.counts["elevated"] == 1


def test_normal_person_gives_one_screening_event_only():
    s = Screener(DecisionConfig(threshold_c=37.5))
    ev = walk(s, 1, [36.6, 36.7, 36.8, 36.7, 36.6])
    assert kinds(ev) == [("screening", "end")]
    assert ev[0].verdict.status == "normal" and ev[0].verdict.method == "absolute"
    assert ev[0].mask == "no" and ev[0].mask_conf == pytest.approx(0.9)


@pytest.mark.parametrize("gates,reason", [
    (["glasses"] * 10, "glasses"),
    (["too_far"] * 6 + ["turned_away"] * 3, "turned_away"),  # in place long enough, turned away
    (["too_far"] * 6 + ["turned_away"] * 2, "too_far"),
    (["blackbody_missing"] * 4, "blackbody_missing"),
    (["", "", "motion_blur", "motion_blur", "motion_blur"], "motion_blur"),  # 2 valid < 3 needed
    (["too_far"] * 20 + ["glasses"] * 5 + ["outside_thermal_view"] * 2, "glasses"),  # worn all along
    (["too_far"] * 20 + ["motion_blur"] * 2, "too_far"),  # never really in place
    ([""], "no_valid_frames"),  # one valid frame, none gated
])
def test_gated_person_is_indeterminate_with_reason_never_normal(gates, reason):
    s = Screener(DecisionConfig(threshold_c=37.5))
    ev = walk(s, 3, [36.5] * len(gates), gates=gates)
    assert kinds(ev) == [("screening", "end")]
    v = ev[0].verdict
    assert (v.status, v.reason) == ("indeterminate", reason)
    assert s.verdicts() == {3: v} and s.counts[f"indeterminate:{reason}"] == 1


def test_borderline_person_is_indeterminate():
    s = Screener(DecisionConfig(threshold_c=37.5, method="absolute"))
    ev = walk(s, 4, [37.4] * 8)  # 37.4 + 2 * 0.08 >= 37.5
    assert ev[-1].verdict.status == "indeterminate" and ev[-1].verdict.reason == "borderline"


def test_few_valid_frames_without_gates_is_no_valid_frames():
    s = Screener(DecisionConfig(threshold_c=37.5, min_valid_frames=5))
    ev = walk(s, 2, [38.5, 38.5])
    assert kinds(ev) == [("screening", "end")]
    assert ev[0].verdict.reason == "no_valid_frames"


def test_alert_update_on_clearly_higher_reading_and_verdict_stays_elevated():
    s = Screener(DecisionConfig(threshold_c=37.5, max_alert_updates=1, best_n=5, percentile=90))
    cores = [37.8] * 4 + [38.6] * 6 + [36.5] * 30
    quals = [0.5] * 4 + [0.6] * 6 + [0.95] * 30  # later, sharper frames read normal
    ev = walk(s, 5, cores, qualities=quals)
    assert kinds(ev) == [("alert", "new"), ("alert", "update"), ("alert", "end"), ("screening", "end")]
    assert ev[1].verdict.core_temp_c > ev[0].verdict.core_temp_c + 0.3
    assert ev[-1].verdict.status == "elevated"  # never pulled back toward normal once alerted


def test_person_in_view_for_long_keeps_bounded_state_and_the_same_verdict():
    rng = np.random.default_rng(5)
    cores = 36.9 + rng.normal(0, 0.15, 1500)
    quals = rng.uniform(0.2, 0.95, 1500)
    s = Screener(DecisionConfig(threshold_c=37.5))
    ev = walk(s, 8, cores, qualities=list(quals), end=False)
    p = s._people[8]
    assert len(p.core) <= 4 * 16 + 1 and p.n_valid == 1500
    ev += s.finish()
    best = np.lexsort((-np.arange(1500), -quals))[:10]
    expected = np.percentile(cores[best], 90)
    assert ev[-1].verdict.core_temp_c == pytest.approx(expected, abs=1e-4) and ev[-1].n_frames == 1500


def test_snapshot_comes_from_the_best_frame():
    s = Screener(DecisionConfig(threshold_c=37.5))
    events = []
    for k, (x, q) in enumerate([(100, 0.3), (200, 0.9), (300, 0.5)]):
        events += s.update(person_frame(1, 38.5, quality=q, x=x), k * DT, [], RGB, THERMAL)
    events += s.finish()
    end = events[-1]
    assert end.box_xyxy_rgb[0] == 200 and end.t_ns == DT  # box, snapshot and time of one frame
    x1 = int(200 - 0.15 * 60)
    np.testing.assert_array_equal(end.snapshot_rgb, RGB[int(50 - 0.15 * 80):int(130 + 0.15 * 80), x1:int(260 + 9)])
    assert not np.shares_memory(end.snapshot_rgb, RGB)


def test_untracked_faces_and_unknown_ended_ids_are_ignored():
    s = Screener(DecisionConfig(threshold_c=37.5))
    ev = s.update(person_frame(-1, 39.0), 0, [99], RGB, THERMAL)
    ev += s.finish()
    assert ev == [] and s.verdicts() == {}


def test_finish_ends_everyone_in_id_order():
    s = Screener(DecisionConfig(threshold_c=37.5))
    for k in range(5):
        d = person_frame(2, 36.6)
        e = person_frame(1, 38.4, x=300)
        both = Detections(np.r_[d.box_xyxy, e.box_xyxy], np.r_[d.score, e.score],
                          np.r_[d.landmarks_xy, e.landmarks_xy], {k2: np.r_[d.data[k2], e.data[k2]] for k2 in d.data})
        s.update(both, k * DT, [], RGB, THERMAL)
    ev = s.finish()
    assert kinds(ev) == [("alert", "end"), ("screening", "end"), ("screening", "end")]
    assert [e.track_id for e in ev] == [1, 1, 2]


def normal_crowd(s, n, t0=0, skin=35.0):
    """n normal subjects (core = skin + 1.3 = 36.3); returns the time after them."""
    for i in range(n):
        walk(s, 100 + i + t0 // DT, [skin + 1.3 + 0.02 * (i % 3)] * 4, t0=t0 + i * 10 * DT)
    return t0 + n * 10 * DT


def test_relative_warmup_then_fire():
    s = Screener(DecisionConfig(threshold_c=37.5, method="both", warmup_subjects=5))
    # before warm-up: a warm-skinned subject with a normal core is normal (absolute alone)
    ev = walk(s, 1, [37.0] * 5)
    assert ev[-1].verdict.status == "normal" and ev[-1].verdict.method == "absolute"
    t = normal_crowd(s, 5, t0=100 * DT)
    thr = s.baseline.value(t) + 1.0
    assert thr == pytest.approx((35.7 + 35.0 + 35.02 + 35.04 + 35.0 + 35.02) / 6 + 1.0, abs=1e-4)
    # absolute says normal (core + u < 37.5) but skin is within the relative guard band
    ev = walk(s, 2, [thr - 0.1 + 1.3] * 5, t0=t, unc=0.05)
    v = ev[-1].verdict
    assert (v.status, v.reason, v.method) == ("indeterminate", "borderline", "relative")
    # absolute still normal, skin above baseline + delta: the relative rule fires
    ev = walk(s, 3, [thr + 0.05 + 1.3] * 5, t0=t + 10 * DT, unc=0.01)
    v = ev[0].verdict
    assert kinds(ev)[0] == ("alert", "new") and v.method == "relative"
    assert v.threshold_c == pytest.approx(thr, abs=1e-3) and v.skin_temp_c == pytest.approx(thr + 0.05, abs=1e-3)
    assert len(s.baseline) == 6  # neither the borderline nor the alerted subject entered


def test_relative_only_reports_warmup_until_enough_subjects():
    s = Screener(DecisionConfig(threshold_c=37.5, method="relative", warmup_subjects=3))
    ev = walk(s, 1, [36.4] * 5)
    assert (ev[-1].verdict.status, ev[-1].verdict.reason) == ("indeterminate", "relative_warmup")
    assert len(s.baseline) == 1  # absolute-normal subjects still warm the baseline up
    normal_crowd(s, 2, t0=50 * DT)
    ev = walk(s, 2, [36.4] * 5, t0=100 * DT)
    assert ev[-1].verdict.status == "normal" and ev[-1].verdict.method == "relative"


def test_baseline_never_takes_febrile_or_borderline_subjects():
    s = Screener(DecisionConfig(threshold_c=37.5, warmup_subjects=3))
    t = normal_crowd(s, 4)
    before = s.baseline.value(t)
    for i in range(6):  # febrile queue
        walk(s, 50 + i, [38.6] * 5, t0=t + i * 10 * DT)
    walk(s, 60, [37.4] * 5, t0=t + 70 * DT)  # borderline (37.4 + 2 * 0.08 >= 37.5)
    assert len(s.baseline) == 4 and s.baseline.value(t + 80 * DT) == pytest.approx(before)


def test_baseline_resets_on_blackbody_not_ok_and_drifts_out():
    s = Screener(DecisionConfig(threshold_c=37.5, warmup_subjects=3, baseline_max_age_s=60))
    t = normal_crowd(s, 4)
    assert s.baseline.value(t) is not None
    s.update(Detections.empty(), t, [], blackbody_state="moved")
    assert len(s.baseline) == 0
    t = normal_crowd(s, 4, t0=t + DT)
    s.update(person_frame(9, 36.3, gate="blackbody_unstable"), t, [])  # a gated face says so too
    assert len(s.baseline) == 0
    t = normal_crowd(s, 4, t0=t + DT)
    for state in ("ok", "ffc", "disabled"):  # routine FFC or no blackbody: keep the baseline
        s.update(Detections.empty(), t, [], blackbody_state=state)
    s.update(person_frame(9, 36.3, gate="blackbody_disabled"), t, [])
    assert len(s.baseline) == 4
    assert s.baseline.value(t + 61 * 10**9 + 50 * DT) is None  # entries older than 60 s age out


# -- properties ----------------------------------------------------------------------------------

frames_st = st.lists(st.tuples(st.floats(35.0, 40.0), st.floats(0.0, 1.0)), min_size=3, max_size=30)
RANK = {"normal": 0, "indeterminate": 1, "elevated": 2}


@settings(max_examples=200, deadline=None)
@given(frames=frames_st, bump=st.floats(0.0, 2.0), which=st.integers(0, 29))
def test_a_hotter_frame_never_makes_the_verdict_less_alarming(frames, bump, which):
    core = np.array([c for c, _ in frames])
    q = np.array([x for _, x in frames])

    def verdict(c):
        ag = aggregate(c, c - 1.3, np.full(len(c), 0.4), np.full(len(c), 0.1), q, 10, 90)
        return absolute_verdict(ag[0], ag[2], 37.5, 2.0, ag[1], ag[3])

    hotter = core.copy()
    hotter[which % len(core)] += bump
    assert RANK[verdict(hotter).status] >= RANK[verdict(core).status]


@settings(max_examples=200, deadline=None)
@given(frames=frames_st)
def test_all_frames_febrile_is_always_elevated(frames):
    core = np.array([max(c, 37.5) for c, _ in frames])
    q = np.array([x for _, x in frames])
    ag = aggregate(core, core - 1.3, np.full(len(core), 0.4), np.full(len(core), 0.1), q, 10, 90)
    assert absolute_verdict(ag[0], ag[2], 37.5, 2.0, ag[1], ag[3]).status == "elevated"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(35.0, 40.0, width=32), st.sampled_from([0.2, 0.5, 0.5, 0.9, 1.0])),
                min_size=1, max_size=40),
       st.integers(1, 12))
@pytest.mark.slow
def test_aggregate_is_numpy_best_n_percentile_exactly(frames, best_n):
    """Best-N by quality (ties: later frames first), then np.percentile / np.median: the same
    numbers to the last bit, with many quality ties deciding which frames are in."""
    core = np.array([c for c, _ in frames])
    q = np.array([q for _, q in frames])
    unc, sd = core / 100, core / 300
    best = np.lexsort((-np.arange(len(q)), -q))[:best_n]
    expect = (float(np.percentile(core[best], 90.0)), float(np.percentile(core[best] - 1.3, 90.0)),
              float(np.median(unc[best])), float(np.median(sd[best])))
    assert aggregate(core, core - 1.3, unc, sd, q, best_n, 90.0) == expect
    assert aggregate(core.tolist(), (core - 1.3).tolist(), unc.tolist(), sd.tolist(), q.tolist(), best_n, 90.0) == expect


# -- the alarm threshold: one owner ---------------------------------------------------------------

@pytest.mark.parametrize("config_c,calibration_c,expect", [
    (None, 37.4, (37.4, "calibration skin_to_core.decision_threshold_c")),  # the fitted one by default
    (38.0, 37.4, (38.0, "station config decision.threshold_c")),  # an operator override wins
    (37.5, None, (37.5, "station config decision.threshold_c")),
])
def test_threshold_in_force_is_the_calibrations_unless_the_config_overrides_it(config_c, calibration_c, expect):
    from edge.decision import threshold_in_force

    assert threshold_in_force(DecisionConfig(threshold_c=config_c), calibration_c) == expect
    s = Screener(DecisionConfig(threshold_c=config_c, method="absolute"), calibration_c)
    assert (s.threshold_c, s.threshold_source) == expect
    ev = walk(s, 1, [expect[0]] * 4)  # at the threshold in force fires, whatever its source
    assert ev[0].verdict.status == "elevated" and ev[0].verdict.threshold_c == expect[0]


@pytest.mark.parametrize("calibration_c,match", [
    (None, "no alarm threshold"), (37.45, "not a multiple of 0.1"), (39.5, "less than or equal to 39"),
])
def test_no_usable_threshold_is_a_one_line_user_error(calibration_c, match):
    from edge.decision import ThresholdError
    from edge.errors import UserError

    with pytest.raises(ThresholdError, match=match) as e:
        Screener(DecisionConfig(), calibration_c)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)


def test_decision_config_has_no_threshold_of_its_own():
    """The number lives in the calibration (skin_to_core.decision_threshold_c, fitted with the
    skin->core model): a default here would be a second, silent source."""
    assert DecisionConfig().threshold_c is None
