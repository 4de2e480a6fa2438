"""Camera models of the simulated station: pinhole intrinsics, the thermal camera's pose relative
to the RGB camera, and the exact RGB px -> thermal px mapping for a face at depth Z.

Coordinates: the RGB camera's frame, metres, x right, y down, z forward (OpenCV convention).
A thermal camera centred at ``C`` (in RGB coordinates) with rotation ``R`` sees a point ``P`` at
``R (P - C)``. For points on the fronto-parallel plane z = Z (a face walking toward the station)
the exact mapping is the plane-induced homography

    H(Z) = K_t (R + t n^T / Z) K_rgb^-1,   t = -R C,  n = (0, 0, 1)

and since n^T K_rgb^-1 x = 1 for any pixel, H(Z) x = H_inf x + K_t t / Z. With R a pure roll
(rotation about the optical axis) and t_z = 0 that is exactly the calibration model
``thermal = H(Z_ref) x + parallax_px_m * (1/Z - 1/Z_ref)`` with ``parallax_px_m = f_t * (t_x, t_y)``;
small pitch/yaw add a residual we compute and write into truth (``model_max_error_px``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Thermal camera presets: (width, height, horizontal FOV deg, fps).
# Lepton 3.5: 160x120, 57 deg HFOV, 8.7 Hz export rate (FLIR Lepton 3.5 datasheet).
# 320x240 / 640x480: Boson-class cores with a 50 deg lens at the <9 Hz export frame rate.
THERMAL_PRESETS = {
    "lepton35": (160, 120, 57.0, 8.7),
    "boson320": (320, 240, 50.0, 8.7),
    "boson640": (640, 480, 50.0, 8.7),
}


@dataclass(frozen=True)
class PinholeCamera:
    """Ideal pinhole (no distortion). width/height px, hfov_deg horizontal field of view."""

    width: int
    height: int
    hfov_deg: float
    fps: float

    @property
    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def K(self) -> np.ndarray:
        f = self.focal_px
        return np.array([[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]])

    def project(self, P: np.ndarray) -> np.ndarray:
        """(N,3) metres in this camera's frame -> (N,2) pixels."""
        P = np.asarray(P, dtype=np.float64).reshape(-1, 3)
        uvw = P @ self.K.T
        return uvw[:, :2] / uvw[:, 2:3]


def rotation_xyz(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch), degrees."""
    a, b, c = (math.radians(v) for v in (pitch_deg, yaw_deg, roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class StationGeometry:
    """RGB camera at the origin; thermal camera at ``thermal_center_m`` rotated by ``R``."""

    rgb: PinholeCamera
    thermal: PinholeCamera
    thermal_center_m: tuple[float, float, float]
    thermal_rot_deg: tuple[float, float, float]  # pitch, yaw, roll
    reference_distance_m: float = 1.5

    @property
    def R(self) -> np.ndarray:
        return rotation_xyz(*self.thermal_rot_deg)

    @property
    def t(self) -> np.ndarray:
        return -self.R @ np.asarray(self.thermal_center_m, dtype=np.float64)

    def to_thermal_frame(self, P_rgb: np.ndarray) -> np.ndarray:
        """(N,3) points in RGB-camera metres -> thermal-camera metres."""
        P = np.asarray(P_rgb, dtype=np.float64).reshape(-1, 3)
        return P @ self.R.T + self.t

    def project_rgb(self, P: np.ndarray) -> np.ndarray:
        return self.rgb.project(P)

    def project_thermal(self, P: np.ndarray) -> np.ndarray:
        return self.thermal.project(self.to_thermal_frame(P))

    def homography_at(self, depth_m: float) -> np.ndarray:
        """Exact RGB px -> thermal px homography for the plane z = depth_m (normalised h33 = 1)."""
        n = np.array([[0.0, 0.0, 1.0]])
        H = self.thermal.K @ (self.R + self.t.reshape(3, 1) @ n / depth_m) @ np.linalg.inv(self.rgb.K)
        return H / H[2, 2]

    @property
    def parallax_px_m(self) -> tuple[float, float]:
        """Thermal-px shift per unit of 1/distance: f_t * (t_x, t_y) (the calibration's parallax)."""
        f = self.thermal.focal_px
        return (float(f * self.t[0]), float(f * self.t[1]))

    def model_map(self, xy_rgb: np.ndarray, depth_m: float) -> np.ndarray:
        """The calibration file's model: H(Z_ref) x + parallax * (1/Z - 1/Z_ref). (N,2) -> (N,2)."""
        out = apply_homography(self.homography_at(self.reference_distance_m), xy_rgb)
        k = np.asarray(self.parallax_px_m)
        return out + k * (1.0 / depth_m - 1.0 / self.reference_distance_m)

    def model_max_error_px(self, depths_m=(0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0)) -> float:
        """Worst |exact - model| over a grid of RGB pixels and depths, thermal px."""
        gx, gy = np.meshgrid(np.linspace(0, self.rgb.width - 1, 9), np.linspace(0, self.rgb.height - 1, 7))
        xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
        worst = 0.0
        for d in depths_m:
            exact = apply_homography(self.homography_at(d), xy)
            worst = max(worst, float(np.abs(exact - self.model_map(xy, d)).max()))
        return worst

    def calibration_numbers(self) -> dict:
        """The registration numbers a station calibration file holds (draft schema v1)."""
        H = self.homography_at(self.reference_distance_m)
        return {
            "homography": [[round(float(v), 9) for v in row] for row in H],
            "reference_distance_m": self.reference_distance_m,
            "parallax_px_m": [round(v, 6) for v in self.parallax_px_m],
            "rgb_focal_px": round(self.rgb.focal_px, 6),
            "thermal_focal_px": round(self.thermal.focal_px, 6),
            "model_max_error_px": round(self.model_max_error_px(), 4),
        }


def apply_homography(H: np.ndarray, xy: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(N,2) -> (N,2) through the 3x3 homography H."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    h = np.c_[xy, np.ones(len(xy))] @ np.asarray(H, dtype=np.float64).T
    return h[:, :2] / h[:, 2:3]


def make_station(
    thermal_preset: str = "lepton35",
    rgb_size: tuple[int, int] = (640, 480),
    rgb_hfov_deg: float = 50.0,
    rgb_fps: float = 30.0,
    thermal_center_m: tuple[float, float, float] = (0.045, 0.012, 0.0),
    thermal_rot_deg: tuple[float, float, float] = (0.25, -0.35, 0.8),
    reference_distance_m: float = 1.5,
    thermal_fps: float | None = None,
) -> StationGeometry:
    """The default simulated station ('sample-gate-1'): thermal core 4.5 cm right of and 1.2 cm
    below the RGB lens, mounted with a slight misalignment (0.25 deg pitch, -0.35 deg yaw,
    0.8 deg roll) so the mapping is a genuine homography, not a scale and shift."""
    if thermal_preset not in THERMAL_PRESETS:
        raise ValueError(f"thermal preset {thermal_preset!r}; allowed: {sorted(THERMAL_PRESETS)}")
    w, h, hfov, fps = THERMAL_PRESETS[thermal_preset]
    return StationGeometry(
        rgb=PinholeCamera(rgb_size[0], rgb_size[1], rgb_hfov_deg, rgb_fps),
        thermal=PinholeCamera(w, h, hfov, thermal_fps or fps),
        thermal_center_m=(*thermal_center_m,),  # a tuple even when a list is passed
        thermal_rot_deg=(*thermal_rot_deg,),
        reference_distance_m=reference_distance_m,
    )
