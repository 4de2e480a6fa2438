"""Mask status per face ('yes' / 'no' / 'unknown' + confidence) from the RGB crop.

First version: compares how skin-like the lower face (mouth, chin) is with the upper face,
using the detector's landmarks. Replaced by the measured classifier in the next commit.
"""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from edge.configbase import StrictModel
from edge.types import Detections


class MaskConfig(StrictModel):
    min_face_px: float = Field(24.0, ge=4, le=2000,
                               description="Faces whose box height is below this get 'unknown', RGB px")
    min_confidence: float = Field(0.6, ge=0.5, le=1.0,
                                  description="Below this confidence the status is 'unknown', 0.5..1")


def _skin_fraction(ycrcb: np.ndarray) -> float:
    cr, cb = ycrcb[..., 1].astype(np.int16), ycrcb[..., 2].astype(np.int16)
    skin = (cr >= 133) & (cr <= 180) & (cb >= 70) & (cb <= 130)
    return float(skin.mean()) if skin.size else 0.0


def classify_masks(bgr: np.ndarray, dets: Detections, cfg: MaskConfig | None = None) -> Detections:
    cfg = cfg or MaskConfig()
    n = len(dets)
    status = np.full(n, "unknown", dtype=object)
    conf = np.zeros(n, np.float32)
    h, w = bgr.shape[:2]
    for i in range(n):
        x1, y1, x2, y2 = dets.box_xyxy[i]
        if y2 - y1 < cfg.min_face_px:
            continue
        lm = dets.landmarks_xy[i]
        mouth_y = int(round((lm[3, 1] + lm[4, 1]) / 2))
        eye_y = int(round((lm[0, 1] + lm[1, 1]) / 2))
        xa, xb = int(max(0, x1)), int(min(w, x2))
        lower = bgr[max(0, mouth_y - 3):min(h, int(y2)), xa:xb]
        upper = bgr[max(0, int(y1)):max(1, eye_y), xa:xb]
        if lower.size == 0 or upper.size == 0:
            continue
        lo = _skin_fraction(cv2.cvtColor(lower, cv2.COLOR_BGR2YCrCb))
        up = _skin_fraction(cv2.cvtColor(upper, cv2.COLOR_BGR2YCrCb))
        p_mask = float(np.clip(0.5 + (up - lo), 0, 1))
        c = max(p_mask, 1 - p_mask)
        conf[i] = c
        if c >= cfg.min_confidence:
            status[i] = "yes" if p_mask >= 0.5 else "no"
    return dets.with_data(mask=status, mask_conf=conf)
