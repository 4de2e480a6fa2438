"""Shared test helpers for the astronaut face photo: its hand-measured box and a drawn mask."""
from __future__ import annotations

import cv2
import numpy as np

# The astronaut's face in the 512x512 portrait, measured by hand: forehead hairline to chin,
# ear to ear at eye height.
FACE_XYXY = np.array([178, 55, 274, 180], np.float32)


def draw_surgical_mask(bgr: np.ndarray, lm: np.ndarray, box: np.ndarray, colour=(235, 200, 150)) -> np.ndarray:
    """A filled light-blue mask from just above the nose tip to below the chin, cheek to cheek."""
    out = bgr.copy()
    nose_y = lm[2, 1] - 0.04 * (box[3] - box[1])
    x1, x2 = box[0] + 0.04 * (box[2] - box[0]), box[2] - 0.04 * (box[2] - box[0])
    poly = np.array([[x1, nose_y + 6], [(x1 + x2) / 2, nose_y - 4], [x2, nose_y + 6],
                     [x2 - 8, box[3] + 2], [(x1 + x2) / 2, box[3] + 8], [x1 + 8, box[3] + 2]], np.int32)
    cv2.fillPoly(out, [poly], colour, lineType=cv2.LINE_AA)
    return out
