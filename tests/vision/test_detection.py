"""CenterFace detector: real ONNX inference on the real astronaut portrait."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from faces import FACE_XYXY, draw_surgical_mask
from pydantic import ValidationError

from edge.vision.boxes import iou_matrix
from edge.vision.detection import (
    CenterFaceDetector,
    DetectorConfig,
    FaceDetector,
    load_session,
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(iou_matrix(a, b)[0, 0])


def assert_plausible_landmarks(lm: np.ndarray, box: np.ndarray) -> None:
    """lm (5,2) in CenterFace order: eye image-left, eye image-right, nose, mouth left, mouth right."""
    eye_l, eye_r, nose, mouth_l, mouth_r = lm
    assert (lm[:, 0] > box[0]).all() and (lm[:, 0] < box[2]).all(), lm
    assert (lm[:, 1] > box[1]).all() and (lm[:, 1] < box[3]).all(), lm
    assert eye_l[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
    eyes_y = (eye_l[1] + eye_r[1]) / 2
    mouth_y = (mouth_l[1] + mouth_r[1]) / 2
    assert eyes_y < nose[1] < mouth_y
    assert eye_l[0] < nose[0] < eye_r[0]


def test_detector_satisfies_interface(detector):
    assert isinstance(detector, FaceDetector)


def test_one_face_on_the_astronaut(detector, astronaut_bgr):
    dets = detector.detect(astronaut_bgr)
    assert len(dets) == 1
    assert dets.score[0] > 0.7
    assert iou(dets.box_xyxy[0], FACE_XYXY) > 0.75, dets.box_xyxy
    assert_plausible_landmarks(dets.landmarks_xy[0], dets.box_xyxy[0])
    # eyes near the real pupils (hand-measured at about (207,102) and (248,105))
    np.testing.assert_allclose(dets.landmarks_xy[0, 0], [207, 102], atol=8)
    np.testing.assert_allclose(dets.landmarks_xy[0, 1], [248, 105], atol=8)
    assert set(detector.last_timing_ms) == {"preprocess", "inference", "postprocess", "total"}
    assert detector.last_timing_ms["inference"] > 0


def test_masked_face_still_detected(detector, astronaut_bgr):
    ref = detector.detect(astronaut_bgr)
    masked = draw_surgical_mask(astronaut_bgr, ref.landmarks_xy[0], ref.box_xyxy[0])
    # the mask really covers the mouth and nose tip
    assert not np.array_equal(masked[150, 225], astronaut_bgr[150, 225])
    dets = detector.detect(masked)
    assert len(dets) == 1
    assert iou(dets.box_xyxy[0], FACE_XYXY) > 0.6, dets.box_xyxy
    # eyes are still visible: they stay put within a few pixels
    np.testing.assert_allclose(dets.landmarks_xy[0, :2], ref.landmarks_xy[0, :2], atol=10)


@pytest.mark.parametrize("face_px", [60, 40])
def test_small_face_in_vga_frame(detector, astronaut_bgr, face_px):
    """Portrait shrunk so the face is ``face_px`` tall, pasted into a grey 640x480 frame."""
    s = face_px / (FACE_XYXY[3] - FACE_XYXY[1])
    small = cv2.resize(astronaut_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 110, np.uint8)
    ox, oy = 300, 200
    frame[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
    dets = detector.detect(frame)
    expected = FACE_XYXY * s + np.array([ox, oy, ox, oy], np.float32)
    assert len(dets) >= 1
    best = max(range(len(dets)), key=lambda i: iou(dets.box_xyxy[i], expected))
    assert iou(dets.box_xyxy[best], expected) > 0.5, (dets.box_xyxy, expected)


@pytest.mark.parametrize("frame_wh, offset", [
    ((640, 480), (400, 210)),   # VGA: exact 2x shrink into 320x256
    ((1000, 700), (700, 420)),  # 3x whole-factor shrink, then a non-integer rest
    ((330, 250), (100, 5)),     # smaller than the input: enlarged
])
def test_offset_into_frame_gives_frame_coordinates(detector, astronaut_bgr, frame_wh, offset):
    w, h = frame_wh
    ox, oy = offset
    frame = np.full((h, w, 3), 90, np.uint8)
    frame[oy:oy + 240, ox:ox + 220] = astronaut_bgr[20:260, 120:340]  # 240x220 around the head
    dets = detector.detect(frame)
    assert len(dets) == 1
    shift = np.array([ox - 120, oy - 20], np.float32)
    expected = FACE_XYXY + np.tile(shift, 2)
    assert iou(dets.box_xyxy[0], expected) > 0.7, (dets.box_xyxy, expected)
    ref = detector.detect(astronaut_bgr)
    # landmarks land on the same facial points, to within ~2 % of the frame's input-px scale
    tol = max(6.0, 2.5 * max(w / 320, h / 256))
    np.testing.assert_allclose(dets.landmarks_xy[0], ref.landmarks_xy[0] + shift, atol=tol)


def test_frame_size_changes_are_handled(detector, astronaut_bgr):
    """Buffers are reused per frame size; switching sizes must not leave stale pixels behind."""
    wide = np.zeros((256, 1024, 3), np.uint8)
    wide[:, 256:768] = cv2.resize(astronaut_bgr, (512, 256))
    detector.detect(wide)
    dets = detector.detect(astronaut_bgr)
    assert len(dets) == 1 and iou(dets.box_xyxy[0], FACE_XYXY) > 0.75


def test_blank_image_gives_empty(detector):
    for value in (0, 128, 255):
        dets = detector.detect(np.full((480, 640, 3), value, np.uint8))
        assert len(dets) == 0
        assert dets.box_xyxy.shape == (0, 4) and dets.landmarks_xy.shape == (0, 5, 2)


@pytest.mark.parametrize("bad, word", [
    (np.zeros((480, 640), np.uint8), "shape"),
    (np.zeros((480, 640, 4), np.uint8), "shape"),
    (np.zeros((480, 640, 3), np.float32), "dtype"),
    (np.zeros((0, 640, 3), np.uint8), "shape"),
    ([[1, 2, 3]], "list"),
])
def test_bad_input_names_the_value(detector, bad, word):
    with pytest.raises(ValueError, match=word):
        detector.detect(bad)


def test_config_bounds():
    with pytest.raises(ValidationError, match="multiple"):
        DetectorConfig(input_width_px=330)
    with pytest.raises(ValidationError):
        DetectorConfig(score_threshold=1.5)
    with pytest.raises(ValidationError):
        DetectorConfig(bogus=1)
    for name, f in DetectorConfig.model_fields.items():
        assert f.description, name


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_session(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(e.value.filename)


def test_larger_input_size_agrees(centerface_path, astronaut_bgr):
    det = CenterFaceDetector(load_session(centerface_path), DetectorConfig(input_width_px=640, input_height_px=480))
    dets = det.detect(astronaut_bgr)
    assert len(dets) == 1 and iou(dets.box_xyxy[0], FACE_XYXY) > 0.75
