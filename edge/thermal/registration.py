"""RGB pixels -> thermal pixels: a homography at a reference distance plus a parallax model.

The two cameras sit side by side (baseline b metres). A plane-induced homography maps points
exactly only at the distance it was fitted at; a face nearer or farther shifts in the thermal
image by ``f_thermal * b * (1/d - 1/d_ref)`` pixels (the disparity difference). So:

    thermal_xy = H(rgb_xy) + parallax_px_m * (1/d - 1/reference_distance_m)

with ``parallax_px_m = f_thermal_px * baseline`` as a 2-vector (direction of the baseline in
the thermal image) and each face's distance from its inter-ocular distance in RGB pixels,
``d = rgb_focal_px * iod_m / iod_px`` (adult mean IOD 63 mm). ``fit_registration`` estimates H
and the parallax vector from point pairs seen at several distances.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.thermal.colour import to_u8

MIN_DISTANCE_M = 0.2  # closer than this the IOD estimate is meaningless; clamp


@dataclass
class Registration:
    """homography: (3,3) RGB px -> thermal px at ``reference_distance_m``.
    parallax_px_m: (2,) thermal px x metres (shift per unit of 1/d). rgb_focal_px: RGB focal
    length in pixels. iod_m: assumed inter-ocular distance, metres."""

    homography: np.ndarray
    reference_distance_m: float = 1.5
    parallax_px_m: np.ndarray = field(default_factory=lambda: np.zeros(2))
    rgb_focal_px: float = 500.0
    iod_m: float = 0.063

    def __post_init__(self) -> None:
        self.homography = np.asarray(self.homography, dtype=np.float64).reshape(3, 3)
        self.parallax_px_m = np.asarray(self.parallax_px_m, dtype=np.float64).reshape(2)
        if not np.isfinite(self.homography).all() or abs(np.linalg.det(self.homography)) < 1e-12:
            raise ValueError("Registration.homography must be a finite, invertible 3x3 matrix")
        if not self.reference_distance_m > 0:
            raise ValueError(f"Registration.reference_distance_m={self.reference_distance_m}; must be > 0 m")
        if not self.rgb_focal_px > 0 or not self.iod_m > 0:
            raise ValueError(f"Registration: rgb_focal_px={self.rgb_focal_px} and iod_m={self.iod_m} must be > 0")

    @classmethod
    def identity_scaled(cls, rgb_wh: tuple[int, int], thermal_wh: tuple[int, int], **kw) -> Registration:
        """Plain scaling from the RGB to the thermal resolution (co-located optics, same FOV)."""
        sx, sy = thermal_wh[0] / rgb_wh[0], thermal_wh[1] / rgb_wh[1]
        return cls(np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1.0]]), **kw)

    def distance_m(self, iod_px: np.ndarray) -> np.ndarray:
        """(N,) distance estimate from inter-ocular distance in RGB px (NaN where iod <= 0)."""
        iod = np.asarray(iod_px, dtype=np.float64)
        d = np.full(iod.shape, np.nan)
        pos = iod > 0  # divide only there: no errstate needed (it costs more than the maths)
        d[pos] = np.maximum(self.rgb_focal_px * self.iod_m / iod[pos], MIN_DISTANCE_M)
        return d

    def parallax_shift(self, iod_px: np.ndarray | None, n: int) -> np.ndarray:
        """(n,2) thermal px to add after the homography; zeros if iod_px is None (or not finite)."""
        if iod_px is None:
            return np.zeros((n, 2))
        iod = np.asarray(iod_px, dtype=np.float64).reshape(-1)
        if len(iod) != n:
            raise ValueError(f"iod_px has {len(iod)} entries, expected one per face ({n})")
        if (iod > 0).all():  # the usual case, as distance_m without its NaN bookkeeping
            d = np.maximum(self.rgb_focal_px * self.iod_m / iod, MIN_DISTANCE_M)
            inv = 1.0 / d - 1.0 / self.reference_distance_m
        else:
            inv = 1.0 / self.distance_m(iod) - 1.0 / self.reference_distance_m  # d >= MIN or NaN
            inv[np.isnan(inv)] = 0.0
        return np.multiply.outer(inv, self.parallax_px_m)

    def map_points(self, xy: np.ndarray, iod_px: np.ndarray | None = None) -> np.ndarray:
        """RGB px -> thermal px. xy: (N,2) -- one point per face -- or (N,K,2) -- K points per
        face (landmarks); iod_px: (N,) RGB px per face, or None for no parallax correction.
        Returns float32 of the same shape."""
        pts = np.asarray(xy, dtype=np.float64)
        if pts.ndim not in (2, 3) or pts.shape[-1] != 2:
            raise ValueError(f"map_points: xy has shape {pts.shape}; expected (N,2) or (N,K,2)")
        n = pts.shape[0]
        flat = pts.reshape(-1, 2)
        if len(flat) == 0:
            return np.zeros(pts.shape, np.float32)
        h = self.homography
        den = flat @ h[2, :2] + h[2, 2]
        out = (flat @ h[:2, :2].T + h[:2, 2]) / den[:, None]
        shift = self.parallax_shift(iod_px, n)
        out = out.reshape(pts.shape) + (shift if pts.ndim == 2 else shift[:, None, :])
        return out.astype(np.float32)

def box_corners(box_xyxy: np.ndarray) -> np.ndarray:
    """(N,4) x1 y1 x2 y2 -> (N,4,2) corners (x1,y1) (x2,y1) (x2,y2) (x1,y2), to map with map_points."""
    b = np.asarray(box_xyxy).reshape(-1, 4)
    return b[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)


def corners_to_box(corners_xy: np.ndarray) -> np.ndarray:
    """(N,4,2) mapped corners -> (N,4) x1 y1 x2 y2: the box that bounds them."""
    return np.concatenate([corners_xy.min(axis=1), corners_xy.max(axis=1)], axis=1)


@dataclass
class RegistrationFit:
    registration: Registration
    rms_px: float  # RMS reprojection error in thermal px with the parallax model (inliers)
    rms_no_parallax_px: float  # same points, homography only (parallax_px_m = 0)
    n_points: int
    n_inliers: int
    parallax_fitted: bool  # False when all points were at one distance (parallax kept as given)


def fit_registration(rgb_xy: np.ndarray, thermal_xy: np.ndarray, distance_m: np.ndarray | None = None,
                     reference_distance_m: float = 1.5, rgb_focal_px: float = 500.0, iod_m: float = 0.063,
                     parallax_px_m: np.ndarray | None = None, ransac_px: float = 1.5) -> RegistrationFit:
    """Fit H (RANSAC) and, if the points span distances, the parallax vector.

    rgb_xy, thermal_xy: (M,2) matching points, px. distance_m: (M,) distance of each point's
    target from the cameras (None = all at the reference distance). Alternates: fit H on
    thermal points with the current parallax removed, then the parallax vector by least
    squares on the residuals against (1/d - 1/d_ref); four rounds with a tightening RANSAC
    threshold converge (the residual is linear in k).
    """
    src = np.asarray(rgb_xy, np.float64).reshape(-1, 2)
    dst = np.asarray(thermal_xy, np.float64).reshape(-1, 2)
    if len(src) != len(dst) or len(src) < 4:
        raise ValueError(f"fit_registration needs >= 4 matching point pairs, got {len(src)} and {len(dst)}")
    if distance_m is None:
        inv = np.zeros(len(src))
    else:
        inv = 1.0 / np.asarray(distance_m, np.float64).reshape(-1) - 1.0 / reference_distance_m
    k = np.zeros(2) if parallax_px_m is None else np.asarray(parallax_px_m, np.float64).reshape(2)
    fit_k = float(np.ptp(inv)) > 0.05  # need a spread of 1/d to separate parallax from H
    inliers = np.ones(len(src), bool)
    h = None
    # with parallax unknown, near/far points sit px away from one homography: start with a loose
    # RANSAC threshold to get k, then tighten
    for thr in ((8 * ransac_px, 3 * ransac_px, ransac_px, ransac_px) if fit_k else (ransac_px,)):
        target = dst - inv[:, None] * k[None, :]
        h, mask = cv2.findHomography(src, target, cv2.RANSAC, thr, maxIters=5000, confidence=0.999)
        if h is None:
            raise ValueError("findHomography failed: the points are degenerate (collinear or repeated)")
        inliers = mask.reshape(-1).astype(bool)
        if fit_k:
            proj = _project(h, src[inliers])
            resid = dst[inliers] - proj
            a = inv[inliers]
            k = (a @ resid) / max(a @ a, 1e-12)
    assert h is not None  # the loop runs at least once and raises when it finds none
    reg = Registration(h, reference_distance_m, k, rgb_focal_px, iod_m)
    pred = _project(h, src[inliers]) + inv[inliers, None] * k[None, :]
    rms = float(np.sqrt(np.mean(np.sum((pred - dst[inliers]) ** 2, axis=1))))
    h0, _ = cv2.findHomography(src, dst, cv2.RANSAC, ransac_px, maxIters=5000, confidence=0.999)
    pred0 = _project(h0 if h0 is not None else h, src[inliers])
    rms0 = float(np.sqrt(np.mean(np.sum((pred0 - dst[inliers]) ** 2, axis=1))))
    return RegistrationFit(reg, rms, rms0, len(src), int(inliers.sum()), fit_k)


def _project(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = cv2.perspectiveTransform(xy.reshape(-1, 1, 2).astype(np.float64), h)
    return p.reshape(-1, 2)


# ---------------------------------------------------------------- calibration targets

TARGET_KINDS = ("chessboard", "circles", "acircles")


def find_target(image: np.ndarray, kind: str = "chessboard", size: tuple[int, int] = (7, 5),
                upscale: int = 1) -> np.ndarray | None:
    """Locate a calibration target's points, (size[0]*size[1], 2) float64 px, or None.

    image: BGR uint8 (RGB camera) or (h,w) thermal (raw counts or degC; any polarity -- a heated
    board can be bright or dark). upscale: resize factor before detection (a 160x120 Lepton
    sees a square as ~6-10 px; detectors work better on an upscaled copy); points are returned
    in the original image's pixel coordinates.
    """
    if kind not in TARGET_KINDS:
        raise ValueError(f"target kind {kind!r}; allowed: {TARGET_KINDS}")
    g = to_u8(image)  # the image's 1st..99th percentile over 0..255
    if upscale > 1:
        g = cv2.resize(g, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    pts = None
    for img in (g, 255 - g):  # heated squares/circles may be the bright or the dark ones
        if kind == "chessboard":
            ok, c = cv2.findChessboardCornersSB(img, size, flags=cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY)
            if not ok:
                ok, c = cv2.findChessboardCorners(img, size, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
                if ok:
                    c = cv2.cornerSubPix(img, c, (5, 5), (-1, -1),
                                         (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.01))
        else:
            flag = cv2.CALIB_CB_SYMMETRIC_GRID if kind == "circles" else cv2.CALIB_CB_ASYMMETRIC_GRID
            ok, c = cv2.findCirclesGrid(img, size, flags=flag)
        if ok:
            pts = c.reshape(-1, 2).astype(np.float64)
            break
    if pts is None:
        return None
    if upscale > 1:  # pixel centres: u_small = (u_big + 0.5) / s - 0.5
        pts = (pts + 0.5) / upscale - 0.5
    return pts


def match_order(rgb_pts: np.ndarray, rgb_wh: tuple[int, int], th_pts: np.ndarray,
                th_wh: tuple[int, int]) -> np.ndarray:
    """A symmetric grid can be reported in either of two orders (180 deg apart). The cameras
    look the same way, so choose the thermal order whose first and last points sit at the same
    relative image positions as the RGB ones."""
    r = rgb_pts / np.asarray(rgb_wh, float)
    t = th_pts / np.asarray(th_wh, float)
    tr = t[::-1]
    same = np.linalg.norm(r[0] - t[0]) + np.linalg.norm(r[-1] - t[-1])
    flipped = np.linalg.norm(r[0] - tr[0]) + np.linalg.norm(r[-1] - tr[-1])
    return th_pts if same <= flipped else th_pts[::-1].copy()


def grid_pitch_px(pts: np.ndarray, size: tuple[int, int]) -> float:
    """Median distance between neighbouring grid points, px (rows of size[0] points)."""
    g = pts.reshape(size[1], size[0], 2)
    d = np.concatenate([np.linalg.norm(np.diff(g, axis=1), axis=2).ravel(),
                        np.linalg.norm(np.diff(g, axis=0), axis=2).ravel()])
    return float(np.median(d))
