"""Blackbody reference: drift correction, FFC suppression, and failing closed when it is
occluded, moved or noisy. Frames are small synthetic scenes with a known truth."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge.thermal.blackbody import (
    BlackbodyConfig,
    BlackbodyMonitor,
    apply_offset,
    candidate_problems,
    find_patch,
)
from edge.thermal.measurement import FfcSettle, MeasurementConfig

H, W = 60, 80
BB = (66, 6, 8, 8)  # x, y, w, h of the blackbody aperture
FACE = (20, 20, 16, 20)


def scene(rng, offset_c=0.0, bb_at=BB, bb_c=35.0, face_c=34.0, netd_c=0.05):
    """True scene + camera offset + temporal noise, degC (h,w) float32."""
    img = np.full((H, W), 22.0)
    x, y, w, h = FACE
    # a face is not uniform: warmer towards the eyes
    img[y:y + h, x:x + w] = face_c - 1.5 + 1.5 * np.linspace(0, 1, h)[::-1, None] * np.ones(w)
    if bb_at is not None:
        x, y, w, h = bb_at
        img[y:y + h, x:x + w] = bb_c
    return (img + offset_c + rng.normal(0, netd_c, img.shape)).astype(np.float32)


def run(monitor, frames):
    return [monitor.update(f, ffc, t) for t, (f, ffc) in enumerate(frames)]


def test_auto_detect_finds_aperture():
    rng = np.random.default_rng(0)
    roi = find_patch(scene(rng, offset_c=0.8), 35.0, 3.0, 0.3, 9)
    assert roi is not None
    x, y, w, h = roi
    assert BB[0] <= x and x + w <= BB[0] + BB[2] and BB[1] <= y and y + h <= BB[1] + BB[3]


def test_drift_one_degree_per_hour_corrected_within_0_1():
    rng = np.random.default_rng(1)
    mon = BlackbodyMonitor(BlackbodyConfig(setpoint_c=35.0))
    errors = []
    # one hour at one frame per 5 s; the camera offset drifts linearly by +1 degC
    for i in range(721):
        t_h = i * 5 / 3600
        frame = scene(rng, offset_c=1.0 * t_h)
        st = mon.update(frame, "none", int(i * 5e9))
        corrected = apply_offset(frame, st)
        if i >= 10:
            assert st.state == "ok", (i, st)
            x, y, w, h = FACE
            errors.append(float(np.mean(corrected[y:y + h, x:x + w]) - np.mean(scene(rng, netd_c=0)[y:y + h, x:x + w])))
    errors = np.abs(errors)
    assert errors.max() < 0.1
    # and without the correction the error would have reached the whole drift
    assert mon.expected_c - float(np.mean(frame[6:14, 66:74])) < -0.9


def test_occluded_blackbody_is_missing_then_recovers():
    rng = np.random.default_rng(2)
    mon = BlackbodyMonitor(BlackbodyConfig(roi_xywh=[67, 7, 6, 6], recover_s=1.0))
    dt = int(1e9 / 8.7)
    t = iter(range(0, 10**12, dt))
    states = [mon.update(scene(rng), "none", next(t)).state for _ in range(10)]
    assert states[:2] == ["unstable"] * 2 and states[-1] == "ok"  # start-up: 3 good frames
    # a hand at 33 degC in front of it (and nothing at 35 anywhere else)
    occluded = [mon.update(scene(rng, bb_c=33.0), "none", next(t)) for _ in range(5)]
    assert {s.state for s in occluded} == {"missing"}
    assert occluded[0].gate_reason == "blackbody_missing"
    back = [mon.update(scene(rng), "none", next(t)).state for _ in range(12)]
    # after a fault: good frames spanning recover_s (1 s = 9 frames at 8.7 Hz) before ok
    assert back[:9] == ["unstable"] * 9 and back[-1] == "ok"


def test_switched_off_blackbody_is_missing():
    rng = np.random.default_rng(3)
    mon = BlackbodyMonitor(BlackbodyConfig())
    run(mon, [(scene(rng), "none")] * 5)
    assert mon.update(scene(rng, bb_c=22.0), "none", 0).state == "missing"


def test_moved_blackbody_is_detected():
    rng = np.random.default_rng(4)
    mon = BlackbodyMonitor(BlackbodyConfig())
    run(mon, [(scene(rng), "none")] * 6)
    st = mon.update(scene(rng, bb_at=(50, 40, 8, 8)), "none", 0)
    assert st.state == "moved" and st.gate_reason == "blackbody_moved"
    assert "seen at" in st.reason


def test_warm_face_patch_is_not_taken_for_a_moved_blackbody():
    rng = np.random.default_rng(9)
    mon = BlackbodyMonitor(BlackbodyConfig())
    run(mon, [(scene(rng), "none")] * 6)
    # the blackbody is covered (reads 24) and a uniform 35 degC forehead is in view: missing, not moved
    img = scene(rng, bb_c=24.0)
    img[22:34, 22:34] = 35.0 + rng.normal(0, 0.05, (12, 12))
    img[18:38, 18:38][img[18:38, 18:38] < 34] = 34.2
    assert mon.update(img.astype(np.float32), "none", 0).state == "missing"


def test_noisy_blackbody_is_unstable():
    rng = np.random.default_rng(5)
    mon = BlackbodyMonitor(BlackbodyConfig())
    run(mon, [(scene(rng), "none")] * 6)
    # a fan blowing on it: the reading wanders by +-0.5 between frames
    states = [mon.update(scene(rng, bb_c=35.0 + 0.5 * (-1) ** i), "none", 0).state for i in range(6)]
    assert "unstable" in states and "ok" not in states


def test_never_found_at_startup_is_missing():
    rng = np.random.default_rng(6)
    st = BlackbodyMonitor(BlackbodyConfig()).update(scene(rng, bb_at=None), "none", 0)
    assert st.state == "missing" and st.offset_c == 0.0


def test_ffc_suppressed_and_step_tracked():
    rng = np.random.default_rng(7)
    mon = BlackbodyMonitor(BlackbodyConfig())
    settle = FfcSettle(MeasurementConfig(ffc_settle_ms=500))  # the station's one after-FFC timer
    dt = int(1e9 / 8.7)
    t = iter(range(0, 10**12, dt))
    for _ in range(10):
        mon.update(scene(rng, offset_c=0.4), "none", next(t))
    assert mon.update(scene(rng, offset_c=0.4), "none", next(t)).offset_c == pytest.approx(-0.4, abs=0.03)
    # Lepton telemetry: 'complete' persists after the FFC until the next one
    seq = ["imminent", "in_progress", "in_progress"] + ["complete"] * 12
    # the FFC steps the camera offset from +0.4 to -0.3
    sts = []
    for ffc in seq:
        tn = next(t)
        sts.append(mon.update(scene(rng, offset_c=-0.3 if ffc == "complete" else 0.4), ffc, tn, settle.update(ffc, tn)))
    # 3 FFC frames + 0.5 s of settling after the last of them (0.115, ..., 0.46 s)
    assert [s.state for s in sts[:7]] == ["ffc"] * 7 and sts[7].state == "ok"
    assert sts[-1].offset_c == pytest.approx(0.3, abs=0.03)
    # no 'unstable' jump flagged because of the FFC step
    assert all(s.state in ("ffc", "ok") for s in sts)


def test_persisting_complete_state_is_not_an_ffc():
    rng = np.random.default_rng(8)
    mon = BlackbodyMonitor(BlackbodyConfig())
    states = [mon.update(scene(rng), "complete", i).state for i in range(8)]
    assert states[-1] == "ok"


def test_disabled():
    st = BlackbodyMonitor(BlackbodyConfig(enabled=False)).update(np.zeros((4, 4), np.float32), "none", 0)
    assert st.state == "disabled" and st.offset_c == 0.0


def test_apply_offset_in_place():
    from edge.thermal.blackbody import BlackbodyStatus
    img = np.full((3, 3), 30.0, np.float32)
    out = apply_offset(img, BlackbodyStatus("ok", 34.5, 0.5), out=img)
    assert out is img and np.allclose(img, 30.5)


def test_emissivity_correction_of_expected_reading():
    same = BlackbodyConfig(setpoint_c=35.0, emissivity=0.95)
    assert same.expected_c() == 35.0
    cam1 = BlackbodyConfig(setpoint_c=35.0, emissivity=0.95, camera_emissivity=1.0, reflected_c=22.0)
    assert 34.2 < cam1.expected_c() < 34.5  # a grey body in a cooler room reads colder


@pytest.mark.parametrize("bad", [dict(setpoint_c=80), dict(roi_xywh=[1, 2, 3]), dict(roi_xywh=[0, 0, 0, 5]),
                                 dict(unknown=1)])
def test_config_rejects(bad):
    with pytest.raises(ValidationError):
        BlackbodyConfig(**bad)


@pytest.mark.parametrize("scenario", ["drift", "ffc", "blackbody_occluded", "blackbody_moved"])
@pytest.mark.parametrize("auto_roi", [False, True])
def test_simulator_scenarios_fail_closed(scenario, auto_roi):
    """The simulator's streams (rendered at set-up) with their per-frame truth: never 'ok' while
    the truth says the blackbody is not, and the offset within 0.05 degC of the true sensor offset."""

    from edge.io.recording import open_recording
    from edge.paths import REPO_ROOT as repo
    from edge.thermal.calibration import load_calibration
    from edge.thermal.radiometry import to_celsius
    stream = repo / "sample_streams" / scenario
    if not (stream / "stream.json").is_file():
        pytest.skip(f"{stream} not rendered (make setup renders the sample streams)")
    cfg = load_calibration(repo / "calibration" / "sample-gate-1.toml").blackbody
    if auto_roi:
        cfg = cfg.model_copy(update={"roi_xywh": None})
    rec = open_recording(stream)
    truth = rec.truth()["frames"]["thermal"]
    mon = BlackbodyMonitor(cfg)
    src = rec.source("thermal")
    seen = set()
    while (f := src.read()) is not None:
        st = mon.update(to_celsius(f.image, rec.meta.thermal.units), f.ffc_state, f.t_ns)
        t = truth[f.index]
        seen.add(st.state)
        if t["blackbody_state"] != "ok":
            assert st.state != "ok", (f.index, t["blackbody_state"])
        if st.state == "ok":
            assert abs(st.offset_c + t["offset_c"]) < 0.05, (f.index, st.offset_c, t["offset_c"])
    assert "ok" in seen
    if scenario == "blackbody_moved":
        assert "moved" in seen
    if scenario == "blackbody_occluded":
        assert "missing" in seen and "moved" not in seen
    if scenario == "ffc":
        assert "ffc" in seen


def test_calibrate_blackbody_command_writes_roi(tmp_path, capsys):
    from edge.cli import main
    from edge.io.recording import CameraMeta, RecordingWriter, StreamMeta
    from edge.thermal.calibration import load_calibration
    from edge.thermal.radiometry import from_celsius

    rng = np.random.default_rng(11)
    meta = StreamMeta("g", "2026-11-26T09:00:00.000000Z", 0, CameraMeta("rgb0", 64, 48, 30.0, "bgr24", "rgb.avi"),
                      CameraMeta("lepton0", W, H, 8.7, "gray16le", "thermal.mkv", "centikelvin"))
    with RecordingWriter(tmp_path / "s", meta) as w:
        for i in range(6):
            w.write("thermal", from_celsius(scene(rng, offset_c=0.6)), i * 115_000_000,
                    "in_progress" if i == 0 else "none")
            w.write("rgb", np.zeros((48, 64, 3), np.uint8), i * 115_000_000 + 1_000_000)
    cal = tmp_path / "g.toml"
    cal.write_text('# keep me\nschema_version = 1\nstation_id = "g"\ndate = "2026-11-26"\n[blackbody]\nsetpoint_c = 35.0\n')
    assert main(["calibrate", "blackbody", str(tmp_path / "s"), "--calibration", str(cal)]) == 2  # 5 < 20 frames
    assert "only 5 thermal frame(s) outside FFC, 20 needed" in capsys.readouterr().err
    assert main(["calibrate", "blackbody", str(tmp_path / "s"), "--calibration", str(cal), "--frames", "5"]) == 0
    out = capsys.readouterr().out
    assert "camera offset +0.6" in out
    x, y, w, h = load_calibration(cal).blackbody.roi_xywh
    assert BB[0] <= x and x + w <= BB[0] + BB[2] and BB[1] <= y and y + h <= BB[1] + BB[3] and w * h >= 16
    assert cal.read_text().startswith("# keep me")


def test_reference_contrast_is_last_finite_one():
    """The surround contrast is computed only when a moved-check needs it; it must still be that
    of the last good frame whose surroundings were readable (strips all NaN -> keep the older)."""
    from edge.thermal.blackbody import _surround_contrast

    rng = np.random.default_rng(7)
    mon = BlackbodyMonitor(BlackbodyConfig(setpoint_c=35.0, roi_xywh=list(BB)))
    expect = float("nan")
    for i in range(12):
        frame = scene(rng, bb_c=35.0, offset_c=0.01 * i)
        x, y, w, h = BB
        if i in (5, 9):  # dead surroundings: no readable strip this frame
            ring = frame[y - 4:y + h + 4, x - 4:x + w + 4].copy()
            frame[y - 4:y + h + 4, x - 4:x + w + 4] = np.nan
            frame[y:y + h, x:x + w] = ring[4:4 + h, 4:4 + w]
        c = _surround_contrast(frame, BB, float(np.mean(frame[y + 1:y + h - 1, x + 1:x + w - 1])))
        st = mon.update(frame, "none", int(i * 1e8))
        assert st.state == ("ok" if i >= 2 else "unstable"), st
        expect = c if np.isfinite(c) else expect
        if i in (4, 5, 6, 9, 11):
            assert mon._ref_contrast_c == pytest.approx(expect, abs=1e-4)
    assert expect > 10  # 35 degC blackbody against a 22 degC wall


def test_blackbody_settles_on_the_stations_one_ffc_timer():
    """One after-FFC settle time (measurement.ffc_settle_ms): the calibration's blackbody table
    has none, refuses the old key by name, and the monitor is 'ffc' exactly while FfcSettle is."""
    with pytest.raises(ValueError, match="measurement.ffc_settle_ms"):
        BlackbodyConfig(settle_s=0.5)
    assert not any("settle" in name for name in BlackbodyConfig.model_fields)
    rng = np.random.default_rng(9)
    mon, settle = BlackbodyMonitor(BlackbodyConfig()), FfcSettle(MeasurementConfig(ffc_settle_ms=1000))
    seq = ["none"] * 10 + ["imminent", "in_progress"] + ["complete"] * 20
    flags, states = [], []
    for i, ffc in enumerate(seq):
        t_ns = int(i * 1e9 / 8.7)
        flags.append(settle.update(ffc, t_ns))
        states.append(mon.update(scene(rng), ffc, t_ns, flags[-1]).state)
    assert [s == "ffc" for s in states] == flags and sum(flags) == 2 + 8  # 1.0 s at 8.7 Hz after the last


def test_ffc_states_are_spelled_once():
    """FFC_ACTIVE is a slice of FFC_STATES, the timer and the monitor read it, and no thermal
    module or the pipeline spells the states out again."""
    import re

    from edge.paths import REPO_ROOT
    from edge.types import FFC_ACTIVE, FFC_STATES

    assert set(FFC_ACTIVE) < set(FFC_STATES) and "complete" not in FFC_ACTIVE
    settle = FfcSettle(MeasurementConfig(ffc_settle_ms=0))
    assert [settle.update(s, 10**9 * i) for i, s in enumerate(FFC_STATES)] == [s in FFC_ACTIVE for s in FFC_STATES]
    for path in [*(REPO_ROOT / "edge" / "thermal").glob("*.py"), REPO_ROOT / "edge" / "pipeline.py"]:
        assert not re.search(r"[\"'](imminent|in_progress)[\"']", path.read_text()), path


def test_calibration_candidate_must_be_a_blackbody():
    """Issue 14 item 10: `calibrate blackbody` took a 13x8 skin patch of one face-photo frame.
    A candidate must be uniform, stable, aperture-shaped and stand out on every side, over the
    frames asked for."""
    rng = np.random.default_rng(5)
    cfg = BlackbodyConfig()
    good = [scene(rng) for _ in range(20)]
    roi = find_patch(np.mean(good, axis=0), 35.0, cfg.auto_tolerance_c, cfg.max_spatial_sd_c, cfg.auto_min_area_px)
    assert candidate_problems(good, roi, cfg, 20) == []
    assert candidate_problems(good[:1], roi, cfg, 20) == ["only 1 thermal frame(s) outside FFC, 20 needed to judge stability"]
    # a flat warm patch of skin: uniform and at the set point, but with warm face around it
    skin = [f.copy() for f in good]
    for f in skin:
        f[24:32, 24:32] = 35.0 + rng.normal(0, 0.05, (8, 8))
        f[20:36, 20:36] = np.where(f[20:36, 20:36] < 34.5, 34.4, f[20:36, 20:36])
    probs = candidate_problems(skin, (23, 23, 10, 10), cfg, 20)
    assert len(probs) == 1 and probs[0].startswith("does not stand out from its surroundings on every side")
    # a bar, not an aperture
    assert any("not square or disc-shaped" in p for p in candidate_problems(good, (66, 6, 13, 8), cfg, 20))
    # a reference that wanders: 0.5 degC steps every 5 frames
    wander = [f + np.float32(0.5 * (i // 5)) * (np.arange(W) >= 60)[None, :] for i, f in enumerate(good)]
    probs = candidate_problems(wander, roi, cfg, 20)
    assert len(probs) == 1 and probs[0].startswith("not stable: reading SD") and "frame-to-frame change 0.5" in probs[0]
    noisy = [scene(rng, netd_c=0.6) for _ in range(20)]
    assert any(p.startswith("not uniform: spatial SD") for p in candidate_problems(noisy, roi, cfg, 20))
