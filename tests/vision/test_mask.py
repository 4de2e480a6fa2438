"""Mask status from the RGB crop: real detector + classifier on the real astronaut portrait."""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
from faces import draw_surgical_mask
from pydantic import ValidationError

from edge.paths import REPO_ROOT as ROOT
from edge.types import Detections
from edge.vision import mask as mask_mod
from edge.vision.mask import MaskConfig, classify_masks


@pytest.fixture(scope="module")
def astro(detector, astronaut_bgr):
    return astronaut_bgr, detector.detect(astronaut_bgr)


def scaled(bgr: np.ndarray, s: float) -> np.ndarray:
    return cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("s", [1.0, 0.5, 0.3])
def test_bare_face_is_no(detector, astro, s):
    img = scaled(astro[0], s)
    out = classify_masks(img, detector.detect(img))
    assert out.data["mask"].tolist() == ["no"]
    assert out.data["mask_conf"].dtype == np.float32 and out.data["mask_conf"][0] >= MaskConfig().min_confidence


@pytest.mark.parametrize("colour", [(235, 200, 150), (250, 250, 250), (40, 40, 40), (170, 120, 210)])
@pytest.mark.parametrize("s", [1.0, 0.4])
def test_drawn_mask_is_yes(detector, astro, colour, s):
    bgr, ref = astro
    img = scaled(draw_surgical_mask(bgr, ref.landmarks_xy[0], ref.box_xyxy[0], colour), s)
    out = classify_masks(img, detector.detect(img))
    assert out.data["mask"].tolist() == ["yes"], (colour, s, out.data)
    assert out.data["mask_conf"][0] >= MaskConfig().min_confidence


def test_keeps_detections_and_existing_data(astro):
    bgr, dets = astro
    dets = dets.with_data(track_id=np.array([7]))
    out = classify_masks(bgr, dets)
    assert out.data["track_id"].tolist() == [7]
    np.testing.assert_array_equal(out.box_xyxy, dets.box_xyxy)
    assert out.data["mask"].dtype == object


def test_too_small_face_is_unknown(detector, astro):
    img = scaled(astro[0], 0.1)  # face box about 11 px tall
    dets = detector.detect(img)
    assert len(dets) == 1 and dets.box_xyxy[0, 3] - dets.box_xyxy[0, 1] < MaskConfig().min_face_px
    out = classify_masks(img, dets)
    assert out.data["mask"].tolist() == ["unknown"] and out.data["mask_conf"][0] == 0


def test_face_mostly_outside_frame_is_unknown(astro):
    bgr, dets = astro
    # keep only the top of the face: mouth and chin are outside the frame
    cut = np.ascontiguousarray(bgr[:110])
    out = classify_masks(cut, dets)
    assert out.data["mask"].tolist() == ["unknown"]
    # the same face fully inside is classified
    assert classify_masks(bgr, dets).data["mask"].tolist() == ["no"]


def test_flat_crop_and_degenerate_landmarks_are_unknown(astro):
    bgr, dets = astro
    flat = np.full_like(bgr, 128)
    assert classify_masks(flat, dets).data["mask"].tolist() == ["unknown"]
    lm = np.repeat(dets.landmarks_xy[:, :1], 5, axis=1)  # all five landmarks on one point
    nan = dets.landmarks_xy.copy()
    nan[0, 2] = np.nan
    for bad_lm in (lm, nan):
        d = Detections(dets.box_xyxy, dets.score, bad_lm)
        assert classify_masks(bgr, d).data["mask"].tolist() == ["unknown"]


def test_min_confidence_turns_doubt_into_unknown(astro):
    bgr, dets = astro
    sure = classify_masks(bgr, dets)
    assert 0.6 <= sure.data["mask_conf"][0] < 1.0
    out = classify_masks(bgr, dets, MaskConfig(min_confidence=1.0))  # nothing is that certain
    assert out.data["mask"].tolist() == ["unknown"]
    assert out.data["mask_conf"][0] == sure.data["mask_conf"][0]  # the confidence is still reported


def test_empty_and_bad_input(astro):
    bgr, _ = astro
    out = classify_masks(bgr, Detections.empty())
    assert len(out) == 0 and out.data["mask"].shape == (0,) and out.data["mask_conf"].shape == (0,)
    with pytest.raises(ValueError, match="bgr"):
        classify_masks(bgr.astype(np.float32), Detections.empty())
    with pytest.raises(ValueError, match="bgr"):
        classify_masks(bgr[..., 0], Detections.empty())


def test_config_bounds_and_descriptions():
    for name, f in MaskConfig.model_fields.items():
        assert f.description, name
    with pytest.raises(ValidationError):
        MaskConfig(min_confidence=0.2)
    with pytest.raises(ValidationError):
        MaskConfig(unknown_key=1)


def test_weights_match_features():
    assert mask_mod._W.shape == (mask_mod.N_FEATURES,)
    assert np.isfinite(mask_mod._W).all() and np.isfinite(mask_mod._B)
    crop = np.random.default_rng(0).integers(0, 255, (mask_mod.ALIGN_PX, mask_mod.ALIGN_PX, 3), np.uint8)
    assert mask_mod.face_features(crop).shape == (mask_mod.N_FEATURES,)


def _train_module():
    spec = importlib.util.spec_from_file_location("mask_train", ROOT / "tools" / "mask" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_training_folds_never_split_a_photo():
    train = _train_module()
    photo = np.repeat(np.arange(40), np.arange(40) % 5 + 1)
    folds = train.folds_by_photo(photo, 5, 1)
    for p in np.unique(photo):
        assert len(np.unique(folds[photo == p])) == 1
    assert set(folds.tolist()) == set(range(5))


def test_training_logistic_regression_learns_a_rule():
    train = _train_module()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - 0.5 * x[:, 2] > 0).astype(float)
    w, b = train.train(x, x, y, l2=0.1)
    acc = ((train.predict(w, b, x) >= 0.5) == (y == 1)).mean()
    assert acc > 0.95
    assert w[0] > 0 and w[2] < 0 and abs(w[1]) < abs(w[0]) / 3


def test_track_cache_classifies_each_person_once_per_refresh(astronaut_bgr, centerface_path, monkeypatch):
    import edge.vision.mask as mask_mod
    from edge.vision.detection import CenterFaceDetector, load_session

    dets = CenterFaceDetector(load_session(centerface_path)).detect(astronaut_bgr)
    assert len(dets) == 1
    calls = []
    real = mask_mod.classify_masks
    monkeypatch.setattr(mask_mod, "classify_masks", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = mask_mod.TrackMaskCache(refresh_frames=3)
    tracked = dets.with_data(track_id=np.array([7]))
    first = cache.apply(astronaut_bgr, tracked, [])
    assert first.data["mask"][0] == real(astronaut_bgr, dets).data["mask"][0] == "no"
    for _ in range(2):
        again = cache.apply(astronaut_bgr, tracked, [])
        assert again.data["mask"][0] == "no"
    assert len(calls) == 1  # frames 2 and 3 reuse it
    cache.apply(astronaut_bgr, tracked, [])
    assert len(calls) == 2  # refreshed on the 4th frame
    # unconfirmed tracks (-1) are never cached; an ended track is forgotten
    cache.apply(astronaut_bgr, dets.with_data(track_id=np.array([-1])), [])
    cache.apply(astronaut_bgr, dets.with_data(track_id=np.array([-1])), [7])
    assert len(calls) == 4
    cache.apply(astronaut_bgr, tracked, [])
    assert len(calls) == 5


def test_track_cache_rejects_bad_refresh():
    from edge.vision.mask import TrackMaskCache

    with pytest.raises(ValueError, match="refresh_frames=0"):
        TrackMaskCache(refresh_frames=0)
