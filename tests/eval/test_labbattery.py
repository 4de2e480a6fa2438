"""Lab battery on simulated frames: each part checks what it claims, with numbers that can fail."""
from __future__ import annotations

import pytest

from edge.eval.labbattery import (
    accuracy_sweep,
    distance_effect,
    drift,
    lab_battery_markdown,
    registration_error,
    stability,
    uniformity,
)


def test_accuracy_sweep_corrects_camera_offset():
    res = accuracy_sweep(setpoints_c=[34.0, 36.5, 39.0], frames=12)
    assert res["pass"] and res["max_abs_mean_error_c"] < 0.1
    for row in res["rows"]:
        assert row["uncorrected_mean_error_c"] == pytest.approx(0.7, abs=0.1)  # the offset we simulated
        assert row["frames_ok"] >= 9  # the monitor needs recover_frames before the first ok


def test_drift_one_degree_per_hour_within_0_1():
    res = drift(hours=1.0, rate_c_per_h=1.0, step_s=20.0)
    assert res["uncorrected_max_abs_error_c"] > 0.9
    assert res["corrected_max_abs_error_c"] < 0.1


def test_stability_through_ffc_steps():
    res = stability(hours=0.5, step_s=20.0)
    assert res["ffc_events"] == 1 and res["states"].get("ffc", 0) > 0
    assert res["corrected_max_abs_error_c"] < 0.1 < res["uncorrected_max_abs_error_c"]


def test_uniformity_reflects_fixed_pattern_noise():
    res = uniformity(frames=4)
    # SensorSpec default FPN 0.08 per pixel + 0.04 per column: 16x16 means spread a few hundredths
    assert 0.005 < res["spread_c"] < 0.1 and 0.05 < res["pixel_sd_c"] < 0.15


def test_distance_effect_grows_with_distance():
    rows = distance_effect(distances_m=(0.5, 1.0, 2.0), frames=6)["rows"]
    errs = [r["max_pixel_error_c"] for r in rows]
    assert errs[0] > errs[1] > errs[2]  # more blur and fewer pixels -> reads colder
    assert errs[0] > -0.3 and errs[2] < -0.4


@pytest.mark.slow
def test_registration_parallax_model_beats_single_homography():
    res = registration_error(distances_m=(0.5, 1.5, 3.0), n_subjects=60)
    fit = res["fit"]
    assert fit["views"] == 4 and fit["rms_px"] < 0.2 < fit["rms_no_parallax_px"]
    for got, true in zip(fit["parallax_px_m"], fit["true_parallax_px_m"]):
        assert got == pytest.approx(true, abs=0.3)
    near, ref, far = res["rows"]
    assert near["homography_only_mean_px"] > 5 and far["homography_only_mean_px"] > 1.5
    for row in res["rows"]:
        assert row["parallax_mean_px"] < 1.0
    assert near["parallax_mean_px"] < near["homography_only_mean_px"] / 5
    md = lab_battery_markdown({"accuracy": accuracy_sweep([35.0], frames=6), "stability": stability(0.3, 60.0),
                               "drift": drift(0.2, 1.0, 60.0), "uniformity": uniformity(frames=2), "distance": distance_effect((1.0,), 2),
                               "registration": res})
    assert "| distance m |" in md and "with parallax" in md and "Accuracy" in md
