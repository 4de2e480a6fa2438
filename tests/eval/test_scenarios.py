"""Every bundled scenario through the real pipeline: the expected verdict for each hard case.

Streams are the ones `make setup` renders into sample_streams/ (rendered here if missing or
stale). Each scenario is replayed once (module cache) with the default config and its station
calibration, then scored against truth with edge.eval.scenarios.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from edge.eval.scenarios import score
from edge.io.recording import open_recording
from edge.sim.render_all import STREAMS_DIR, is_fresh, scenario_files
from edge.sim.render_all import main as render_all

# every test here replays or re-renders whole sample streams (minutes in all): `make test-fast` skips them
pytestmark = pytest.mark.slow
# scenario -> person id -> (status, reason or None = any); the subjects each hard case is about
KEY_VERDICTS: dict[str, dict[int, tuple[str, str | None]]] = {
    "walkthrough": {2: ("elevated", "")},
    "normal": {1: ("normal", "")},
    "febrile": {1: ("elevated", "")},
    "masked_queue": {3: ("elevated", "")},
    "glasses": {1: ("indeterminate", "glasses")},
    "two_faces": {1: ("normal", ""), 2: ("elevated", "")},
    "drift": {1: ("normal", "")},
    "blackbody_occluded": {1: ("normal", ""), 2: ("indeterminate", "blackbody_missing"), 3: ("normal", "")},
    "blackbody_moved": {1: ("normal", ""), 2: ("indeterminate", "blackbody_moved")},
    "ffc": {1: ("elevated", ""), 2: ("indeterminate", "ffc"), 3: ("normal", "")},
    "thermal_dropout": {1: ("elevated", "")},
    "too_far": {1: ("indeterminate", "too_far")},
    "warm_mask": {1: ("normal", "")},
    "hires_thermal": {1: ("normal", ""), 2: ("elevated", "")},
    "running": {1: ("indeterminate", "motion_blur")},
}
NAMES = sorted(KEY_VERDICTS)
# every bundled scenario, including those scored but not asserted (population: clinical spread)
ALL_NAMES = sorted(f.parent.name for f in scenario_files())


@pytest.fixture(scope="module")
def streams() -> Path:
    if not all(is_fresh(f) for f in scenario_files()):
        assert render_all([]) == 0
    return STREAMS_DIR


_cache: dict[str, dict] = {}


def scored(streams: Path, name: str) -> dict:
    if name not in _cache:
        from edge.replay import replay

        path = streams / name
        _cache[name] = score(open_recording(path).truth(), replay(path))
    return _cache[name]


def test_every_hard_case_has_a_scenario():
    assert set(NAMES) <= {f.parent.name for f in scenario_files()}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_scenario_reads_back_with_the_recording_reader(streams, name):
    rec = open_recording(streams / name)
    truth = rec.truth()
    assert rec.meta.extra["scenario"] == name and truth["scenario"] == name
    for cam in ("rgb", "thermal"):
        src = rec.source(cam)
        n = 0
        while (f := src.read()) is not None:
            assert f.index == n and f.t_ns == truth["frames"][cam][n]["t_ns"]
            n += 1
        src.close()
        assert n == len(truth["frames"][cam]) > 0


@pytest.mark.parametrize("name", NAMES)
def test_key_subjects_get_the_expected_verdict(streams, name):
    r = scored(streams, name)
    got = {p["id"]: p for p in r["persons"]}
    for pid, (status, reason) in KEY_VERDICTS[name].items():
        p = got[pid]
        assert p["got"] == status, f"{name} person {pid}: expected {status}, got {p['got']} ({p['got_reason']})"
        if reason:
            assert p["got_reason"] == reason, f"{name} person {pid}: reason {p['got_reason']!r}, expected {reason!r}"


@pytest.mark.parametrize("name", NAMES)
def test_no_unsafe_verdicts_and_one_alert_per_febrile_subject(streams, name):
    """Never normal when not trustworthy or febrile; never elevated for a normal subject;
    exactly one alert per febrile subject that could be measured, none for anyone else."""
    r = scored(streams, name)
    for p in r["persons"]:
        if p["expected"] == "indeterminate":
            assert p["got"] in ("indeterminate", "missed"), f"{name} person {p['id']}: {p['got']} but untrustworthy"
        if p["expected"] == "normal":
            assert p["got"] != "elevated", f"{name} person {p['id']}: false alarm"
        if p["expected"] == "elevated":
            assert p["got"] == "elevated", f"{name} person {p['id']}: febrile subject reported {p['got']}"
    a = r["alerts"]
    assert a["false"] == 0 and a["unmatched"] == 0 and a["duplicates"] == 0
    assert a["recalled"] == a["expected_elevated"]


def test_walkthrough_masked_face_is_detected_and_temperature_within_0_3(streams):
    r = scored(streams, "walkthrough")
    assert r["faces"]["masked_h64"]["recall"] >= 0.9
    febrile = next(p for p in r["persons"] if p["id"] == 2)
    assert abs(febrile["skin_error_c"]) <= 0.3


@pytest.mark.parametrize("name", NAMES)
def test_measured_subjects_read_the_true_canthus_within_0_3(streams, name):
    """Through blackbody correction (drift +1.6 C, FFC steps), masks and parallax, every subject
    that got a measured verdict reads its true inner-canthus maximum within 0.3 degC."""
    r = scored(streams, name)
    for p in r["persons"]:
        if p["skin_error_c"] is not None:
            assert abs(p["skin_error_c"]) <= 0.3, f"{name} person {p['id']}: skin error {p['skin_error_c']} C"


def test_sample_stations_alarm_at_the_threshold_their_truth_scores():
    """The replays run the sample calibrations' decision_threshold_c (the station config sets
    none); the scenarios' truth calls a person febrile at core >= truth.threshold_c. One number."""
    from edge.decision import (
        THRESHOLD_FROM_CALIBRATION,
        DecisionConfig,
        threshold_in_force,
    )
    from edge.paths import CALIBRATION_DIR
    from edge.sim.scenario import load_scenario
    from edge.thermal.calibration import load_calibration

    for f in scenario_files():
        sc = load_scenario(f)
        cal = load_calibration(CALIBRATION_DIR / f"{sc.station_id}.toml")
        assert threshold_in_force(DecisionConfig(), cal.skin_to_core.decision_threshold_c) == (
            sc.truth.threshold_c, THRESHOLD_FROM_CALIBRATION), f.parent.name
