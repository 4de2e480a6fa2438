"""RGB -> thermal mapping: homography, parallax from face size, and fitting from point pairs."""
from __future__ import annotations

import numpy as np
import pytest

from edge.thermal.registration import (
    Registration,
    box_corners,
    corners_to_box,
    fit_registration,
)

H = np.array([[0.24, 0.01, 3.0], [-0.005, 0.245, -2.0], [1e-5, 2e-5, 1.0]])


def _apply(h, xy):
    p = np.c_[xy, np.ones(len(xy))] @ h.T
    return p[:, :2] / p[:, 2:]


def test_map_points_shapes_and_values():
    reg = Registration(H, reference_distance_m=1.5, parallax_px_m=[6.0, 0.5], rgb_focal_px=600.0)
    pts = np.array([[100.0, 200.0], [320.0, 240.0]])
    out = reg.map_points(pts)
    assert out.shape == (2, 2) and out.dtype == np.float32
    assert np.allclose(out, _apply(H, pts), atol=1e-4)
    lm = np.stack([pts, pts + 10], axis=1)  # (N=2, K=2, 2)
    assert reg.map_points(lm).shape == (2, 2, 2)
    assert reg.map_points(np.zeros((0, 5, 2))).shape == (0, 5, 2)


def test_parallax_zero_at_reference_distance_and_grows_nearer():
    reg = Registration(H, reference_distance_m=1.5, parallax_px_m=[6.0, 0.0], rgb_focal_px=600.0, iod_m=0.063)
    iod_ref = 600.0 * 0.063 / 1.5  # face at exactly 1.5 m
    iod_near = 600.0 * 0.063 / 0.5  # face at 0.5 m
    pts = np.array([[300.0, 200.0], [300.0, 200.0]])
    out = reg.map_points(pts, np.array([iod_ref, iod_near]))
    base = _apply(H, pts[:1])[0]
    assert np.allclose(out[0], base, atol=1e-4)
    # shift = k * (1/0.5 - 1/1.5) = 6 * 1.3333 = 8 px in x
    assert out[1, 0] - base[0] == pytest.approx(8.0, abs=1e-3)
    assert reg.distance_m(np.array([iod_near]))[0] == pytest.approx(0.5)
    # landmarks of one face share its shift
    lm = np.repeat(pts[:1, None, :], 5, axis=1)
    assert np.allclose(reg.map_points(lm, np.array([iod_near]))[0, :, 0] - base[0], 8.0, atol=1e-3)


def test_a_box_maps_to_the_bounds_of_its_mapped_corners():
    reg = Registration.identity_scaled((640, 480), (160, 120))
    corners = box_corners(np.array([[40, 80, 200, 280]]))
    assert corners.tolist() == [[[40, 80], [200, 80], [200, 280], [40, 280]]]
    box = corners_to_box(reg.map_points(corners, None))
    assert np.allclose(box, [[10, 20, 50, 70]])


def test_bad_inputs():
    reg = Registration(H)
    with pytest.raises(ValueError, match="expected .N,2. or .N,K,2."):
        reg.map_points(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="one per face"):
        reg.map_points(np.zeros((2, 2)), np.array([10.0]))
    with pytest.raises(ValueError, match="invertible"):
        Registration(np.zeros((3, 3)))


def test_fit_recovers_homography_and_parallax():
    rng = np.random.default_rng(0)
    k_true = np.array([7.0, -1.0])
    src, dst, dist = [], [], []
    for d in (0.7, 1.0, 1.5, 2.2, 3.0):
        xy = rng.uniform([50, 50], [590, 430], size=(30, 2))
        t = _apply(H, xy) + k_true * (1 / d - 1 / 1.5) + rng.normal(0, 0.1, (30, 2))
        src.append(xy), dst.append(t), dist.append(np.full(30, d))
    src, dst, dist = map(np.concatenate, (src, dst, dist))
    dst[:5] += 15  # a few wrong matches: RANSAC must drop them
    fit = fit_registration(src, dst, dist, reference_distance_m=1.5)
    assert fit.parallax_fitted and fit.n_inliers >= len(src) - 5 - 3
    assert np.allclose(fit.registration.parallax_px_m, k_true, atol=0.3)
    assert fit.rms_px < 0.25
    assert fit.rms_no_parallax_px > 3 * fit.rms_px
    test = np.array([[320.0, 240.0]])
    assert np.allclose(fit.registration.map_points(test), _apply(H, test), atol=0.3)


def test_fit_single_distance_keeps_given_parallax():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 600, size=(20, 2))
    fit = fit_registration(xy, _apply(H, xy), None, parallax_px_m=[5.0, 0.0])
    assert not fit.parallax_fitted
    assert np.allclose(fit.registration.parallax_px_m, [5.0, 0.0])
    assert fit.rms_px < 1e-3


def test_fit_needs_four_points():
    with pytest.raises(ValueError, match=">= 4"):
        fit_registration(np.zeros((3, 2)), np.zeros((3, 2)))


@pytest.mark.slow
def test_calibrate_registration_command_end_to_end(tmp_path, capsys):
    """Render a heated-checkerboard recording through both simulated cameras, run the command,
    and check the written mapping against the simulator's exact geometry."""
    from edge.cli import main
    from edge.eval.labbattery import render_checkerboard_recording
    from edge.sim.cameras import apply_homography, make_station
    from edge.thermal.calibration import load_calibration

    geo = make_station()
    stream = render_checkerboard_recording(tmp_path / "calib", geo)
    cal_file = tmp_path / "station.toml"
    cal_file.write_text('# my notes\nschema_version = 1\nstation_id = "sample-gate-1"\ndate = "2026-11-26"\n'
                        f'[registration]\nrgb_focal_px = {geo.rgb.focal_px}\n')
    rc = main(["calibrate", "registration", str(stream), "--calibration", str(cal_file), "--square-m", "0.1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "target found in both images of 4 of 4" in out and "parallax fitted" in out
    cal = load_calibration(cal_file)
    assert cal_file.read_text().startswith("# my notes")
    assert cal.file.registration.rms_px < 0.2
    grid = np.stack(np.meshgrid(np.linspace(40, 600, 8), np.linspace(40, 440, 6)), -1).reshape(-1, 2)
    for d in (0.7, 1.5, 3.0):
        iod_px = np.full(len(grid), geo.rgb.focal_px * 0.063 / d)
        truth = apply_homography(geo.homography_at(d), grid)
        assert np.abs(cal.registration.map_points(grid, iod_px) - truth).max() < 0.4


def test_calibrate_registration_from_point_pairs(tmp_path, capsys):
    from edge.cli import main
    from edge.thermal.calibration import load_calibration

    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 640, size=(12, 2))
    t = _apply(H, xy)
    csv = tmp_path / "pairs.csv"
    csv.write_text("rgb_x,rgb_y,thermal_x,thermal_y\n" + "".join(f"{a},{b},{c},{d}\n" for (a, b), (c, d) in zip(xy, t)))
    cal_file = tmp_path / "s.toml"
    cal_file.write_text('schema_version = 1\nstation_id = "s"\ndate = "2026-11-26"\n')
    assert main(["calibrate", "registration", "--points", str(csv), "--calibration", str(cal_file)]) == 0
    assert "parallax kept" in capsys.readouterr().out
    got = load_calibration(cal_file).registration.map_points(np.array([[320.0, 240.0]]))
    assert np.allclose(got, _apply(H, np.array([[320.0, 240.0]])), atol=1e-3)
    csv.write_text("rgb_x,rgb_y\n1,2\n")
    assert main(["calibrate", "registration", "--points", str(csv), "--calibration", str(cal_file)]) == 2
    assert "missing column(s) thermal_x, thermal_y" in capsys.readouterr().err


@pytest.mark.parametrize("bright", [False, True])
def test_find_target_circle_grid_either_polarity(bright):
    import cv2

    from edge.thermal.registration import find_target

    img = np.full((240, 320), 220, np.uint8)
    centres = np.array([[60 + 40 * c, 50 + 40 * r] for r in range(3) for c in range(5)], float)
    for x, y in centres:
        cv2.circle(img, (int(x), int(y)), 10, 30, -1, lineType=cv2.LINE_AA)
    if bright:  # a heated grid seen by a thermal camera: warm discs on a cool board
        img = 255 - img
    pts = find_target(img, "circles", (5, 3))
    assert pts is not None and pts.shape == (15, 2)
    # same set of centres (the detector may report the grid in either order)
    d = np.linalg.norm(pts[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
    assert d.max() < 0.5


def test_find_target_rejects_unknown_kind():
    from edge.thermal.registration import find_target

    with pytest.raises(ValueError, match="allowed"):
        find_target(np.zeros((10, 10), np.uint8), "stars")
