"""Measurement on synthetic thermal frames built here: warm face, hot inner canthi at known spots,
optional warm mask, cold glasses; plus every gate, table-driven."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.thermal.calibration import SkinToCore
from edge.thermal.measurement import (
    FfcSettle,
    MeasureContext,
    MeasurementConfig,
    canthi_rgb,
    head_pose_deg,
    measure_faces,
    sharpness,
)
from edge.types import Detections

CANTHUS_C = 35.6  # peak of the image-left canthus; the other is 0.2 cooler
SKIN_C = 33.5
BACKGROUND_C = 22.0


class ScaleRegistration:
    """Stand-in for edge/thermal/registration.py: a pure scaling homography RGB px -> thermal px."""

    def __init__(self, scale: float, dx: float = 0.0, dy: float = 0.0):
        self.s, self.d = scale, np.array([dx, dy], np.float32)

    def map_points(self, xy: np.ndarray, iod_px: np.ndarray) -> np.ndarray:
        return np.asarray(xy, np.float32) * self.s + self.d


def face_geometry(cx: float, cy: float, iod: float):
    """Landmarks (5,2) and box (4,) of an upright frontal face, same px as (cx, cy, iod)."""
    lm = np.array([[cx - iod / 2, cy], [cx + iod / 2, cy], [cx, cy + 0.65 * iod],
                   [cx - 0.35 * iod, cy + 1.05 * iod], [cx + 0.35 * iod, cy + 1.05 * iod]], np.float32)
    box = np.array([cx - 0.95 * iod, cy - 0.95 * iod, cx + 0.95 * iod, cy + 1.55 * iod], np.float32)
    return lm, box


def render(shape, faces, seed=0, noise_c=0.05):
    """Thermal frame (h,w) float32 degC with the given faces drawn (thermal px).

    Each face: dict(cx, cy, iod, mask_c=None (warm mask below cy+0.3 iod), glasses=False).
    The canthi are 7 mm-radius warm plateaus (the simulator's model, from FLIR_dev's ROI means).
    Returns the frame and the true inner-canthus centres (F,2,2)."""
    h, w = shape
    img = np.full((h, w), BACKGROUND_C, np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = []
    for f in faces:
        cx, cy, iod = f["cx"], f["cy"], f["iod"]
        face = ((xs - cx) / (0.95 * iod)) ** 2 + ((ys - cy - 0.3 * iod) / (1.25 * iod)) ** 2 <= 1
        img[face] = SKIN_C
        cs = np.array([[cx - 0.3 * iod, cy], [cx + 0.3 * iod, cy]], np.float32)  # 0.2 IOD inward
        truth.append(cs)
        for (px, py), peak in zip(cs, (CANTHUS_C, CANTHUS_C - 0.2)):
            # warm plateau of 7 mm radius (0.11 IOD), anti-aliased edge
            a = np.clip(0.11 * iod + 0.5 - np.hypot(xs - px, ys - py), 0, 1)
            img = np.maximum(img, SKIN_C + (peak - SKIN_C) * a)
        if f.get("mask_c") is not None:
            img[face & (ys > cy + 0.3 * iod)] = f["mask_c"]
        if f.get("glasses"):
            for ex in (cx - iod / 2, cx + iod / 2):
                img[((xs - ex) ** 2 + (ys - cy) ** 2) <= (0.33 * iod) ** 2] = 27.0
    img = cv2.GaussianBlur(img, (0, 0), 0.6)  # optics
    img += np.random.default_rng(seed).normal(0, noise_c, img.shape).astype(np.float32)
    return img, np.array(truth)


def dets_for(faces, scale, mask=None, shift_iod=(0.0, 0.0), nose_shift_iod=0.0, roll_deg=0.0):
    """Detections in RGB px for faces given in thermal px (RGB = thermal / scale)."""
    lms, boxes = [], []
    for f in faces:
        cx, cy, iod = f["cx"] / scale, f["cy"] / scale, f["iod"] / scale
        lm, box = face_geometry(cx + shift_iod[0] * iod, cy + shift_iod[1] * iod, iod)
        lm[2, 0] += nose_shift_iod * iod
        if roll_deg:
            a = np.radians(roll_deg)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
            lm = (lm - [cx, cy]) @ rot.T + [cx, cy]
        lms.append(lm)
        boxes.append(box)
    d = Detections(np.array(boxes), np.full(len(faces), 0.9), np.array(lms))
    if mask is not None:
        d = d.with_data(mask=np.array(mask, dtype=object))
    return d


SCALE = 0.25  # RGB 4x the thermal resolution
REG = ScaleRegistration(SCALE)
CFG = MeasurementConfig()
FACE = dict(cx=80.0, cy=50.0, iod=40.0)


def test_warm_face_measures_hot_canthus_not_face_max():
    img, truth = render((120, 160), [FACE])
    out = measure_faces(dets_for([FACE], SCALE), img, REG, MeasureContext(), CFG)
    assert out.data["gate"][0] == ""
    assert abs(out.data["skin_temp_c"][0] - CANTHUS_C) < 0.15
    default = SkinToCore()  # the one default skin->core model
    assert out.data["core_temp_c"][0] == pytest.approx(out.data["skin_temp_c"][0] + default.offset_c, abs=1e-4)
    u, sd = out.data["uncertainty_c"][0], out.data["skin_sd_c"][0]
    assert default.residual_sd_c <= u < default.residual_sd_c + 0.1
    assert 0 < sd < 0.1 and u == pytest.approx(np.hypot(sd, default.residual_sd_c), abs=1e-5)
    # refined canthus positions land on the true hot spots
    err = np.hypot(*(out.data["canthus_xy_thermal"][0] - truth[0]).T)
    assert err.max() < 0.05 * FACE["iod"]  # within the 0.11 IOD-radius warm plateau
    assert 0 < out.data["quality"][0] <= 1
    assert out.data["box_xyxy_thermal"].shape == (1, 4) and out.data["landmarks_xy_thermal"].shape == (1, 5, 2)


@pytest.mark.parametrize("shift", [(0.0, -0.25), (0.0, 0.25), (0.2, 0.0), (-0.2, 0.15)])
def test_landmark_shift_up_to_a_third_iod_is_tolerated(shift):
    img, _ = render((120, 160), [FACE], seed=1)
    out = measure_faces(dets_for([FACE], SCALE, shift_iod=shift), img, REG, MeasureContext(), CFG)
    assert out.data["gate"][0] == ""
    assert abs(out.data["skin_temp_c"][0] - CANTHUS_C) < 0.15


def test_warm_mask_never_wins_even_with_landmarks_pushed_down():
    face = dict(FACE, mask_c=36.8)  # a breath-warmed mask hotter than the canthus
    img, _ = render((120, 160), [face], seed=2)
    # masks push landmarks down; without the mask flag the search reaches the mask
    unflagged = measure_faces(dets_for([face], SCALE, shift_iod=(0, 0.12)), img, REG, MeasureContext(), CFG)
    assert unflagged.data["skin_temp_c"][0] > 36.5  # shows the test can fail
    for shift in [(0, 0.12), (0, 0.0), (0, -0.1), (0.3, 0.1), (-0.3, 0.0)]:
        for status in ("yes", "unknown"):  # unsure of the mask: still never the mask
            out = measure_faces(dets_for([face], SCALE, mask=[status], shift_iod=shift), img, REG,
                                MeasureContext(), CFG)
            assert out.data["gate"][0] == ""
            assert abs(out.data["skin_temp_c"][0] - CANTHUS_C) < 0.15, (shift, status)
    said_no = measure_faces(dets_for([face], SCALE, mask=["no"], shift_iod=(0, 0.12)), img, REG, MeasureContext(), CFG)
    assert said_no.data["skin_temp_c"][0] > 36.5  # a confident 'no' searches down to the nose line


GATE_CASES = [
    # (name, face in thermal px, dets kwargs, ctx kwargs, cfg kwargs, expected gate)
    ("measurable", FACE, {}, {}, {}, ""),
    ("glasses", dict(FACE, glasses=True), {}, {}, {}, "glasses"),
    ("too_far", dict(cx=80.0, cy=50.0, iod=12.0), {}, {}, {}, "too_far"),
    ("outside_right_edge", dict(cx=150.0, cy=50.0, iod=40.0), {}, {}, {}, "outside_thermal_view"),
    ("outside_top_edge", dict(cx=80.0, cy=20.0, iod=40.0), {}, {}, {}, "outside_thermal_view"),
    ("yaw", FACE, dict(nose_shift_iod=0.3), {}, {}, "turned_away"),
    ("roll", FACE, dict(roll_deg=30.0), {}, {}, "turned_away"),
    ("upside_down", FACE, dict(roll_deg=180.0), {}, {}, "turned_away"),
    ("ffc", FACE, {}, dict(ffc_active=True), {}, "ffc"),
    ("blackbody_missing", FACE, {}, dict(blackbody_state="missing"), {}, "blackbody_missing"),
    ("blackbody_unstable", FACE, {}, dict(blackbody_state="unstable"), {}, "blackbody_unstable"),
    ("blackbody_reports_ffc", FACE, {}, dict(blackbody_state="ffc"), {}, "ffc"),
    ("ffc_wins_over_blackbody", FACE, {}, dict(blackbody_state="missing", ffc_active=True), {}, "ffc"),
    ("no_blackbody", FACE, {}, dict(blackbody_state="disabled"), {}, "blackbody_disabled"),
    ("no_blackbody_allowed", FACE, {}, dict(blackbody_state="disabled"), dict(allow_without_blackbody=True), ""),
    ("too_far_configurable", FACE, {}, {}, dict(min_canthus_px=8.0), "too_far"),
    ("near_enough", dict(cx=80.0, cy=50.0, iod=14.0), {}, {}, {}, ""),
    ("mild_yaw_allowed", FACE, dict(nose_shift_iod=0.1), {}, {}, ""),
]


@pytest.mark.parametrize("name,face,dkw,ckw,cfgkw,expected", GATE_CASES, ids=[c[0] for c in GATE_CASES])
def test_gates(name, face, dkw, ckw, cfgkw, expected):
    img, _ = render((120, 160), [face], seed=3)
    out = measure_faces(dets_for([face], SCALE, **dkw), img, REG, MeasureContext(**ckw),
                        MeasurementConfig(**cfgkw))
    assert out.data["gate"][0] == expected
    if expected:  # a gated face is never measured as normal
        assert np.isnan(out.data["skin_temp_c"][0]) and np.isnan(out.data["core_temp_c"][0])
        assert out.data["quality"][0] == 0
    else:
        assert np.isfinite(out.data["core_temp_c"][0])


def test_stuck_hot_pixels_and_nan_are_never_the_reading():
    img, truth = render((120, 160), [FACE], seed=9)
    (lx, ly), (rx, ry) = truth[0]
    img[int(round(ly)), int(round(lx)) + 1] = 382.0  # a stuck pixel (raw 65535) on the canthus
    img[int(round(ry)) + 1, int(round(rx))] = np.nan  # and a NaN one on the other
    img[int(round(ly)) - 3, int(round(lx))] = -273.15  # a dead pixel (raw 0)
    out = measure_faces(dets_for([FACE], SCALE), img, REG, MeasureContext(), CFG)
    assert out.data["gate"][0] == ""
    assert abs(out.data["skin_temp_c"][0] - CANTHUS_C) < 0.15
    assert np.isfinite(out.data["uncertainty_c"][0])


def test_a_photo_held_up_is_no_skin():
    # a face-shaped object at room temperature (a printed photo, a mannequin): RGB sees a face
    img = np.full((120, 160), 23.0, np.float32) + np.random.default_rng(10).normal(0, 0.05, (120, 160)).astype(np.float32)
    out = measure_faces(dets_for([FACE], SCALE), img, REG, MeasureContext(), CFG)
    assert out.data["gate"][0] == "no_skin" and np.isnan(out.data["core_temp_c"][0])


def test_several_faces_only_when_one_person_at_a_time():
    faces = [dict(cx=40.0, cy=50.0, iod=30.0), dict(cx=118.0, cy=50.0, iod=30.0)]
    img, _ = render((120, 160), faces, seed=4)
    dets = dets_for(faces, SCALE)
    free = measure_faces(dets, img, REG, MeasureContext(), CFG)
    assert list(free.data["gate"]) == ["", ""]
    strict = measure_faces(dets, img, REG, MeasureContext(), MeasurementConfig(one_person_at_a_time=True))
    assert list(strict.data["gate"]) == ["several_faces", "several_faces"]
    single = measure_faces(dets[0], img, REG, MeasureContext(), MeasurementConfig(one_person_at_a_time=True))
    assert single.data["gate"][0] == ""
    # a queue farther back (too far to measure) does not block the subject at the station
    queue = [faces[0], dict(cx=118.0, cy=40.0, iod=8.0)]
    img, _ = render((120, 160), queue, seed=4)
    out = measure_faces(dets_for(queue, SCALE), img, REG, MeasureContext(), MeasurementConfig(one_person_at_a_time=True))
    assert list(out.data["gate"]) == ["", "too_far"]


def test_motion_blur_on_a_real_face(astronaut_bgr):
    # the astronaut's face: box and rough landmarks in the 512x512 photo; thermal at 0.6 scale
    reg = ScaleRegistration(0.6)
    lm, _ = face_geometry(236.0, 105.0, 56.0)
    box = np.array([[178, 55, 298, 175]], np.float32)
    dets = Detections(box, [0.9], lm[None])
    face = dict(cx=236 * 0.6, cy=105 * 0.6, iod=56 * 0.6)
    img, _ = render((307, 307), [face], seed=5)
    sharp = measure_faces(dets, img, reg, MeasureContext(), CFG, rgb_bgr=astronaut_bgr)
    assert sharp.data["gate"][0] == ""
    k = np.zeros((31, 31), np.float32)
    k[15, :] = 1 / 31  # 31 px horizontal smear on a ~120 px face
    blurred = cv2.filter2D(astronaut_bgr, -1, k)
    out = measure_faces(dets, img, reg, MeasureContext(), CFG, rgb_bgr=blurred)
    assert out.data["gate"][0] == "motion_blur"
    assert sharpness(astronaut_bgr, box[0]) > 2 * sharpness(blurred, box[0])


def test_custom_skin_to_core_and_residual_used():
    img, _ = render((120, 160), [FACE], seed=6)
    ctx = MeasureContext(skin_to_core=lambda s, amb: s * 0.5 + 19.0 + (amb or 0) * 0.0, skin_to_core_sd_c=0.25,
                         ambient_c=24.0)
    out = measure_faces(dets_for([FACE], SCALE), img, REG, ctx, CFG)
    assert out.data["core_temp_c"][0] == pytest.approx(out.data["skin_temp_c"][0] * 0.5 + 19.0, abs=1e-4)
    assert 0.25 <= out.data["uncertainty_c"][0] < 0.35


def test_without_blackbody_the_camera_accuracy_widens_the_uncertainty():
    img, _ = render((120, 160), [FACE], seed=8)
    cfg = MeasurementConfig(allow_without_blackbody=True, camera_accuracy_c=0.8)
    out = measure_faces(dets_for([FACE], SCALE), img, REG, MeasureContext(blackbody_state="disabled"), cfg)
    assert 0.8 <= out.data["skin_sd_c"][0] < 0.85 and out.data["uncertainty_c"][0] > 0.85


def test_smaller_face_is_less_certain_and_lower_quality():
    big, small = dict(FACE), dict(cx=80.0, cy=50.0, iod=18.0)
    outs = []
    for f in (big, small):
        img, _ = render((120, 160), [f], seed=7)
        outs.append(measure_faces(dets_for([f], SCALE), img, REG, MeasureContext(), CFG))
    assert outs[1].data["gate"][0] == ""
    assert outs[1].data["uncertainty_c"][0] > outs[0].data["uncertainty_c"][0]
    assert outs[1].data["quality"][0] < outs[0].data["quality"][0]


def test_empty_detections():
    out = measure_faces(Detections.empty(), np.zeros((120, 160), np.float32), REG, MeasureContext(), CFG)
    assert len(out) == 0 and out.data["canthus_xy_thermal"].shape == (0, 2, 2)


def test_geometry_helpers():
    lm, _ = face_geometry(100.0, 100.0, 50.0)
    c = canthi_rgb(lm[None], 0.2)[0]
    np.testing.assert_allclose(c, [[85.0, 100.0], [115.0, 100.0]])
    yaw, roll = head_pose_deg(lm[None])
    assert abs(yaw[0]) < 1e-3 and abs(roll[0]) < 1e-3


@pytest.mark.parametrize("states,expect", [
    ([("none", 0)], [False]),
    ([("in_progress", 0), ("complete", 500), ("none", 999), ("none", 1001)], [True, True, True, False]),
    ([("imminent", 0), ("none", 2000)], [True, False]),
])
def test_ffc_settle(states, expect):
    ffc = FfcSettle(MeasurementConfig(ffc_settle_ms=1000))
    assert [ffc.update(s, int(t * 1e6)) for s, t in states] == expect


@pytest.mark.parametrize("key,value", [("search_radius_frac", 2.0), ("min_canthus_px", 0), ("hot_top_k", 0),
                                       ("bogus", 1)])
def test_config_rejects_bad_values(key, value):
    with pytest.raises(ValueError, match=key):
        MeasurementConfig(**{key: value})


def test_measured_faces_flow_through_tracker_and_screener():
    """Two people cross the thermal view for 20 pairs (one febrile); the measurements, the
    tracker and the screener together give one alert for the febrile one and two verdicts."""
    from edge.decision import DecisionConfig, Screener
    from edge.vision.tracking import Tracker

    tracker, screener = Tracker(), Screener(DecisionConfig(threshold_c=37.5))
    rgb = np.zeros((480, 640, 3), np.uint8)
    events = []
    for k in range(20):
        a = dict(cx=35.0 + 4.5 * k, cy=50.0, iod=22.0)  # walks right
        b = dict(cx=125.0 - 4.5 * k, cy=62.0, iod=20.0)  # walks left, a bit lower
        img, _ = render((120, 160), [a, b], seed=100 + k)
        # person a's canthi are 1.7 degC warmer (core ~38.6 vs ~36.9 with the default offset)
        ys, xs = np.mgrid[0:120, 0:160]
        near_a = np.hypot(xs - a["cx"], ys - a["cy"]) < 0.45 * a["iod"]
        img = np.where(near_a & (img > SKIN_C + 0.3), img + 1.7, img).astype(np.float32)
        dets = measure_faces(dets_for([a, b], SCALE), img, REG, MeasureContext(), CFG)
        dets, ended = tracker.update(dets, k * 115_000_000)
        events += screener.update(dets, k * 115_000_000, ended, rgb, img)
    events += screener.update(Detections.empty(), 20 * 115_000_000, tracker.finish(), rgb, None)
    events += screener.finish()
    alerts = [e for e in events if e.kind == "alert"]
    assert [e.type for e in alerts] == ["new", "end"] and alerts[0].track_id == alerts[1].track_id
    febrile = alerts[0].track_id
    assert 38.3 < alerts[0].verdict.core_temp_c < 39.0
    v = screener.verdicts()
    assert len(v) == 2 and v.pop(febrile).status == "elevated"
    assert [x.status for x in v.values()] == ["normal"]
    assert sorted(e.kind for e in events if e.type == "end") == ["alert", "screening", "screening"]


@settings(max_examples=40, deadline=None)
@given(cx=st.floats(50, 110), cy=st.floats(35, 60), iod=st.floats(15, 32), mask_c=st.floats(34.0, 40.0),
       dx=st.floats(-0.3, 0.3), dy=st.floats(-0.1, 0.12), status=st.sampled_from(["yes", "unknown"]),
       seed=st.integers(0, 1000))
def test_a_warm_mask_never_wins_within_the_documented_landmark_tolerance(cx, cy, iod, mask_c, dx, dy, status, seed):
    face = dict(cx=cx, cy=cy, iod=iod, mask_c=mask_c)
    img, _ = render((120, 160), [face], seed=seed)
    out = measure_faces(dets_for([face], SCALE, mask=[status], shift_iod=(dx, dy)), img, REG, MeasureContext(), CFG)
    assert out.data["gate"][0] == ""  # the face is in view, near and frontal
    assert out.data["skin_temp_c"][0] < CANTHUS_C + 0.2
    assert out.data["skin_temp_c"][0] > CANTHUS_C - 0.4  # and it still found the canthus


@pytest.mark.parametrize("speed_px_s, expect_gate", [(0.0, False), (200.0, False), (1000.0, True), (np.nan, False)])
def test_thermal_smear_from_tracker_speed_gates_motion_blur(speed_px_s, expect_gate):
    """Bolometer smear = speed (RGB px/s) x thermal/RGB scale x 2 time constants; > 4 px gates."""
    from edge.thermal.measurement import (
        MeasureContext,
        MeasurementConfig,
        measure_faces,
    )
    from edge.types import Detections

    class Scale:  # RGB px -> thermal px: x 0.25 (640x480 -> 160x120)
        def map_points(self, xy, iod_px=None):
            return np.asarray(xy, np.float32) * 0.25

    thermal = np.full((120, 160), 30.0, np.float32)
    lm = np.array([[[280, 200], [360, 200], [320, 240], [290, 280], [350, 280]]], np.float32)
    dets = Detections(np.array([[250, 150, 390, 320]], np.float32), np.array([0.9]), lm,
                      {"speed_px_s": np.array([speed_px_s], np.float32)})
    out = measure_faces(dets, thermal, Scale(), MeasureContext(), MeasurementConfig())
    # 1000 px/s x 0.25 x 24 ms = 6 thermal px > 4; 200 px/s = 1.2 px
    assert (out.data["gate"][0] == "motion_blur") == expect_gate


@pytest.mark.parametrize("bad", ["first_eye", "second_eye", "box"])
def test_a_face_the_registration_cannot_place_is_outside_the_view_not_an_error(bad):
    """NaN from the registration (or the detector) gates the face; it must not raise and lose the pair."""
    class NanRegistration(ScaleRegistration):
        def map_points(self, xy, iod_px):
            out = super().map_points(xy, iod_px).copy()
            # measure_faces maps (N,11,2): 5 landmarks, 2 canthi, then the box's 4 corners
            out[:, {"first_eye": 0, "second_eye": 1, "box": -2}[bad], 0] = np.nan
            return out

    img, _ = render((120, 160), [FACE])
    out = measure_faces(dets_for([FACE], SCALE), img, NanRegistration(SCALE), MeasureContext(), CFG)
    assert out.data["gate"][0] == "outside_thermal_view"
    assert np.isnan(out.data["skin_temp_c"][0])


def test_skin_to_core_has_one_default_and_one_name():
    """MeasureContext() estimates core with the default SkinToCore model (the FLIR_dev offset
    fit) -- no second set of numbers in the measurement module -- and the name SkinToCore means
    the model class everywhere (the measurement's callable type is CoreFromSkin)."""
    import edge.thermal.measurement as measurement

    default, ctx = SkinToCore(), MeasureContext()
    assert (default.model, default.offset_c, default.residual_sd_c) == ("offset", 1.2994, 0.3585)
    skin = np.array([34.0, 35.5, 36.2], np.float32)
    assert np.array_equal(ctx.skin_to_core(skin, None), default.core_c(skin))
    assert ctx.skin_to_core_sd_c == default.uncertainty_c()
    assert getattr(measurement, "SkinToCore", SkinToCore) is SkinToCore
    assert not [n for n in vars(measurement) if "SKIN_TO_CORE" in n.upper() and n != "SkinToCore"]
