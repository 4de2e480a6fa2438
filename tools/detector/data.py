"""Training data for the detector fine-tune (numpy + OpenCV only, so it is tested without PyTorch).

``augment`` turns one labelled photo into one network input with the faces to teach and the
faces to ignore; ``targets`` turns those boxes into CenterFace's training targets, encoded the
way ``edge.vision.detection.CenterFaceDetector`` decodes them (tests/tools/test_detector_data.py
decodes them back with the product's own decoder).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from edge.eval.faces import load_manifest

STRIDE = 4  # the graph's output stride: one heatmap cell per 4x4 input px


def load_photos(directory: Path) -> list[tuple[Path, np.ndarray, np.ndarray, list[str]]]:
    """(path, BGR image, boxes (M,4) xyxy, labels) for every photo of a labelled folder."""
    out = []
    for im in load_manifest(directory).images:
        bgr = cv2.imread(str(im.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{im.path}: not a readable image")
        out.append((im.path, bgr, im.boxes_xyxy.astype(np.float32), im.labels))
    return out


def epoch_order(photos: list, oversample_unmasked: int, rng: np.random.Generator) -> np.ndarray:
    """Photo indices for one epoch, shuffled; photos with an unmasked face appear
    ``oversample_unmasked`` times (unmasked faces are a fifth of the labels, and the fine-tune
    must not trade them for masked ones)."""
    reps = [oversample_unmasked if "without_mask" in p[3] else 1 for p in photos]
    return rng.permutation(np.repeat(np.arange(len(photos)), reps))


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift that keeps IoU >= min_overlap."""
    a1, b1, c1 = 1, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return max(0.0, min(r1, r2, r3))


def augment(bgr: np.ndarray, boxes: np.ndarray, cfg: dict, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training input (H,W,3) uint8 BGR at the network size, the boxes that are taught as
    faces (K,4) and the boxes whose cells are ignored (J,4), input px."""
    in_w, in_h = cfg["input_wh"]
    h, w = bgr.shape[:2]
    lo, hi = cfg["zoom_range"]
    s = min(in_w / w, in_h / h) * math.exp(rng.uniform(math.log(lo), math.log(hi)))
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    img = cv2.resize(bgr, (rw, rh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    b = boxes * s
    # place: crop a window of the input size out of the scaled photo, or pad it (black, like the letterbox)
    ox = rng.integers(0, rw - in_w + 1) if rw > in_w else -int(rng.integers(0, in_w - rw + 1))
    oy = rng.integers(0, rh - in_h + 1) if rh > in_h else -int(rng.integers(0, in_h - rh + 1))
    canvas = np.zeros((in_h, in_w, 3), np.uint8)
    sx0, sy0 = max(0, ox), max(0, oy)
    dx0, dy0 = max(0, -ox), max(0, -oy)
    cw, ch = min(rw - sx0, in_w - dx0), min(rh - sy0, in_h - dy0)
    canvas[dy0:dy0 + ch, dx0:dx0 + cw] = img[sy0:sy0 + ch, sx0:sx0 + cw]
    b = b - np.array([ox, oy, ox, oy], np.float32)
    if rng.random() < cfg["flip_p"]:
        canvas = canvas[:, ::-1].copy()
        b = np.stack([in_w - b[:, 2], b[:, 1], in_w - b[:, 0], b[:, 3]], axis=1) if len(b) else b
    if rng.random() < cfg["gray_p"]:
        canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    dh, ds, dv = cfg["hsv_jitter"]
    hsv = cv2.cvtColor(canvas, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-dh, dh)) % 180
    hsv[..., 1] *= rng.uniform(1 - ds, 1 + ds)
    hsv[..., 2] *= rng.uniform(1 - dv, 1 + dv)
    canvas = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    if rng.random() < cfg["blur_p"]:
        k = int(rng.choice([3, 5]))
        canvas = cv2.GaussianBlur(canvas, (k, k), 0)
    if rng.random() < cfg["jpeg_p"]:
        q = int(rng.integers(*cfg["jpeg_quality"]))
        canvas = cv2.imdecode(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)
    if len(b) == 0:
        return canvas, b.reshape(0, 4), b.reshape(0, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    c = b.copy()
    c[:, 0::2] = c[:, 0::2].clip(0, in_w)
    c[:, 1::2] = c[:, 1::2].clip(0, in_h)
    vis = (c[:, 2] - c[:, 0]).clip(0) * (c[:, 3] - c[:, 1]).clip(0) / np.maximum(area, 1e-6)
    present = vis > 0
    teach = present & (vis >= cfg["min_visible_fraction"]) & (b[:, 3] - b[:, 1] >= cfg["min_positive_px"])
    return canvas, b[teach], c[present & ~teach]


def targets(pos_boxes: np.ndarray, ign_boxes: np.ndarray, h4: int, w4: int):
    """Heatmap (h4,w4) Gaussian targets, ignore mask (h4,w4) 1 = use, and per face the centre
    cell (y, x), log size (h, w) and offset (dy, dx) targets, as CenterFace decodes them."""
    heat = np.zeros((h4, w4), np.float32)
    use = np.ones((h4, w4), np.float32)
    yy, xx = np.mgrid[0:h4, 0:w4]
    cells, sizes, offs = [], [], []
    for x1, y1, x2, y2 in ign_boxes:
        use[int(y1 // STRIDE):int(math.ceil(y2 / STRIDE)), int(x1 // STRIDE):int(math.ceil(x2 / STRIDE))] = 0
    for x1, y1, x2, y2 in pos_boxes:
        bh, bw = y2 - y1, x2 - x1
        cy, cx = (y1 + y2) / 2 / STRIDE, (x1 + x2) / 2 / STRIDE
        iy, ix = min(h4 - 1, max(0, int(cy))), min(w4 - 1, max(0, int(cx)))
        r = max(0, int(gaussian_radius(bh / STRIDE, bw / STRIDE)))
        sigma = (2 * r + 1) / 6
        g = np.exp(-((yy - iy) ** 2 + (xx - ix) ** 2) / (2 * sigma ** 2))
        heat = np.maximum(heat, g)
        heat[iy, ix] = 1.0
        cells.append((iy, ix))
        sizes.append((math.log(bh / STRIDE), math.log(bw / STRIDE)))
        offs.append((cy - iy - 0.5, cx - ix - 0.5))
    return heat, use, cells, sizes, offs
