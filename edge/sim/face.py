"""The simulated face: geometry measured once on the astronaut photo, and the per-person RGB
cut-out and thermal temperature map, both drawn in the photo's own pixel coordinates so that
one transform places them consistently in both cameras.

Landmarks below were measured on assets/astronaut.png (512x512, skimage's astronaut) by
running the CenterFace model at full resolution (score 0.93) and checked by eye on a 3x crop;
the inner canthi were then placed 0.22 inter-ocular distances from each eye centre toward the
other eye, which on the crop is the inner eye corner plus the caruncle.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# --- astronaut.png geometry (source pixels, x right / y down) -----------------------------------
SRC_SIZE = 512
SRC_LANDMARKS = np.array([
    [203.3, 101.7],  # eye, image-left
    [247.3, 105.3],  # eye, image-right
    [223.3, 125.5],  # nose tip
    [203.4, 142.3],  # mouth corner, image-left
    [241.3, 144.4],  # mouth corner, image-right
])
SRC_EYE_MID = SRC_LANDMARKS[:2].mean(axis=0)
SRC_IOD_PX = float(np.hypot(*(SRC_LANDMARKS[1] - SRC_LANDMARKS[0])))  # 44.15 px
_EYE_DIR = (SRC_LANDMARKS[1] - SRC_LANDMARKS[0]) / SRC_IOD_PX
SRC_CANTHI = np.array([SRC_LANDMARKS[0] + 0.22 * SRC_IOD_PX * _EYE_DIR,
                       SRC_LANDMARKS[1] - 0.22 * SRC_IOD_PX * _EYE_DIR])
# CenterFace's own box on the photo: the face-box convention the detector follows (brow-to-chin,
# cheek to cheek); truth boxes are this box carried through the same transform as the face.
SRC_FACE_BOX = np.array([181.5, 58.2, 269.9, 177.8])
# Skin ellipse of the face (centre x, y, half-axes x, y), hair/head ellipse, neck band.
SRC_FACE_ELLIPSE = (224.0, 129.0, 51.0, 54.0)
SRC_HEAD_ELLIPSE = (226.0, 98.0, 74.0, 84.0)
SRC_NOSE_ELLIPSE = (223.0, 118.0, 8.0, 15.0)
SRC_MOUTH_ELLIPSE = (222.0, 143.0, 21.0, 7.0)
# Neck and shoulders below the head (the suit), part of the person's cut-out.
SRC_BODY_POLY = np.array([[190, 160], [260, 160], [300, 235], [350, 300], [292, 360], [275, 512], [40, 512],
                          [60, 300], [140, 235]], np.int32)

MASK_STYLES = ("none", "surgical", "n95", "cloth")
MASK_COLOURS_BGR = {
    "blue": (215, 170, 120), "white": (235, 235, 232), "black": (35, 35, 38),
    "pink": (190, 160, 235), "green": (120, 170, 110), "grey": (150, 150, 150),
}


@dataclass(frozen=True)
class SkinModel:
    """Temperatures of face regions relative to the inner-canthus maximum, degC.

    forehead: FLIR_dev.csv T_FHCC (forehead centre) minus canthiMax, mean over 625 volunteers and
    4 rounds = -1.29 (see edge/sim/truth.py). The canthus region is a 7 mm radius plateau:
    FLIR_dev's canthus ROI means (T_RC/T_LC) sit only 0.12-0.15 below canthiMax, so the warm
    area is broad; the periorbital skin around it is -0.35 (between T_RC and RCC/LCC, -0.56). Cheeks, nose, lips, eye surface: typical values from the facial
    thermography literature (nose is the coldest exposed skin, the cornea is ~1 degC below the
    canthus); hair and clothing interpolate between ambient and skin.
    """

    forehead: float = -1.29
    periorbital: float = -0.35
    cheek: float = -1.6
    nose: float = -2.4
    lips: float = -0.9
    eye_surface: float = -1.0
    neck: float = -0.9
    hair_frac: float = 0.35  # hair = ambient + frac * (forehead - ambient)
    clothing_frac: float = 0.30
    glasses_frac: float = 0.45  # LWIR-opaque lenses warm up a little from the face behind


def _ellipse_mask(shape, e, value=1.0) -> np.ndarray:
    m = np.zeros(shape, np.float32)
    cx, cy, ax, ay = e
    cv2.ellipse(m, (int(round(cx * 16)), int(round(cy * 16))), (int(round(ax * 16)), int(round(ay * 16))),
                0, 0, 360, value, -1, cv2.LINE_AA, 4)
    return m


def mask_polygon(style: str) -> np.ndarray:
    """Outline of a face mask in source px: covers nose bridge (y~113) to below the chin."""
    if style == "surgical":
        return np.array([[176, 118], [223, 110], [272, 120], [270, 170], [244, 192], [204, 192], [178, 170]], np.float32)
    if style == "n95":
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        return np.stack([224 + 47 * np.cos(t), 152 + 42 * np.sin(t)], axis=1).astype(np.float32)
    if style == "cloth":
        return np.array([[174, 122], [200, 112], [223, 109], [248, 112], [274, 124], [268, 168], [250, 188],
                         [224, 197], [198, 188], [180, 168]], np.float32)
    raise ValueError(f"mask style {style!r}; allowed: {MASK_STYLES}")


def glasses_ellipses() -> list[tuple[float, float, float, float]]:
    """Two lenses centred on the eyes, large enough to cover the inner canthi (source px)."""
    (lx, ly), (rx, ry) = SRC_LANDMARKS[0], SRC_LANDMARKS[1]
    return [(lx - 1.0, ly, 17.0, 12.0), (rx + 1.0, ry, 17.0, 12.0)]


def _not_backdrop(photo_bgr: np.ndarray) -> np.ndarray:
    """1 where the photo is not its pale studio backdrop (hair, skin, suit), 0 on the backdrop."""
    hsv = cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
    backdrop = (hsv[:, :, 1] < 40) & (hsv[:, :, 2] > 150)
    keep: np.ndarray = (~backdrop).astype(np.uint8)
    keep = cv2.morphologyEx(keep, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    keep = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    return keep.astype(np.float32)


def person_cutout(photo_bgr: np.ndarray, mask: str, mask_colour: str, glasses: bool) -> tuple[np.ndarray, np.ndarray]:
    """RGB appearance of one person in source px: (512,512,3) uint8 BGR and (512,512) float32 alpha.

    Alpha is the head (hair included) plus neck and shoulders, soft-edged, so the person can be
    composited onto any background. Masks and glasses are drawn here, before any warp.
    """
    img = photo_bgr.copy()
    shape = img.shape[:2]
    alpha = _ellipse_mask(shape, SRC_HEAD_ELLIPSE) * _not_backdrop(photo_bgr)
    body = np.zeros(shape, np.float32)
    cv2.fillPoly(body, [SRC_BODY_POLY], 1.0)
    alpha = np.maximum(alpha, body)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2.0)
    if mask != "none":
        colour = MASK_COLOURS_BGR.get(mask_colour)
        if colour is None:
            raise ValueError(f"mask colour {mask_colour!r}; allowed: {sorted(MASK_COLOURS_BGR)}")
        poly = mask_polygon(mask)
        pts = np.round(poly * 16).astype(np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, 4)
        shade = tuple(int(c * 0.75) for c in colour)
        if mask == "surgical":  # pleats and ear loops
            for y in (135, 150, 165):
                cv2.line(img, (180, y), (268, y + 2), shade, 1, cv2.LINE_AA)
            cv2.line(img, (176, 122), (170, 112), shade, 2, cv2.LINE_AA)
            cv2.line(img, (272, 124), (278, 112), shade, 2, cv2.LINE_AA)
        elif mask == "n95":
            cv2.line(img, (224, 112), (224, 192), shade, 1, cv2.LINE_AA)
        else:
            cv2.polylines(img, [pts], True, shade, 2, cv2.LINE_AA, 4)
    if glasses:
        for cx, cy, ax, ay in glasses_ellipses():
            lens = img.copy()
            cv2.ellipse(lens, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, (60, 55, 50), -1, cv2.LINE_AA)
            img = cv2.addWeighted(lens, 0.35, img, 0.65, 0)
            cv2.ellipse(img, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, (20, 20, 20), 2, cv2.LINE_AA)
        (lx, ly), (rx, ry) = SRC_LANDMARKS[0], SRC_LANDMARKS[1]
        cv2.line(img, (int(lx + 16), int(ly - 2)), (int(rx - 16), int(ry - 2)), (20, 20, 20), 2, cv2.LINE_AA)
    return img, alpha


def thermal_template(photo_bgr: np.ndarray, canthus_c: float, ambient_c: float, mask: str, mask_temp_c: float | None,
                     glasses: bool, skin: SkinModel = SkinModel()) -> tuple[np.ndarray, np.ndarray]:
    """Apparent temperature of one person in source px: (512,512) float32 degC and alpha.

    The inner canthi are the hottest points (discs of ~7 mm radius at ``canthus_c``); every other
    region sits below them (SkinModel). A mask region takes ``mask_temp_c``; glasses are opaque
    in LWIR and show lens temperature over both eyes, hiding the canthi.
    """
    shape = (SRC_SIZE, SRC_SIZE)
    forehead = canthus_c + skin.forehead
    hair_c = ambient_c + skin.hair_frac * (forehead - ambient_c)
    cloth_c = ambient_c + skin.clothing_frac * (forehead - ambient_c)
    T = np.full(shape, cloth_c, np.float32)
    head = _ellipse_mask(shape, SRC_HEAD_ELLIPSE) * _not_backdrop(photo_bgr)  # same outline as in RGB
    T = T * (1 - head) + hair_c * head
    neck = np.zeros(shape, np.float32)
    cv2.fillPoly(neck, [np.array([[196, 160], [254, 160], [258, 192], [192, 192]], np.int32)], 1.0)
    T = T * (1 - neck) + (canthus_c + skin.neck) * neck
    face = _ellipse_mask(shape, SRC_FACE_ELLIPSE)
    # skin: forehead at the top blending into cheeks below the eyes
    yy = np.arange(SRC_SIZE, dtype=np.float32)[:, None] * np.ones((1, SRC_SIZE), np.float32)
    w = np.clip((yy - 100.0) / 25.0, 0.0, 1.0)
    skin_c = (canthus_c + skin.forehead) * (1 - w) + (canthus_c + skin.cheek) * w
    T = T * (1 - face) + skin_c * face
    for e, dv in ((SRC_NOSE_ELLIPSE, skin.nose), (SRC_MOUTH_ELLIPSE, skin.lips)):
        m = _ellipse_mask(shape, e)
        T = T * (1 - m) + (canthus_c + dv) * m
    for (ex, ey) in SRC_LANDMARKS[:2]:
        m = _ellipse_mask(shape, (ex, ey, 14.0, 9.0))
        T = T * (1 - m) + (canthus_c + skin.periorbital) * m
        m = _ellipse_mask(shape, (ex, ey, 6.5, 3.5))
        T = T * (1 - m) + (canthus_c + skin.eye_surface) * m
    T = cv2.GaussianBlur(T, (0, 0), 1.5)  # skin temperature varies smoothly
    # canthi: 7 mm radius plateau (4.9 src px at 1.43 mm/px) with a soft edge
    d = np.full(shape, np.inf, np.float32)
    xx = np.arange(SRC_SIZE, dtype=np.float32)[None, :]
    for cx, cy in SRC_CANTHI:
        d = np.minimum(d, np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2))
    hot = np.clip((6.0 - d) / 2.0, 0.0, 1.0)
    T = np.maximum(T, T * (1 - hot) + canthus_c * hot)
    if mask != "none":
        m = np.zeros(shape, np.float32)
        cv2.fillPoly(m, [np.round(mask_polygon(mask) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
        mt = mask_temp_c if mask_temp_c is not None else canthus_c - 1.8
        T = T * (1 - m) + mt * m
    if glasses:
        lens_c = ambient_c + skin.glasses_frac * (forehead - ambient_c)
        for e in glasses_ellipses():
            m = _ellipse_mask(shape, e)
            T = T * (1 - m) + lens_c * m
    body = np.zeros(shape, np.float32)
    cv2.fillPoly(body, [SRC_BODY_POLY], 1.0)
    alpha = cv2.GaussianBlur(np.maximum(head, body), (0, 0), 1.0)
    return T.astype(np.float32), alpha.astype(np.float32)


def source_to_rgb(eye_mid_rgb: tuple[float, float], scale: float, roll_deg: float) -> np.ndarray:
    """3x3 similarity taking source px to RGB px: scale and roll about the eye midpoint."""
    a = np.radians(roll_deg)
    c, s = np.cos(a) * scale, np.sin(a) * scale
    A = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    A[:2, 2] = np.asarray(eye_mid_rgb) - A[:2, :2] @ SRC_EYE_MID
    return A
