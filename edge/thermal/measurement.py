"""Measurement: inner-canthus temperature and the quality gates that refuse bad measurements.

For each face: locate both inner canthi from the eye landmarks (eye centre moved toward the
nose along the eye line, in proportion to the inter-ocular distance, IOD), map them into the
thermal frame, and take a robust hot statistic (mean of the top-k pixels, k = a quarter of the
canthus area in pixels, so only the smallest faces fall back to the noise-driven single max) in
a disc around each canthus sized by the IOD in thermal pixels. The disc is wide (default 0.35
IOD) because masks shift the landmarks by up to ~0.35 IOD; pixels
below a line parallel to the eye line are never searched (the nose line for every face, 0.15 IOD
below the eye line when the face wears a mask), so a warm mask can never win.

skin = the hotter canthus (as the FDA/PhysioNet data's ``canthiMax``), core = skin_to_core(skin),
uncertainty (1 sigma, degC) = sqrt(skin_sd^2 + skin_to_core_residual^2), skin_sd = sqrt(
noise_of_statistic^2 + small_target_penalty^2 [+ camera_accuracy^2 without a blackbody]).

Gates (``gate`` data key; '' = measurable), first that applies wins, station-wide gates first:
``ffc``, ``blackbody_<state>``, then ``outside_thermal_view``, ``too_far``, ``several_faces``
(one_person_at_a_time and more than one face in view and near enough to measure),
``turned_away``, ``motion_blur``, ``no_skin`` (no pixel in min_skin_c..max_skin_c near either
canthus: a photo or visor held up; out-of-range pixels -- stuck, dead, NaN -- are never used),
``glasses``. A gated face gets NaN skin/core/uncertainty and
quality 0 -- it is never measured as normal.

Cost: a few vectorised numpy ops over all faces plus small per-face crops (no per-pixel Python);
on arrays this small numpy's per-call overhead dominates. ``make bench`` measures the stage per
pair (docs/benchmark.md, stages ``measurement`` and ``registration``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from pydantic import Field

from edge.configbase import StrictModel
from edge.thermal.calibration import SkinToCore
from edge.thermal.registration import box_corners, corners_to_box
from edge.types import DECISION_REASONS, FFC_ACTIVE, Detections, GateReason

# Nose tip depth in front of the eye plane as a fraction of the IOD (~30 mm / 63 mm), used to
# turn the nose's sideways offset into a yaw angle.
NOSE_DEPTH_IOD = 0.5

# A frame's gates in precedence order (the first that applies wins): edge.types.GateReason's.
GATES = tuple(g for g in GateReason if g not in DECISION_REASONS)


class MeasurementConfig(StrictModel):
    canthus_offset_frac: float = Field(
        0.2, ge=0.0, le=0.5,
        description="Inner canthus = eye centre moved toward the nose along the eye line by this "
                    "fraction of the inter-ocular distance (IOD), unitless")
    search_radius_frac: float = Field(
        0.35, ge=0.05, le=0.6,
        description="Radius of the hot-spot search disc around each canthus as a fraction of the "
                    "IOD (masks shift landmarks by up to ~0.35 IOD), unitless")
    hot_area_frac: float = Field(
        0.25, gt=0, le=1,
        description="Skin temperature = mean of the k hottest pixels in the disc, k = this x "
                    "canthus_px^2 (a quarter of the canthus area: all on the warm plateau, so a "
                    "small face is not averaged with cooler rim pixels), unitless")
    hot_top_k: int = Field(
        16, ge=1, le=256, description="Upper bound of k (noise averaging gains little beyond), pixels")
    canthus_width_frac: float = Field(
        0.15, ge=0.02, le=0.5,
        description="Width of the warm inner-canthus region as a fraction of the IOD, unitless; "
                    "thermal px across the canthus = IOD_thermal_px x this")
    min_canthus_px: float = Field(
        2.0, ge=0.5, le=32.0,
        description="Gate too_far below this many thermal pixels across the canthus, px "
                    "(2 px with the default width means IOD >= 13.3 thermal px, ~0.7 m from a "
                    "Lepton 3.5; below it the blurred canthus reads > 0.1 degC low)")
    max_yaw_deg: float = Field(
        25.0, gt=0, le=90, description="Gate turned_away above this head yaw (from the nose offset), degrees")
    max_roll_deg: float = Field(
        20.0, gt=0, le=180, description="Gate turned_away above this eye-line tilt, degrees")
    glasses_contrast_c: float = Field(
        1.5, gt=0, le=20,
        description="Gate glasses when the inner-eye region is colder than the forehead/cheek "
                    "skin by more than this, degC (glass is opaque in LWIR)")
    eye_patch_frac: float = Field(
        0.1, gt=0, le=0.4, description="Half-size of the inner-eye and skin reference patches, fraction of IOD")
    min_sharpness: float = Field(
        0.25, ge=0, le=5,
        description="Gate motion_blur below this sharpness (see sharpness(); measured on a real "
                    "face at 36-120 px: sharp 1.2-2.1, smeared by 10% of the face width ~0.4, "
                    "by 15% 0.23-0.38, by 20% 0.13-0.23), unitless")
    max_thermal_smear_px: float = Field(
        4.0, ge=0.5, le=50,
        description="Gate motion_blur when the face moves more than this many thermal px during "
                    "the bolometer's integration (2 x bolometer_time_constant_ms): the smear reads "
                    "the canthus ~0.2 degC low at 4 px on a Lepton 3.5, thermal px")
    bolometer_time_constant_ms: float = Field(
        12.0, ge=1, le=100,
        description="Thermal sensor time constant (Lepton microbolometer ~12 ms), ms")
    min_box_inside_frac: float = Field(
        0.9, ge=0, le=1,
        description="Gate outside_thermal_view when less than this fraction of the face box "
                    "area lies inside the thermal frame, unitless")
    mask_clip_iod: float = Field(
        0.15, ge=-0.2, le=1.0,
        description="Masked faces: search only above a line parallel to the eye line this far "
                    "below it, IOD units. The nose landmark is unreliable under a mask; a mask "
                    "starts ~0.3 IOD below the eyes, so with 0.15 the eye landmarks may sit up "
                    "to ~0.15 IOD too low or ~0.1 IOD too high (sideways: the full search radius)")
    min_skin_c: float = Field(
        25.0, ge=15, le=35,
        description="Canthus pixels colder than this are not skin (dead pixels, NaN, a photo or a "
                    "visor held up), degC")
    max_skin_c: float = Field(
        45.0, ge=38, le=60, description="Canthus pixels hotter than this are not skin (stuck pixels, a lamp), degC")
    netd_c: float = Field(
        0.05, gt=0, le=1, description="Sensor noise floor (NETD) used when the crop looks quieter, degC")
    small_target_penalty_c: float = Field(
        0.2, ge=0, le=2,
        description="Extra 1-sigma uncertainty at exactly min_canthus_px, falling as "
                    "(min_canthus_px / canthus_px)^2 for larger faces, degC")
    ffc_settle_ms: float = Field(
        1000.0, ge=0, le=30000,
        description="Keep gating 'ffc' this long after an FFC ends (the one after-FFC settle time: the "
                    "blackbody offset restarts after it too), ms")
    allow_without_blackbody: bool = Field(
        False,
        description="Measure when the station has no blackbody (state 'disabled'); else gate "
                    "blackbody_disabled. Readings then carry camera_accuracy_c as extra uncertainty")
    camera_accuracy_c: float = Field(
        0.5, ge=0, le=10, description="1-sigma radiometric accuracy of the camera without a blackbody, degC")
    one_person_at_a_time: bool = Field(
        False, description="Gate several_faces when more than one face in the frame is in view and near "
                           "enough to measure (faces farther back, e.g. a queue, do not count)")


# The callable the measurement estimates core with: a model's ``SkinToCore.core_c`` (the model
# class and its one default live in edge/thermal/calibration.py).
CoreFromSkin = Callable[[np.ndarray, "float | None"], np.ndarray]


@dataclass
class MeasureContext:
    """Per-frame station state the measurement needs.

    blackbody_state: BlackbodyStatus.state: 'ok'; 'ffc' (gates ``ffc``); 'disabled' (no
        blackbody: gates ``blackbody_disabled`` unless cfg.allow_without_blackbody); anything
        else, e.g. 'missing'/'unstable'/'moved', gates ``blackbody_<state>``.
    ffc_active: True during an FFC or its settle time (``FfcSettle`` computes this from frames).
    ambient_c: ambient temperature, degC, passed to skin_to_core (None if unknown).
    skin_to_core: ``core_c(skin_c (N,), ambient_c) -> (N,)``, degC; default: the default
        ``SkinToCore`` model's (what a calibration without a [skin_to_core] table gets).
    skin_to_core_sd_c: 1-sigma residual of skin_to_core across people, degC (same default).
    """

    blackbody_state: str = "ok"
    ffc_active: bool = False
    ambient_c: float | None = None
    skin_to_core: CoreFromSkin = field(default_factory=lambda: SkinToCore().core_c)
    skin_to_core_sd_c: float = field(default_factory=lambda: SkinToCore().uncertainty_c())


class Registration(Protocol):
    def map_points(self, xy: np.ndarray, iod_px: np.ndarray) -> np.ndarray: ...  # (N,K,2)->(N,K,2)


class FfcSettle:
    """The station's one after-FFC timer: turns the thermal frames' ``ffc_state`` into
    MeasureContext.ffc_active and the blackbody monitor's ``ffc_active``, holding it for
    ``ffc_settle_ms`` after the FFC ends (the image is unsettled right after the shutter)."""

    def __init__(self, cfg: MeasurementConfig):
        self._settle_ns = int(cfg.ffc_settle_ms * 1e6)
        self._last_active_ns: int | None = None

    def update(self, ffc_state: str, t_ns: int) -> bool:
        if ffc_state in FFC_ACTIVE:
            self._last_active_ns = t_ns
            return True
        return self._last_active_ns is not None and t_ns - self._last_active_ns < self._settle_ns


def canthi_rgb(landmarks_xy: np.ndarray, offset_frac: float) -> np.ndarray:
    """(N,5,2) landmarks -> (N,2,2) inner canthi (image-left eye's, image-right eye's), same px."""
    e0, e1 = landmarks_xy[:, 0], landmarks_xy[:, 1]
    step = (e1 - e0) * np.float32(offset_frac)  # = offset_frac * IOD along the eye line
    out = np.empty((len(landmarks_xy), 2, 2), np.result_type(landmarks_xy, np.float32))
    np.add(e0, step, out=out[:, 0])
    np.subtract(e1, step, out=out[:, 1])
    return out


def head_pose_deg(landmarks_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,5,2) landmarks -> (yaw_deg, roll_deg), each (N,).

    roll = eye-line angle from horizontal (180 for an upside-down face); yaw from the nose tip's
    offset from the eye midpoint along the eye line, relative to the IOD: offset/IOD_apparent =
    NOSE_DEPTH_IOD * tan(yaw)."""
    e0, e1, nose = landmarks_xy[:, 0], landmarks_xy[:, 1], landmarks_xy[:, 2]
    d = e1 - e0
    iod = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
    roll = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    along = ((nose - (e0 + e1) / 2) * d).sum(axis=1) / iod**2
    yaw = np.degrees(np.arctan(along / NOSE_DEPTH_IOD))
    return yaw.astype(np.float32), roll.astype(np.float32)


def sharpness(bgr: np.ndarray, box_xyxy: np.ndarray) -> float:
    """Blur measure of the face box's central 80%, resized to 32x32 (so it is relative to the
    face size) and divided by the crop's variance (contrast-free): the smaller of the variances
    of the second derivative along x and along y -- motion blur is directional and a Laplacian
    would still see the sharp direction. NaN if the crop is empty."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    h, w = bgr.shape[:2]
    # central 80%; from 96 px on trimmed to a multiple of 32 px (at most 25% less) so INTER_AREA
    # takes its integer-factor path (150 -> 128 px: medians 9-15 us instead of 51-85 us per
    # resize to 32x32, 3 runs of 300 on the shared dev box)
    sx, sy = int(0.8 * (x2 - x1)), int(0.8 * (y2 - y1))
    sx, sy = (sx // 32 * 32 if sx >= 96 else sx), (sy // 32 * 32 if sy >= 96 else sy)
    xa, ya = int(max(0.0, (x1 + x2 - sx) / 2)), int(max(0.0, (y1 + y2 - sy) / 2))
    xb, yb = min(w, xa + sx), min(h, ya + sy)
    if xb - xa < 4 or yb - ya < 4:
        return float("nan")
    crop = bgr[ya:yb, xa:xb]
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    g = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    sd = [cv2.meanStdDev(x)[1][0, 0] for x in (cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3),
                                               cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3), g)]
    return float(min(sd[0], sd[1]) ** 2 / (sd[2] ** 2 + 1.0))  # meanStdDev: np.var is slow here


def _median_inplace(a: np.ndarray) -> float:
    """Median (upper for even counts) of a 1-D scratch array via one partition, in place (its
    order changes): np.median's overhead dominates on the handful of pixels we look at."""
    m = a.shape[0] // 2
    a.partition(m)
    return float(a[m])


def _patch_medians(img: np.ndarray, xy: np.ndarray, half: float) -> np.ndarray:
    """(P,2) centres -> (P,) medians of the square patches of half-size ``half`` px around them
    (centre rounded half to even), NaN where a patch is not fully inside the image. The few
    patches are copied side by side and partitioned at once."""
    h, w = img.shape
    size = 2 * math.ceil(half) + 1
    out = np.full(len(xy), np.nan, np.float32)
    buf = np.empty((len(xy), size, size), img.dtype)
    rows: list[int] = []
    for j, (x, y) in enumerate(xy.tolist()):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        x0, y0 = round(x) - size // 2, round(y) - size // 2
        if x0 >= 0 and y0 >= 0 and x0 + size <= w and y0 + size <= h:
            buf[len(rows)] = img[y0:y0 + size, x0:x0 + size]
            rows.append(j)
    if rows:
        patches = buf[:len(rows)].reshape(len(rows), -1)
        m = patches.shape[1] // 2  # odd: the median
        patches.partition(m, axis=1)
        out[rows] = patches[:, m]
    return out


def _box_inside_frac(box: np.ndarray, w: int, h: int) -> np.ndarray:
    """(N,4) boxes -> (N,) fraction of each box's area inside [0,w]x[0,h]."""
    area = np.maximum(box[:, 2] - box[:, 0], 1e-6) * np.maximum(box[:, 3] - box[:, 1], 1e-6)
    iw = np.maximum(np.minimum(box[:, 2], w) - np.maximum(box[:, 0], 0), 0)  # np.clip is slow on
    ih = np.maximum(np.minimum(box[:, 3], h) - np.maximum(box[:, 1], 0), 0)  # tiny arrays
    frac: np.ndarray = (iw * ih / area).astype(np.float32)
    return frac


@dataclass
class _CanthusResult:
    skin_c: float
    canthi_xy: np.ndarray  # (2,2) refined hot-spot centroids, thermal px
    noise_c: float  # 1-sigma noise of the skin statistic
    glasses_contrast_c: float  # reference skin minus inner-eye, degC (NaN if not measurable)


def _measure_one(thermal_c: np.ndarray, lm: np.ndarray, canthi: np.ndarray, iod: float,
                 masked: bool, cfg: MeasurementConfig) -> _CanthusResult | None:
    """Hot statistic around both canthi of one face (all coordinates thermal px).
    None when the search discs do not fit inside the frame."""
    h, w = thermal_c.shape
    r = max(1.0, cfg.search_radius_frac * iod)
    (c0x, c0y), (c1x, c1y) = canthi.tolist()
    f = canthi.dtype.type  # bounds in the landmarks' precision, as array arithmetic gives them
    xa, xb = math.floor(f(min(c0x, c1x)) - r), math.ceil(f(max(c0x, c1x)) + r) + 1
    ya, yb = math.floor(f(min(c0y, c1y)) - r), math.ceil(f(max(c0y, c1y)) + r) + 1
    if xa < 0 or ya < 0 or xb > w or yb > h:
        return None
    crop = thermal_c[ya:yb, xa:xb]
    ys = np.arange(ya, yb, dtype=np.float32)[:, None]  # broadcast instead of full grids
    xs = np.arange(xa, xb, dtype=np.float32)[None, :]
    (e0x, e0y), (e1x, e1y), (nx_, ny_) = lm[0].tolist(), lm[1].tolist(), lm[2].tolist()
    ux, uy = (e1x - e0x) / max(iod, 1e-6), (e1y - e0y) / max(iod, 1e-6)
    dx, dy = -uy, ux  # face "down" (toward the mouth) for an upright face
    mx, my = (e0x + e1x) / 2, (e0y + e1y) / 2
    nose_depth = min(max((nx_ - mx) * dx + (ny_ - my) * dy, 0.3 * iod), 1.0 * iod)  # sane if the nose is off
    clip = cfg.mask_clip_iod * iod if masked else nose_depth
    allowed = ((xs - mx) * dx + (ys - my) * dy) < clip
    k = int(min(max(round(cfg.hot_area_frac * (cfg.canthus_width_frac * iod) ** 2), 1), cfg.hot_top_k))
    hot = [0.0, 0.0]
    xy = np.empty((2, 2), np.float32)
    cw = crop.shape[1]
    flat = crop.ravel()  # a copy (crop is a strided view): once, not per canthus
    for i, (cx, cy) in enumerate(((c0x, c0y), (c1x, c1y))):
        idx = np.flatnonzero(allowed & (((xs - cx) ** 2 + (ys - cy) ** 2) <= r * r))
        if len(idx) == 0:  # the clip removed the whole disc: landmarks far off
            hot[i], xy[i] = float("nan"), (cx, cy)
            continue
        vals = flat[idx]
        ok = (vals >= cfg.min_skin_c) & (vals <= cfg.max_skin_c)  # also drops NaN
        if not ok.all():
            idx, vals = idx[ok], vals[ok]
        if len(vals) == 0:  # this canthus shows no skin: the other one may
            hot[i], xy[i] = float("nan"), (cx, cy)
            continue
        kk = min(k, len(vals))
        top = np.argpartition(vals, len(vals) - kk)[len(vals) - kk:]
        hot[i] = float(vals[top].sum()) / kk
        row, col = np.divmod(idx[top], cw)
        xy[i] = xa + float(col.sum()) / kk, ya + float(row.sum()) / kk
    # Noise: robust (MAD) SD of horizontal pixel differences / sqrt(2); a smooth crop still
    # carries at least the sensor NETD.
    d = np.diff(crop, axis=1).ravel()
    sigma = 1.4826 * _median_inplace(np.abs(d - _median_inplace(d))) / math.sqrt(2) if d.size else 0.0
    sigma = sigma if math.isfinite(sigma) else 0.0
    noise = max(sigma, cfg.netd_c) / math.sqrt(k)
    # Glasses: inner-eye patches (half way from eye centre to canthus) vs the coolest skin
    # reference (forehead above the eyes; cheeks too unless a mask covers them). The coolest, so
    # an unflagged warm mask over the cheeks cannot fake the contrast; lenses read near ambient,
    # colder than any skin, so hair over the forehead does not hide them.
    down = np.array([dx, dy], np.float32) * (0.55 * iod)
    pts = np.empty((3 if masked else 5, 2), np.result_type(lm, canthi, np.float32))
    pts[:2] = (lm[:2] + canthi) / 2  # inner-eye patches
    pts[2] = np.array([mx, my], np.float32) - down  # forehead
    if not masked:
        pts[3:] = lm[:2] + down  # cheeks
    med = _patch_medians(thermal_c, pts, max(0.5, cfg.eye_patch_frac * iod))
    eye = sorted(v for v in med[:2].tolist() if math.isfinite(v))
    ref = [v for v in med[2:].tolist() if math.isfinite(v)]
    f32 = np.float32  # the difference in the medians' precision
    contrast = float(f32(min(ref)) - f32(eye[len(eye) // 2])) if eye and ref else float("nan")
    skin = max((v for v in hot if math.isfinite(v)), default=float("nan"))
    return _CanthusResult(skin, xy, float(noise), contrast)


def measure_faces(dets: Detections, thermal_c: np.ndarray, registration: Registration,
                  ctx: MeasureContext, cfg: MeasurementConfig,
                  rgb_bgr: np.ndarray | None = None) -> Detections:
    """Measure every face of one paired frame.

    dets: faces in RGB px; ``data['mask']`` 'yes' or 'unknown' gets the masked-face search clip
        (no 'mask' key: unmasked).
    thermal_c: (h,w) float32 degC, blackbody-corrected.
    registration: RGB px -> thermal px (``map_points``; the thermal box bounds the mapped corners).
    rgb_bgr: (H,W,3) uint8 RGB frame for the motion_blur gate (skipped when None).
    Returns dets with box_xyxy_thermal, landmarks_xy_thermal, canthus_xy_thermal, skin_temp_c,
    core_temp_c, uncertainty_c (degC), gate, quality added (see edge/types.py:DATA_KEYS), plus
    skin_sd_c: (N,) float32 degC, the measurement's own 1-sigma (noise, small target, no
    blackbody) -- uncertainty_c without the skin->core residual; the decision's guard band.
    """
    n = len(dets)
    h, w = thermal_c.shape[:2]
    iod_rgb = dets.inter_ocular_px
    canthi = canthi_rgb(dets.landmarks_xy, cfg.canthus_offset_frac)
    # landmarks, canthi and box corners of every face in one call: one parallax shift per face
    corners = box_corners(dets.box_xyxy)
    pts_th = np.asarray(registration.map_points(
        np.concatenate([dets.landmarks_xy, canthi, corners], axis=1), iod_rgb), np.float32).reshape(n, 11, 2)
    lm_th, canthi_th, corners_th = pts_th[:, :5], pts_th[:, 5:7].copy(), pts_th[:, 7:]
    box_th = corners_to_box(corners_th)
    d = lm_th[:, 1] - lm_th[:, 0]
    iod_th = np.hypot(d[:, 0], d[:, 1]).astype(np.float32)
    canthus_px = iod_th * np.float32(cfg.canthus_width_frac)
    yaw, roll = head_pose_deg(dets.landmarks_xy)
    inside = _box_inside_frac(box_th, w, h)
    # 'unknown' is treated as masked: a warm mask must never win, and the tighter clip costs an
    # unmasked face nothing unless its eye landmarks sit > 0.1 IOD too high
    masked = (np.asarray(dets.data["mask"]) != "no") if "mask" in dets.data else np.zeros(n, bool)

    # Station-wide reasons first (they gate every face), then the cheap per-face ones; the first
    # that applies is the face's gate.
    bb = ctx.blackbody_state
    no_bb = bb == "disabled" and cfg.allow_without_blackbody
    station = (GateReason.FFC if ctx.ffc_active or bb == "ffc" else
               GateReason(f"blackbody_{bb}") if bb != "ok" and not no_bb else "")
    if station:
        gate = np.full(n, station, dtype=object)
    else:
        outside, far = inside < cfg.min_box_inside_frac, canthus_px < cfg.min_canthus_px
        # a face the registration cannot place (NaN/inf mapped points) is not in the thermal view
        outside |= ~np.isfinite(pts_th).all(axis=(1, 2))
        # one person at a time: only faces close enough to measure count (a queue behind the
        # subject does not block the station; two people at it do)
        crowded = cfg.one_person_at_a_time and int((~outside & ~far).sum()) > 1
        # first that applies wins: assigned from the last to the first
        gate = np.full(n, "", dtype=object)
        gate[(np.abs(yaw) > cfg.max_yaw_deg) | (np.abs(roll) > cfg.max_roll_deg)] = GateReason.TURNED_AWAY
        if crowded:
            gate[:] = GateReason.SEVERAL_FACES
        gate[far] = GateReason.TOO_FAR
        gate[outside] = GateReason.OUTSIDE_THERMAL_VIEW

    # The microbolometer integrates over ~2 time constants, so a face crossing fast is smeared in
    # the thermal image even when the RGB frame is sharp (tracker speed, RGB px/s -> thermal px).
    if "speed_px_s" in dets.data:
        smear_th = (np.asarray(dets.data["speed_px_s"], np.float32) * iod_th / np.maximum(iod_rgb, 1e-3)
                    * np.float32(2e-3 * cfg.bolometer_time_constant_ms))
        # unknown speed (NaN) never gates
        gate[(gate == "") & (smear_th > cfg.max_thermal_smear_px)] = GateReason.MOTION_BLUR

    sharp = np.full(n, np.nan, np.float32)
    if rgb_bgr is not None:
        for i in np.flatnonzero(gate == ""):
            sharp[i] = sharpness(rgb_bgr, dets.box_xyxy[i])
            if sharp[i] < cfg.min_sharpness:
                gate[i] = GateReason.MOTION_BLUR

    skin = np.full(n, np.nan, np.float32)
    noise = np.full(n, np.nan, np.float32)
    for i in np.flatnonzero(gate == ""):
        res = _measure_one(thermal_c, lm_th[i], canthi_th[i], float(iod_th[i]), bool(masked[i]), cfg)
        if res is None:
            gate[i] = GateReason.OUTSIDE_THERMAL_VIEW
            continue
        if not np.isfinite(res.skin_c):
            gate[i] = GateReason.NO_SKIN
            continue
        if res.glasses_contrast_c > cfg.glasses_contrast_c:
            gate[i] = GateReason.GLASSES
            continue
        skin[i], noise[i], canthi_th[i] = res.skin_c, res.noise_c, res.canthi_xy

    ok = gate == ""
    core = np.full(n, np.nan, np.float32)
    unc = np.full(n, np.nan, np.float32)
    meas_sd = np.full(n, np.nan, np.float32)
    quality = np.zeros(n, np.float32)
    if ok.any():
        ok = slice(None) if ok.all() else ok  # every face measured (usual): views, not copies
        core[ok] = np.asarray(ctx.skin_to_core(skin[ok], ctx.ambient_c), np.float32).reshape(-1)
        penalty = cfg.small_target_penalty_c * (cfg.min_canthus_px / canthus_px[ok]) ** 2
        # measurement part (what better frames or a closer subject can reduce) and the total
        meas_sd[ok] = np.sqrt(noise[ok] ** 2 + penalty ** 2 + (cfg.camera_accuracy_c ** 2 if no_bb else 0.0))
        unc[ok] = np.sqrt(meas_sd[ok] ** 2 + ctx.skin_to_core_sd_c ** 2)
        # Quality ranks frames of one person for best-N: bigger, more frontal, sharper, surer.
        size_q = np.minimum(canthus_px[ok] / (2 * cfg.min_canthus_px), 1)
        pose_q = (1 - 0.5 * np.abs(yaw[ok]) / cfg.max_yaw_deg) * (1 - 0.5 * np.abs(roll[ok]) / cfg.max_roll_deg)
        sharp_q = np.where(np.isfinite(sharp[ok]), np.minimum(sharp[ok] / (3 * max(cfg.min_sharpness, 1e-3)), 1), 1.0)
        quality[ok] = np.minimum(np.maximum(size_q * pose_q * sharp_q * dets.score[ok], 0), 1)

    return dets.with_data(
        box_xyxy_thermal=box_th, landmarks_xy_thermal=lm_th, canthus_xy_thermal=canthi_th,
        skin_temp_c=skin, core_temp_c=core, uncertainty_c=unc, skin_sd_c=meas_sd, gate=gate, quality=quality)
