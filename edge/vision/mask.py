"""Mask status per face: 'yes' / 'no' / 'unknown' with a confidence, from the RGB crop.

How: the face is aligned with a similarity transform from its five detector landmarks onto a
24x24 px template (so the mouth region is always in the same place, whatever the face size or
roll). In eight regions of the lower and middle face (cheeks, nose tip, philtrum, mouth, chin)
we measure the colour relative to the face's own eye-band skin (CIE Lab differences, so skin
tone and white balance cancel), the fraction of skin-coloured pixels, the lightness spread and
the gradient energy (lips and nostrils vs smooth fabric). A logistic regression on these 56
features gives P(mask).

The weights below were fitted by ``tools/mask/train.py`` on the CC0 "Face Mask Detection"
photos (../shared/data/masked_faces), on the faces our own detector finds there, with
left-right flips as augmentation. Its cross-validation is grouped by photo (no face of a test
photo is ever in training) and nested (the regularisation is chosen inside each training fold);
the measured accuracy is in models/README.md and tools/mask/cv_report.json.

'unknown' is returned, with confidence 0, when the face box is smaller than
``MaskConfig.min_face_px``, the landmarks are degenerate, too much of the aligned crop falls
outside the frame, or the crop is too dark/flat to read; and, with the model's confidence, when
that confidence is below ``MaskConfig.min_confidence``.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import Field

from edge.configbase import StrictModel
from edge.types import Detections
from edge.vision.detection import check_bgr

ALIGN_PX = 24  # side of the aligned face crop, px
# Landmark template (ArcFace 112x112 layout scaled to 0..1): eyes, nose tip, mouth corners.
TEMPLATE_01 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], np.float64) / 112.0


# Regions of the aligned face, as (y0, y1, x0, x1) fractions of its side. The eye band is the
# reference skin (masks do not reach it); the others are where a mask would or would not be.
REF_REGION = (0.30, 0.50, 0.20, 0.80)
REGIONS = {
    "upper_cheek_left": (0.50, 0.62, 0.12, 0.35), "upper_cheek_right": (0.50, 0.62, 0.65, 0.88),
    "nose_tip": (0.55, 0.70, 0.40, 0.60), "philtrum": (0.68, 0.78, 0.40, 0.60),
    "lower_cheek_left": (0.66, 0.88, 0.08, 0.30), "lower_cheek_right": (0.66, 0.88, 0.70, 0.92),
    "mouth": (0.76, 0.90, 0.33, 0.67), "chin": (0.88, 1.00, 0.33, 0.67),
}
FEATURES_PER_REGION = ("dL", "da", "db", "dchroma", "skin_fraction", "L_std", "gradient")
N_FEATURES = len(REGIONS) * len(FEATURES_PER_REGION)


class MaskConfig(StrictModel):
    """Mask classifier section."""

    min_face_px: float = Field(
        16.0, ge=4, le=2000,
        description="Faces whose box height is below this get 'unknown', RGB px")
    min_confidence: float = Field(
        0.6, ge=0.5, le=1.0,
        description="Below this classifier confidence the status is 'unknown', probability 0.5..1")
    max_outside_fraction: float = Field(
        0.25, ge=0, le=1,
        description="Faces with more of their aligned crop outside the frame get 'unknown', fraction 0..1")
    min_contrast: float = Field(
        3.0, ge=0, le=100,
        description="Crops whose lightness std is below this are unreadable ('unknown'), Lab L* units 0..100")


def _similarity_to_template(lm_xy: np.ndarray) -> np.ndarray | None:
    """2x3 least-squares similarity (Umeyama) mapping the 5 landmarks onto the template, or None."""
    src = lm_xy.astype(np.float64)
    if not np.isfinite(src).all():
        return None
    dst = TEMPLATE_01 * ALIGN_PX
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    var = (s ** 2).sum()
    if var < 4.0:  # all landmarks within ~1 px: nothing to align
        return None
    # complex-number form of a 2-D similarity: d = z * s
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    z = (np.conj(zs) @ zd) / var
    a, b = z.real, z.imag
    rot = np.array([[a, -b], [b, a]])
    t = md - rot @ ms
    return np.hstack([rot, t[:, None]])


# Pixel centres of the aligned crop that the features read (rows from the eye band down), and
# the corners of that rectangle.
_G = np.arange(ALIGN_PX) + 0.5
_READ_GX, _READ_GY = np.meshgrid(_G[int(0.08 * ALIGN_PX):int(0.92 * ALIGN_PX)], _G[int(REF_REGION[0] * ALIGN_PX):])
_READ_X = (float(_READ_GX.min()), float(_READ_GX.max()))
_READ_Y = (float(_READ_GY.min()), float(_READ_GY.max()))


def align_face(bgr: np.ndarray, lm_xy: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(ALIGN_PX,ALIGN_PX,3) uint8 aligned crop and the fraction of its used part outside the frame, or None."""
    m = _similarity_to_template(lm_xy)
    if m is None:
        return None
    inv = cv2.invertAffineTransform(m)
    crop = _warp_antialiased(bgr, m, inv)
    # fraction of the pixels the features read (rows from the eye band down) that lie outside
    # the frame, found by mapping those crop pixel centres back into the frame
    h, w = bgr.shape[:2]
    a, b, c, d, e, f = inv.ravel().tolist()
    corners = [(a * x + b * y + c, d * x + e * y + f) for x in _READ_X for y in _READ_Y]
    if all(1e-6 < fx < w - 1e-6 and 1e-6 < fy < h - 1e-6 for fx, fy in corners):
        # the read rectangle maps to a parallelogram; with its corners inside the frame by more
        # than any rounding, so is every pixel centre: nothing outside (the usual case)
        return crop, 0.0
    fx = inv[0, 0] * _READ_GX + inv[0, 1] * _READ_GY + inv[0, 2]
    fy = inv[1, 0] * _READ_GX + inv[1, 1] * _READ_GY + inv[1, 2]
    outside = float(np.mean((fx < 0) | (fy < 0) | (fx >= w) | (fy >= h)))
    return crop, outside


def _warp_antialiased(bgr: np.ndarray, m: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """warpAffine onto the template, pre-shrinking big faces with INTER_AREA.

    warpAffine samples bilinearly whatever the scale, so a 150 px face squeezed into 24 px would
    alias (and the texture features with it). Faces more than 2x the template are first shrunk,
    only their region of the frame, to 2x; the warp then does the rest.
    """
    scale = float(np.hypot(m[0, 0], m[1, 0]))  # template px per frame px
    if scale >= 0.5:
        return cv2.warpAffine(bgr, m, (ALIGN_PX, ALIGN_PX), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    h, w = bgr.shape[:2]
    corners = np.array([[0, 0, 1], [ALIGN_PX, 0, 1], [0, ALIGN_PX, 1], [ALIGN_PX, ALIGN_PX, 1]], np.float64)
    frame_xy = corners @ inv.T
    (lo_x, lo_y), (hi_x, hi_y) = frame_xy.min(0).tolist(), frame_xy.max(0).tolist()
    x0, y0 = min(max(math.floor(lo_x) - 1, 0), w - 1), min(max(math.floor(lo_y) - 1, 0), h - 1)
    x1, y1 = min(max(math.ceil(hi_x) + 2, x0 + 1), w), min(max(math.ceil(hi_y) + 2, y0 + 1), h)
    roi = bgr[y0:y1, x0:x1]
    f = 2.0 * scale
    sw, sh = max(1, round(roi.shape[1] * f)), max(1, round(roi.shape[0] * f))
    small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA)
    fx, fy = sw / roi.shape[1], sh / roi.shape[0]
    # frame p = small p' / (fx, fy) + (x0, y0)  =>  crop = R diag(1/fx, 1/fy) p' + (R (x0, y0) + t)
    rot = m[:, :2]
    m_small = np.hstack([rot @ np.diag([1 / fx, 1 / fy]), (rot @ np.array([x0, y0]) + m[:, 2])[:, None]])
    return cv2.warpAffine(small, m_small, (ALIGN_PX, ALIGN_PX), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _flat_index(frac: tuple[float, float, float, float]) -> np.ndarray:
    """Flat pixel indices of a region (y0, y1, x0, x1 as fractions) of the aligned crop."""
    y0, y1, x0, x1 = (int(f * ALIGN_PX) for f in frac)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return (yy * ALIGN_PX + xx).ravel()


# Every region's pixels back to back, so one sort and np.add.reduceat give all per-region
# statistics at once instead of paying numpy's per-call overhead once per region and statistic.
_REF_IDX = _flat_index(REF_REGION)
_REF_MID = len(_REF_IDX) // 2
assert len(_REF_IDX) % 2 == 1, "the eye-band median is taken as its middle value: needs an odd count"
_REGION_IDX = [_flat_index(f) for f in REGIONS.values()]
_CAT = np.concatenate(_REGION_IDX)
_LEN = np.array([len(i) for i in _REGION_IDX])
_START = np.concatenate([[0], np.cumsum(_LEN)[:-1]])
_GROUP_OFFSET = (np.repeat(np.arange(len(_LEN)), _LEN) * 1024.0)[:, None]  # Lab values < 256
_MID_LO = _START + (_LEN - 1) // 2
_MID_HI = _START + _LEN // 2


def face_features(crop: np.ndarray) -> np.ndarray:
    """(N_FEATURES,) float64 features of one aligned (ALIGN_PX,ALIGN_PX,3) uint8 BGR face crop.

    Per region, relative to the eye-band skin: median Lab difference (L*, a*, b*, chroma
    distance), fraction of skin-coloured pixels (YCrCb box), L* spread, mean L* gradient.
    Differences, not absolute colours, so skin tone and white balance do not decide.
    """
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2Lab).astype(np.float32).reshape(-1, 3)
    ycc = cv2.cvtColor(crop, cv2.COLOR_BGR2YCrCb).reshape(-1, 3)
    cr, cb = ycc[:, 1], ycc[:, 2]
    skin = ((cr >= 133) & (cr <= 180) & (cb >= 70) & (cb <= 130)).astype(np.float64)
    light = lab[:, 0].reshape(ALIGN_PX, ALIGN_PX)
    grad = np.zeros_like(light)
    grad[:-1] += np.abs(np.diff(light, axis=0))
    grad[:, :-1] += np.abs(np.diff(light, axis=1))
    ref = np.partition(lab[_REF_IDX], _REF_MID, axis=0)[_REF_MID]  # = np.median (odd count)
    px = lab[_CAT]
    # ragged per-region medians from one sort: offsetting each region keeps the groups apart
    keyed = np.sort(px + _GROUP_OFFSET, axis=0) - _GROUP_OFFSET
    d = (keyed[_MID_LO] + keyed[_MID_HI]) / 2 - ref
    n = _LEN.astype(np.float64)
    lum = px[:, 0].astype(np.float64)
    mean_l = np.add.reduceat(lum, _START) / n
    var_l = np.add.reduceat(lum * lum, _START) / n - mean_l ** 2
    out = np.empty((len(_LEN), 7), np.float64)
    out[:, 0], out[:, 1], out[:, 2] = d[:, 0] / 20, d[:, 1] / 10, d[:, 2] / 10
    out[:, 3] = np.hypot(d[:, 1], d[:, 2]) / 10
    out[:, 4] = np.add.reduceat(skin[_CAT], _START) / n
    out[:, 5] = np.sqrt(np.maximum(var_l, 0)) / 20
    out[:, 6] = np.add.reduceat(grad.ravel()[_CAT].astype(np.float64), _START) / n / 10
    return out.ravel()


def _lightness_std(crop: np.ndarray) -> float:
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return float(gray.std()) * 100.0 / 255.0


def mask_probability(features: np.ndarray) -> np.ndarray:
    """P(mask) for (n,N_FEATURES) or (N_FEATURES,) features, from the committed weights."""
    z = np.clip(np.asarray(features, np.float64) @ _W + _B, -50, 50)
    return 1.0 / (1.0 + np.exp(-z))


def readable_crop(bgr: np.ndarray, box_xyxy: np.ndarray, lm_xy: np.ndarray, cfg: MaskConfig) -> np.ndarray | None:
    """The aligned crop of one face, or None when it is too small or unreadable (-> 'unknown')."""
    if not float(box_xyxy[3] - box_xyxy[1]) >= cfg.min_face_px:
        return None
    aligned = align_face(bgr, lm_xy)
    if aligned is None:
        return None
    crop, outside = aligned
    if outside > cfg.max_outside_fraction or _lightness_std(crop) < cfg.min_contrast:
        return None
    return crop


def classify_masks(bgr: np.ndarray, dets: Detections, cfg: MaskConfig | None = None) -> Detections:
    """Return ``dets`` with data['mask'] ((N,) object 'yes'/'no'/'unknown') and
    data['mask_conf'] ((N,) float32 0..1, confidence of that status; 0 when unreadable).

    bgr: the (H,W,3) uint8 BGR frame the detections come from (pixels of box_xyxy/landmarks_xy).
    """
    cfg = cfg or MaskConfig()
    check_bgr(bgr)
    n = len(dets)
    status = np.full(n, "unknown", dtype=object)
    conf = np.zeros(n, np.float32)
    for i in range(n):
        crop = readable_crop(bgr, dets.box_xyxy[i], dets.landmarks_xy[i], cfg)
        if crop is None:
            continue
        p = float(mask_probability(face_features(crop)))
        c = max(p, 1.0 - p)
        conf[i] = c
        if c >= cfg.min_confidence:
            status[i] = "yes" if p >= 0.5 else "no"
    return dets.with_data(mask=status, mask_conf=conf)


# fmt: off
# --- weights: generated by tools/mask/train.py; do not edit by hand ---
# logistic regression, L2=1.0, temperature 1.35, 1899 faces + mirrored copies; standardisation folded in
_W = np.array([
    -0.0752117, 0.0958444, 0.0939188, 0.169779, -0.193732, -0.308214, 0.220544, -0.0520257,
    0.0586859, 0.0597363, 0.173834, -0.424572, -0.198735, 0.189575, 0.174744, -0.401178, -0.163595,
    0.841024, -2.89679, 0.120077, -0.0873791, 0.0952189, -0.283492, -0.248198, 0.365999,
    -0.0539091, -0.0550452, -0.220842, 0.00631471, 0.195773, -0.115692, 0.100871, -0.44414,
    -0.00554886, 0.288219, -0.00725228, 0.0850348, -0.142399, 0.225358, -0.511158, -0.0108087,
    0.282031, 0.112196, -0.535731, -0.297031, 0.501837, -0.839851, 0.466611, -0.335488, -0.0590308,
    -0.0502757, -0.374773, 0.110781, -0.127844, 0.141871, 0.109577
])
_B = -0.6214
MODEL_INFO = {'trained_on': 'Face Mask Detection (Kaggle, andrewmvd), CC0 1.0', 'trained_on_dirs': ['masked_faces_train', 'masked_faces'], 'cv_accuracy': {'all': 0.8472, '>=32px': 0.9505, '>=64px': 0.9563}, 'dev_dir': 'masked_faces', 'dev_accuracy': {'all': 0.8251, '>=32px': 0.9429, '>=64px': 0.9568}}
# --- end weights ---
# fmt: on


class TrackMaskCache:
    """Mask status per tracked person, re-classified every ``refresh_frames`` frames.

    A mask does not come and go between frames 115 ms apart, and classifying every face of
    every pair was the largest non-detector cost. Faces without a confirmed track (-1) and
    faces whose status is still 'unknown' (too small, turned) are classified every frame.
    """

    def __init__(self, cfg: MaskConfig | None = None, refresh_frames: int = 10):
        if refresh_frames < 1:
            raise ValueError(f"refresh_frames={refresh_frames}; must be >= 1")
        self.cfg = cfg or MaskConfig()
        self.refresh_frames = refresh_frames
        self._by_track: dict[int, tuple[str, float, int]] = {}  # track -> (status, conf, age)

    def apply(self, bgr: np.ndarray, dets: Detections, ended_track_ids: list[int]) -> Detections:
        """dets must carry data['track_id']; returns them with data['mask'] and ['mask_conf']."""
        for tid in ended_track_ids:
            self._by_track.pop(int(tid), None)
        n = len(dets)
        if n == 0:
            return dets.with_data(mask=np.full(0, "unknown", dtype=object), mask_conf=np.zeros(0, np.float32))
        ids = np.asarray(dets.data["track_id"]).tolist()
        cached = [self._by_track.get(t) if t >= 0 else None for t in ids]
        need = [k for k, c in enumerate(cached) if c is None or c[0] == "unknown" or c[2] + 1 >= self.refresh_frames]
        status = np.empty(n, dtype=object)
        conf = np.empty(n, np.float32)
        if need:
            fresh = classify_masks(bgr, dets[np.array(need)], self.cfg)
            for k, s, c in zip(need, fresh.data["mask"].tolist(), fresh.data["mask_conf"].tolist()):
                status[k], conf[k] = s, c
                if ids[k] >= 0:
                    self._by_track[ids[k]] = (s, c, 0)
        for k, cache in enumerate(cached):
            if k not in need and cache is not None:  # not needed: cached, and still fresh
                s, c, age = cache
                status[k], conf[k] = s, c
                self._by_track[ids[k]] = (s, c, age + 1)
        return dets.with_data(mask=status, mask_conf=conf)
