"""RGB side of the scene: a synthetic entrance background, compositing of the person cut-outs,
lighting, motion blur and sensor noise."""
from __future__ import annotations

import cv2
import numpy as np


def background(width: int, height: int, rng: np.random.Generator, brightness: float = 1.0) -> np.ndarray:
    """A plausible station entrance: lit wall with a vertical light gradient, floor, a door,
    a couple of notices. (H,W,3) uint8 BGR; seeded."""
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = np.array(rng.uniform([150, 160, 170], [200, 205, 215]), np.float32)
    img = np.broadcast_to(wall * (1.08 - 0.25 * yy), (height, width, 3)).copy()
    floor_y = int(height * rng.uniform(0.72, 0.8))
    img[floor_y:] = np.array(rng.uniform([70, 80, 90], [110, 115, 125]), np.float32)
    dx = int(width * rng.uniform(0.05, 0.25))
    cv2.rectangle(img, (dx, int(height * 0.12)), (dx + int(width * 0.18), floor_y), tuple(float(v) for v in rng.uniform(60, 120, 3)), -1)
    for _ in range(3):
        x, y = int(rng.uniform(0.3, 0.9) * width), int(rng.uniform(0.1, 0.5) * height)
        w, h = int(rng.uniform(0.04, 0.1) * width), int(rng.uniform(0.06, 0.14) * height)
        cv2.rectangle(img, (x, y), (x + w, y + h), tuple(float(v) for v in rng.uniform(40, 250, 3)), -1)
    texture = cv2.GaussianBlur(rng.normal(0, 6, (height, width)).astype(np.float32), (0, 0), 2.0)
    img = img * brightness + texture[:, :, None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def draw_blackbody(img: np.ndarray, corners_xy: np.ndarray, occluded: bool) -> None:
    """The blackbody's housing and aperture as the RGB camera sees it (in place, uint8 BGR)."""
    c = corners_xy.astype(np.float32)
    centre = c.mean(axis=0)
    housing = (centre + (c - centre) * 1.6).round().astype(np.int32)
    cv2.fillConvexPoly(img, housing, (70, 70, 75), cv2.LINE_AA)
    cv2.fillConvexPoly(img, c.round().astype(np.int32), (25, 25, 25), cv2.LINE_AA)
    if occluded:  # a sheet of cardboard held in front of it
        card = (centre + (c - centre) * 2.2).round().astype(np.int32)
        cv2.fillConvexPoly(img, card, (120, 165, 200), cv2.LINE_AA)


def motion_kernel(dx_px: float, dy_px: float) -> np.ndarray | None:
    """Line kernel for a displacement of (dx, dy) px during the exposure; None if under 1.5 px."""
    length = float(np.hypot(dx_px, dy_px))
    if length < 1.5:
        return None
    size = int(np.ceil(length)) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    ux, uy = dx_px / length, dy_px / length
    for s in np.linspace(-length / 2, length / 2, max(2, int(length * 2))):
        k[int(round(c + s * uy)), int(round(c + s * ux))] += 1.0
    return k / k.sum()


def pyramid(cutout: np.ndarray, alpha: np.ndarray, levels: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Halved copies of a person's cut-out, so warps never shrink by more than 2x (no aliasing)."""
    out = [(cutout, alpha)]
    for _ in range(levels - 1):
        c, a = out[-1]
        out.append((cv2.pyrDown(c), cv2.pyrDown(a)))
    return out


def composite_person(frame: np.ndarray, levels: list[tuple[np.ndarray, np.ndarray]], A: np.ndarray, gain: float,
                     blur: np.ndarray | None) -> tuple[int, int, np.ndarray] | None:
    """Warp one person (source px, BGR + alpha pyramid) by the 2x3 affine ``A`` into ``frame``
    (uint8 BGR, in place), scaled by the lighting gain and smeared by the motion-blur kernel.
    Returns where the person landed, ``(x0, y0, alpha)`` (alpha float32 0..1 from frame px
    (x0, y0)), so the caller can tell how much of a farther face this person hides; None if the
    person lands outside the frame.
    Everything stays uint8 except the blur (premultiplied, float32): OpenCV's saturating
    uint8 kernels are 2-3x faster than float on full frames."""
    h, w = frame.shape[:2]
    scale = float(np.sqrt(abs(np.linalg.det(A[:2, :2]))))
    lvl = int(min(len(levels) - 1, max(0, np.floor(np.log2(1.0 / scale))))) if scale < 1 else 0
    cutout, alpha = levels[lvl]
    f = float(2 ** lvl)  # level px u_l -> source px u = f * (u_l + 0.5) - 0.5
    A = A @ np.array([[f, 0, 0.5 * f - 0.5], [0, f, 0.5 * f - 0.5], [0, 0, 1]])
    # Warp only the bounding box the person lands in (a cheap, exact crop of the full warp).
    sh, sw = alpha.shape
    corners = np.array([[0, 0, 1], [sw - 1, 0, 1], [0, sh - 1, 1], [sw - 1, sh - 1, 1]], np.float64) @ A.T
    pad = 2 + (blur.shape[0] if blur is not None else 0)
    x0, y0 = max(0, int(corners[:, 0].min()) - pad), max(0, int(corners[:, 1].min()) - pad)
    x1, y1 = min(w, int(corners[:, 0].max()) + pad + 1), min(h, int(corners[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    Ac = A[:2].copy()
    Ac[0, 2] -= x0
    Ac[1, 2] -= y0
    size = (x1 - x0, y1 - y0)
    layer = cv2.warpAffine(cutout, Ac, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if gain != 1.0:
        layer = cv2.convertScaleAbs(layer, alpha=gain)
    a = cv2.warpAffine(alpha, Ac, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if blur is not None:  # blur the premultiplied layer and alpha alike, then un-premultiply
        premult = cv2.filter2D(layer.astype(np.float32) * a[:, :, None], -1, blur)
        a = cv2.filter2D(a, -1, blur)
        layer = cv2.convertScaleAbs(premult / np.maximum(a, 1e-3)[:, :, None])
    roi = frame[y0:y1, x0:x1]
    roi[:] = cv2.blendLinear(layer, roi, a, 1.0 - a)  # OpenCV: one pass, no temporaries
    return x0, y0, a


def hidden_fraction(box_xyxy: list[float], covers: list[tuple[int, int, np.ndarray]]) -> float:
    """How much of a face box (frame px) the layers composited over it hide, 0..1: the mean over
    the box's pixels of the largest alpha any of ``covers`` ((x0, y0, alpha) from
    ``composite_person``) has there."""
    bx0, by0 = int(np.floor(box_xyxy[0])), int(np.floor(box_xyxy[1]))
    bx1, by1 = int(np.ceil(box_xyxy[2])), int(np.ceil(box_xyxy[3]))
    if bx1 <= bx0 or by1 <= by0:
        return 0.0
    hidden = np.zeros((by1 - by0, bx1 - bx0), np.float32)
    for x0, y0, a in covers:
        ix0, iy0 = max(bx0, x0), max(by0, y0)
        ix1, iy1 = min(bx1, x0 + a.shape[1]), min(by1, y0 + a.shape[0])
        if ix1 > ix0 and iy1 > iy0:
            sub = hidden[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0]
            np.maximum(sub, a[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0], out=sub)
    return float(hidden.mean())


def noise_bank(rng: np.random.Generator, n: int, shape: tuple[int, ...], sigma: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` frames of N(0, sigma) sensor noise split into (positive, negative) uint8 parts, so
    adding it is two saturating uint8 operations."""
    out = []
    for _ in range(n):
        z = np.round(rng.normal(0.0, sigma, shape))
        out.append((np.clip(z, 0, 255).astype(np.uint8), np.clip(-z, 0, 255).astype(np.uint8)))
    return out


def finish(frame: np.ndarray, bank: list[tuple[np.ndarray, np.ndarray]], index: int) -> np.ndarray:
    """Add sensor noise (cycled from the seeded bank) to a uint8 BGR frame, saturating."""
    pos, neg = bank[index % len(bank)]
    return cv2.subtract(cv2.add(frame, pos), neg)
