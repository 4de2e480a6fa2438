"""Scene simulator: determinism, geometric and thermal consistency of the truth, sensor statistics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.io.recording import open_recording
from edge.paths import REPO_ROOT as REPO
from edge.sim import ScenarioError, load_scenario, render_scenario
from edge.sim.cameras import apply_homography, make_station
from edge.sim.scenario import Scenario
from edge.sim.truth import expected_verdict, frame_gate

TINY = """
name = "tiny"
description = "one febrile person standing close, 1.2 s"
seed = 7
duration_s = 1.2
[sensor]
{sensor}
[[person]]
id = 1
core_c = 38.2
waypoints = [[0.0, 0.02, 0.0, 0.7], [1.2, 0.0, 0.0, 0.5]]
"""


def _write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _read_all(path: Path, camera: str) -> list:
    src = open_recording(path).source(camera)
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    return frames


@pytest.fixture(scope="module")
def clean_stream(tmp_path_factory, astronaut_bgr):
    """A tiny stream without sensor noise, FPN or dead pixels: temperatures exactly as rendered."""
    d = tmp_path_factory.mktemp("clean")
    sc = _write(d, TINY.format(sensor="netd_mk = 0.0\nfpn_c = 0.0\ncolumn_fpn_c = 0.0\ndead_pixels = 0"))
    truth = render_scenario(sc, d / "out", astronaut_bgr)
    return d / "out", truth


@pytest.mark.slow
def test_same_seed_gives_identical_bytes(tmp_path, astronaut_bgr):
    sc = _write(tmp_path, TINY.format(sensor=""))
    render_scenario(sc, tmp_path / "a", astronaut_bgr)
    render_scenario(sc, tmp_path / "b", astronaut_bgr)
    for name in ("rgb.avi", "thermal.mkv", "timestamps.csv", "truth.json", "stream.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    render_scenario(sc, tmp_path / "c", astronaut_bgr, seed=8)  # as `simulate --seed 8`
    a = _read_all(tmp_path / "a", "thermal")[3].image
    c = _read_all(tmp_path / "c", "thermal")[3].image
    assert not np.array_equal(a, c), "a different seed must give different noise"
    assert json.loads((tmp_path / "c" / "truth.json").read_text())["seed"] == 8


def test_canthus_points_are_the_hottest_pixels_of_the_face(clean_stream):
    path, truth = clean_stream
    frames = _read_all(path, "thermal")
    assert len(frames) == len(truth["frames"]["thermal"]) >= 9
    canthus_c = truth["persons"][0]["canthus_c"]
    for f, t in zip(frames, truth["frames"]["thermal"]):
        face = t["faces"][0]
        temp_c = f.image.astype(np.float64) * 0.01 - 273.15
        x1, y1, x2, y2 = (int(round(v)) for v in face["box_xyxy"])
        crop = temp_c[max(y1, 0):y2 + 1, max(x1, 0):x2 + 1]
        yy, xx = np.unravel_index(np.argmax(crop), crop.shape)
        hot = np.array([xx + max(x1, 0), yy + max(y1, 0)], float)
        d = np.min(np.hypot(*(np.asarray(face["canthi_xy"]) - hot).T))
        assert d <= 1.5, f"thermal frame {t['index']}: hottest face pixel {hot} is {d:.1f} px from the canthi"
        # close enough (IOD >= 13 px): the hottest pixel reads the true canthus within 0.1 degC
        if face["iod_px"] >= 13:
            assert abs(crop.max() - canthus_c) < 0.1


def test_rgb_and_thermal_truth_agree_through_the_true_homography(clean_stream):
    path, truth = clean_stream
    geo = make_station()
    rgb_t = np.array([f["t_ns"] for f in truth["frames"]["rgb"]])
    for t in truth["frames"]["thermal"]:
        face_th = t["faces"][0]
        # render the RGB truth at the thermal frame's instant: nearest RGB frame is within 17 ms
        j = int(np.argmin(np.abs(rgb_t - t["t_ns"])))
        face_rgb = truth["frames"]["rgb"][j]["faces"][0]
        H = geo.homography_at(face_th["distance_m"])
        mapped = apply_homography(H, face_rgb["canthi_xy"])
        # the subject moves < 1 cm between the two instants: well under a thermal pixel
        assert np.abs(mapped - np.asarray(face_th["canthi_xy"])).max() < 0.6
        # and the calibration model (homography at 1.5 m + parallax) agrees with the exact map
        model = geo.model_map(face_rgb["canthi_xy"], face_rgb["distance_m"])
        assert np.abs(model - mapped).max() < 0.6
    assert truth["registration"]["model_max_error_px"] < 0.2


def test_rgb_landmarks_match_a_real_face_detector(clean_stream, centerface_path):
    from edge.vision.detection import CenterFaceDetector, load_session

    path, truth = clean_stream
    det = CenterFaceDetector(load_session(centerface_path, 1))
    frames = _read_all(path, "rgb")
    for k in (0, len(frames) // 2, len(frames) - 1):
        face = truth["frames"]["rgb"][k]["faces"][0]
        d = det.detect(frames[k].image)
        assert len(d) >= 1
        i = int(np.argmax(d.score))
        err = np.hypot(*(d.landmarks_xy[i] - np.asarray(face["landmarks_xy"])).T)
        assert err.max() < 0.2 * face["iod_px"], f"rgb frame {k}: landmark error {err.round(1)} px"


def test_parallax_model_is_exact_for_a_pure_roll_mount():
    geo = make_station(thermal_rot_deg=(0.0, 0.0, 1.5))
    assert geo.model_max_error_px() < 1e-6
    tilted = make_station(thermal_rot_deg=(2.0, -2.0, 1.5))
    assert tilted.model_max_error_px() > 0.1  # pitch/yaw break the model: the check can fail


def test_sensor_noise_fpn_and_drift_statistics(tmp_path, astronaut_bgr):
    # No people; 2 s at 8.7 Hz; a fast drift so it is measurable over the clip.
    sc = _write(tmp_path, """
name = "empty"
description = "empty scene for noise statistics"
seed = 3
duration_s = 2.5
[sensor]
netd_mk = 50.0
fpn_c = 0.05
column_fpn_c = 0.0
dead_pixels = 2
drift_c_per_h = 360.0
""")
    truth = render_scenario(sc, tmp_path / "out", astronaut_bgr)
    frames = _read_all(tmp_path / "out", "thermal")
    stack = np.stack([f.image.astype(np.float64) * 0.01 - 273.15 for f in frames])
    t_s = np.array([f.t_ns for f in frames]) / 1e9
    dead = np.array(truth["sensor"]["dead_pixels_yx"])
    assert (stack[:, dead[:, 0], dead[:, 1]] == -273.15).all()
    roi = stack[:, 40:80, 20:60]  # plain wall
    # drift: the frame mean rises at the configured 0.1 degC/s
    slope = np.polyfit(t_s, roi.mean(axis=(1, 2)), 1)[0]
    assert slope == pytest.approx(0.1, rel=0.1)
    # temporal noise: per-pixel residual after removing each pixel's linear trend
    resid = roi - np.polyval(np.polyfit(t_s, roi.reshape(len(t_s), -1), 1), t_s[:, None]).reshape(roi.shape)
    netd = resid.std(axis=0, ddof=2).mean()
    assert netd == pytest.approx(0.050, rel=0.15), netd
    # fixed pattern: the per-pixel temporal mean varies by the FPN (the wall is smooth)
    mean_img = roi.mean(axis=0)
    yy, xx = np.mgrid[: mean_img.shape[0], : mean_img.shape[1]]
    A = np.c_[np.ones(mean_img.size), xx.ravel(), yy.ravel()]  # remove the wall's smooth gradient
    fpn = (mean_img.ravel() - A @ np.linalg.lstsq(A, mean_img.ravel(), rcond=None)[0]).std()
    assert fpn == pytest.approx(np.hypot(0.05, 0.05 / np.sqrt(len(t_s))), rel=0.2), fpn


def test_ffc_freezes_frames_then_steps_the_offset(tmp_path, astronaut_bgr):
    sc = _write(tmp_path, """
name = "ffcstat"
description = "FFC statistics"
seed = 5
duration_s = 3.0
[sensor]
ffc_times_s = [1.5]
ffc_duration_s = 0.4
ffc_imminent_s = 0.3
ffc_step_c = 0.5
""")
    render_scenario(sc, tmp_path / "out", astronaut_bgr)
    frames = _read_all(tmp_path / "out", "thermal")
    states = [f.ffc_state for f in frames]
    t_s = np.array([f.t_ns for f in frames]) / 1e9
    assert set(states[: int(np.argmax(t_s >= 1.2))]) == {"none"}
    assert "imminent" in states and states.count("in_progress") >= 2
    assert states[-1] == "complete"  # telemetry keeps the last FFC's state
    frozen = [f.image for f in frames if f.ffc_state == "in_progress"]
    assert all(np.array_equal(frozen[0], im) for im in frozen[1:])
    before = np.mean([f.image[40:80, 20:60].mean() for f, t in zip(frames, t_s) if t < 1.2]) * 0.01
    after = np.mean([f.image[40:80, 20:60].mean() for f, t in zip(frames, t_s) if t > 2.0]) * 0.01
    assert after - before == pytest.approx(0.5, abs=0.03)


def test_thermal_drop_window_leaves_a_gap_in_time_only(tmp_path, astronaut_bgr):
    sc = _write(tmp_path, TINY.format(sensor="drop_windows_s = [[0.4, 0.8]]"))
    truth = render_scenario(sc, tmp_path / "out", astronaut_bgr)
    t_s = np.array([f["t_ns"] for f in truth["frames"]["thermal"]]) / 1e9
    assert not ((t_s >= 0.4) & (t_s < 0.8)).any()
    assert np.diff(t_s).max() > 0.4
    assert len(_read_all(tmp_path / "out", "thermal")) == len(t_s)


@pytest.mark.parametrize("core, gates, status, reason", [
    (38.0, ["", "", ""], "elevated", ""),
    (36.8, ["too_far", "", "", ""], "normal", ""),
    (38.0, ["too_far", "glasses", "glasses", ""], "indeterminate", "glasses"),
    (38.0, ["too_far"] * 9 + ["ffc", "", ""], "indeterminate", "ffc"),
    (38.0, ["too_far"] * 5, "indeterminate", "too_far"),
    (38.0, ["outside_thermal_view"], "indeterminate", "outside_thermal_view"),
    (38.0, [], "indeterminate", "no_valid_frames"),
])
def test_expected_verdict_table(core, gates, status, reason):
    v = expected_verdict(core, gates, 37.5, 3)
    assert (v["status"], v["reason"]) == (status, reason)


def test_frame_gate_order():
    assert frame_gate(True, False, "ok", False, 20.0, 13.0) == ""
    assert frame_gate(True, False, "ok", False, 10.0, 13.0) == "too_far"
    # the station's order (edge.types.GateReason): too far before glasses, station-wide first
    assert frame_gate(True, False, "ok", True, 10.0, 13.0) == "too_far"
    assert frame_gate(True, False, "ok", True, 20.0, 13.0) == "glasses"
    assert frame_gate(True, False, "missing", True, 10.0, 13.0) == "blackbody_missing"
    assert frame_gate(True, True, "moved", True, 10.0, 13.0) == "ffc"
    assert frame_gate(False, True, "ok", False, 20.0, 13.0) == "ffc"
    assert frame_gate(False, False, "ok", True, 10.0, 13.0) == "outside_thermal_view"
    assert frame_gate(True, False, "ok", False, 20.0, 13.0, 5.0, 4.0) == "motion_blur"
    assert frame_gate(True, False, "ok", False, 20.0, 13.0, 3.0, 4.0) == ""
    assert frame_gate(True, False, "ok", False, 10.0, 13.0, 5.0, 4.0) == "too_far"


def test_bad_scenario_files_give_one_line_errors(tmp_path, capsys):
    bad_key = _write(tmp_path, TINY.format(sensor="netd = 5"), "a.toml")
    with pytest.raises(ScenarioError, match=r"a\.toml: sensor\.netd"):
        load_scenario(bad_key)
    bad_toml = _write(tmp_path, "name = ", "b.toml")
    with pytest.raises(ScenarioError, match=r"b\.toml: invalid TOML"):
        load_scenario(bad_toml)
    bad_mask = _write(tmp_path, TINY.format(sensor="") + 'mask = "scarf"\n', "c.toml")
    with pytest.raises(ScenarioError, match=r"c\.toml: person\.0.*scarf"):
        load_scenario(bad_mask)
    moved = _write(tmp_path, TINY.format(sensor="") + '[[event]]\nkind = "blackbody_moved"\nt0_s = 1.0\n', "d.toml")
    with pytest.raises(ScenarioError, match=r"d\.toml: event\.0.*to_m"):
        load_scenario(moved)
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.toml")
    (tmp_path / "e.toml").write_bytes(b"name = \"\xff\xfe\"\n")  # binary junk, e.g. a mis-saved file
    with pytest.raises(ScenarioError, match=r"e\.toml: not UTF-8"):
        load_scenario(tmp_path / "e.toml")
    from edge.cli import main

    assert main(["simulate", str(bad_key), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "a.toml: sensor.netd" in err and len(err.splitlines()) == 1


def test_every_bundled_scenario_is_valid_and_listed(capsys):
    files = sorted((REPO / "sample_streams").glob("*/scenario.toml"))
    names = {f.parent.name for f in files}
    assert {"walkthrough", "normal", "febrile", "masked_queue", "glasses", "two_faces", "drift",
            "blackbody_occluded", "ffc", "thermal_dropout", "too_far"} <= names
    for f in files:
        sc: Scenario = load_scenario(f)
        assert sc.name == f.parent.name
        # every station a scenario uses has its calibration file; only deliberate variants differ
        assert (REPO / "calibration" / f"{sc.station_id}.toml").is_file()
        assert sc.station_id == "sample-gate-1" or sc.station.thermal_preset != "lepton35"
        assert sc.duration_s <= 12.0  # keep set-up rendering quick
    from edge.cli import main

    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    for n in names:
        assert n in out


def test_truth_json_matches_the_calibration_file():
    """The shipped calibration's registration numbers are the simulator's true mapping."""
    from edge.thermal.calibration import load_calibration

    cal = load_calibration(REPO / "calibration" / "sample-gate-1.toml")
    nums = make_station().calibration_numbers()
    np.testing.assert_allclose(cal.registration.homography, nums["homography"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cal.registration.parallax_px_m, nums["parallax_px_m"], rtol=1e-6)
    assert cal.registration.rgb_focal_px == pytest.approx(nums["rgb_focal_px"])
    assert cal.registration.reference_distance_m == nums["reference_distance_m"]


def test_render_all_stamps(tmp_path, astronaut_bgr, monkeypatch):
    from edge.sim import render_all

    root = tmp_path / "streams"
    (root / "tiny").mkdir(parents=True)
    sc = root / "tiny" / "scenario.toml"
    sc.write_text(TINY.format(sensor="").replace("duration_s = 1.2", "duration_s = 0.5"))
    assert not render_all.is_fresh(sc)
    assert render_all.main(["--root", str(root)]) == 0
    assert render_all.is_fresh(sc)
    stamp = (root / "tiny" / ".rendered").read_text()
    sc.write_text(sc.read_text().replace("core_c = 38.2", "core_c = 36.5"))
    assert not render_all.is_fresh(sc)
    assert render_all.main(["--root", str(root)]) == 0
    assert (root / "tiny" / ".rendered").read_text() != stamp
    assert json.loads((root / "tiny" / "truth.json").read_text())["persons"][0]["core_c"] == 36.5


@pytest.mark.slow
def test_glasses_hide_the_canthi_and_the_mask_shows_its_own_temperature(tmp_path, astronaut_bgr):
    text = TINY.format(sensor="netd_mk = 0.0\nfpn_c = 0.0\ncolumn_fpn_c = 0.0\ndead_pixels = 0")
    text = text.replace("core_c = 38.2", 'core_c = 38.2\nglasses = true\nmask = "surgical"\nmask_temp_c = 31.0')
    truth = render_scenario(_write(tmp_path, text), tmp_path / "out", astronaut_bgr)
    frames = _read_all(tmp_path / "out", "thermal")
    p = truth["persons"][0]
    assert truth["frames"]["thermal"][-1]["faces"][0]["gate"] == "glasses"
    assert p["expected"] == {**p["expected"], "status": "indeterminate", "reason": "glasses"}
    f, t = frames[-1], truth["frames"]["thermal"][-1]["faces"][0]
    temp_c = f.image.astype(np.float64) * 0.01 - 273.15
    for x, y in t["canthi_xy"]:  # behind LWIR-opaque lenses: far below the canthus
        assert temp_c[int(round(y)), int(round(x))] < p["canthus_c"] - 3.0
    for x, y in t["landmarks_xy"][3:]:  # mouth corners, under the mask
        assert abs(temp_c[int(round(y)), int(round(x))] - 31.0) < 0.3
    # the RGB frame shows the drawn mask over the mouth (blue surgical mask, not skin)
    rgb = _read_all(tmp_path / "out", "rgb")[-1].image.astype(int)
    x, y = np.asarray(truth["frames"]["rgb"][-1]["faces"][0]["landmarks_xy"][3]).round().astype(int)
    b, g, r = rgb[y, x]
    assert b > r + 40, f"mouth corner colour {b, g, r} is not the blue mask"


@pytest.mark.parametrize("preset, size", [("boson320", (240, 320)), ("boson640", (480, 640))])
@pytest.mark.slow
def test_higher_resolution_thermal_presets(tmp_path, astronaut_bgr, preset, size):
    text = TINY.format(sensor="netd_mk = 0.0\nfpn_c = 0.0\ncolumn_fpn_c = 0.0\ndead_pixels = 0")
    text = text.replace("duration_s = 1.2", f'duration_s = 0.4\n[station]\nthermal_preset = "{preset}"')
    truth = render_scenario(_write(tmp_path, text), tmp_path / "out", astronaut_bgr)
    f = _read_all(tmp_path / "out", "thermal")[-1]
    assert f.image.shape == size
    face = truth["frames"]["thermal"][-1]["faces"][0]
    temp_c = f.image.astype(np.float64) * 0.01 - 273.15
    yy, xx = np.unravel_index(np.argmax(temp_c), temp_c.shape)
    assert np.min(np.hypot(*(np.asarray(face["canthi_xy"]) - [xx, yy]).T)) < 0.1 * face["iod_px"]
    assert temp_c.max() == pytest.approx(truth["persons"][0]["canthus_c"], abs=0.05)
    geo = make_station(preset)
    assert truth["registration"]["thermal_focal_px"] == pytest.approx(geo.thermal.focal_px, abs=1e-5)


def test_concurrent_renders_of_one_folder_do_not_collide(tmp_path, astronaut_bgr):
    """Two `make test` runs in one checkout render the same stale folder: one waits for the other."""
    from concurrent.futures import ThreadPoolExecutor

    from edge.sim import render_all

    (tmp_path / "tiny").mkdir()
    sc = tmp_path / "tiny" / "scenario.toml"
    sc.write_text(TINY.format(sensor="").replace("duration_s = 1.2", "duration_s = 0.4"))
    with ThreadPoolExecutor(2) as pool:
        times = list(pool.map(lambda _: render_all.render_folder(sc, astronaut_bgr, force=False), range(2)))
    assert sorted(t > 0 for t in times) == [False, True]  # exactly one rendered, the other found it fresh
    assert render_all.is_fresh(sc)
    assert sorted(p.name for p in sc.parent.iterdir()) == [
        ".rendered", "rgb.avi", "scenario.toml", "stream.json", "thermal.mkv", "timestamps.csv", "truth.json"]
    assert len(_read_all(sc.parent, "thermal")) == len(json.loads((sc.parent / "truth.json").read_text())["frames"]["thermal"])


@pytest.mark.slow
def test_bolometer_time_constant_smears_a_fast_subject(tmp_path, astronaut_bgr):
    peaks = {}
    for tau in (0.0, 30.0):
        text = TINY.format(sensor=f"netd_mk = 0.0\nfpn_c = 0.0\ncolumn_fpn_c = 0.0\ndead_pixels = 0\n"
                                  f"time_constant_ms = {tau}")
        # crossing sideways at 2 m/s, 0.5 m away: ~7 thermal px per time constant of 12 ms
        text = text.replace("waypoints = [[0.0, 0.02, 0.0, 0.7], [1.2, 0.0, 0.0, 0.5]]",
                            "waypoints = [[0.0, -0.3, 0.0, 0.5], [0.4, 0.5, 0.0, 0.5]]").replace(
            "duration_s = 1.2", "duration_s = 0.4")
        truth = render_scenario(_write(tmp_path, text, f"t{tau}.toml"), tmp_path / f"o{tau}", astronaut_bgr)
        f = _read_all(tmp_path / f"o{tau}", "thermal")[2]
        peaks[tau] = f.image.max() * 0.01 - 273.15
        canthus = truth["persons"][0]["canthus_c"]
    assert peaks[0.0] == pytest.approx(canthus, abs=0.05)
    assert peaks[30.0] < canthus - 0.2  # the smeared canthus reads low


def test_simulate_refuses_a_non_empty_out_unless_force(tmp_path, capsys):
    """Issue 14 item 9: `simulate --out DIR` never replaces what is in DIR without --force."""
    from edge.cli import main

    sc = _write(tmp_path, TINY.format(sensor=""))
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("site notes")
    assert main(["simulate", str(sc), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "o: not empty (notes.txt)" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(["simulate", str(sc), "--out", str(out)]) == 2  # still refused, still untouched
    assert main(["simulate", str(sc), "--out", str(out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "site notes"  # --force replaces the recording, nothing else
    assert len(_read_all(out, "thermal")) > 0
    capsys.readouterr()


QUEUE = """
name = "queue"
description = "one person walks past behind another, 0.6 s"
seed = 3
duration_s = 0.6
[sensor]
netd_mk = 0.0
[[person]]
id = 1
core_c = 36.8
waypoints = [[0.0, 0.0, 0.0, 0.7], [0.6, 0.0, 0.0, 0.7]]
[[person]]
id = 2
core_c = 36.8
waypoints = [[0.0, -0.9, 0.0, 2.5], [0.6, 0.9, 0.0, 2.5]]
"""


@pytest.mark.slow
def test_truth_says_how_much_of_a_face_a_nearer_person_hides(tmp_path, astronaut_bgr):
    """The far person walks behind the near one: their face's visible_frac drops to ~0 while
    hidden and is 1 in the open; the near face is never hidden. Evaluation counts a face only
    when at least half of it can be seen."""
    truth = render_scenario(_write(tmp_path, QUEUE), tmp_path / "out", astronaut_bgr)
    near = [f for fr in truth["frames"]["rgb"] for f in fr["faces"] if f["id"] == 1]
    far = [f for fr in truth["frames"]["rgb"] for f in fr["faces"] if f["id"] == 2]
    assert near and all(f["visible_frac"] == 1.0 for f in near)
    fracs = [f["visible_frac"] for f in far]
    assert max(fracs) == 1.0 and min(fracs) < 0.05, fracs
    # hidden exactly while the far face box lies inside the near person's head box
    for f in far:
        inside = f["box_xyxy"][0] > near[0]["box_xyxy"][0] and f["box_xyxy"][2] < near[0]["box_xyxy"][2]
        if inside:
            assert f["visible_frac"] < 0.1


def test_hidden_fraction_takes_the_largest_alpha_over_the_box():
    from edge.sim.rgb import hidden_fraction

    a = np.ones((10, 10), np.float32)
    assert hidden_fraction([0, 0, 10, 10], []) == 0.0
    assert hidden_fraction([0, 0, 10, 10], [(0, 0, a)]) == 1.0
    assert hidden_fraction([0, 0, 10, 10], [(5, 0, a)]) == 0.5  # covers the right half
    assert hidden_fraction([0, 0, 10, 10], [(5, 0, a), (5, 0, a * 0.5)]) == 0.5  # overlap counts once
    assert hidden_fraction([0, 0, 10, 10], [(20, 20, a)]) == 0.0
