"""Thermal camera model: scene temperature -> optics -> microbolometer -> raw counts.

Order per frame (what a Lepton does, simplified):
  scene apparent temperature, rendered 3x supersampled  (edge/sim/render.py)
  -> optics blur (Gaussian PSF, ``blur_sigma_px`` thermal px) and pixel integration (area resample)
  -> + sensor offset: ``offset_c + drift_c_per_h * t`` plus the sum of FFC steps so far
  -> + fixed-pattern noise (per pixel and per column, constant for the stream)
  -> + temporal noise, N(0, NETD)
  -> during an FFC the shutter is closed and the camera repeats its last frame (frozen)
  -> dead pixels stuck at raw 0
  -> raw counts: round((T + 273.15) / scale), uint16 (0.01 K centi-kelvin by default)
The camera reports temperatures as a radiometric camera set to emissivity 0.98 does, so skin
(0.98) and the blackbody (0.98) read their true temperatures.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.sim.scenario import SensorSpec
from edge.thermal.radiometry import from_celsius

SUPERSAMPLE = 3


@dataclass
class FfcSchedule:
    """When each thermal frame is frozen / flagged, from the scenario's FFC start times."""

    times_s: list[float]
    imminent_s: float
    duration_s: float

    def state(self, t_s: float) -> str:
        """Telemetry FFC state at t_s: 'none' before the first FFC, then like a Lepton:
        'imminent' shortly before, 'in_progress' while the shutter is closed, and 'complete'
        from then on (the telemetry row keeps the last FFC's state until the next one)."""
        state = "none"
        for t0 in sorted(self.times_s):
            if t_s >= t0 + self.duration_s:
                state = "complete"
            elif t_s >= t0:
                return "in_progress"
            elif t_s >= t0 - self.imminent_s:
                return "imminent"
        return state

    def steps_before(self, t_s: float) -> int:
        """Number of FFCs that have finished by t_s (each adds one offset step)."""
        return sum(1 for t0 in self.times_s if t_s >= t0 + self.duration_s)

    def since_last_end_s(self, t_s: float) -> float:
        ends = [t0 + self.duration_s for t0 in self.times_s if t_s >= t0 + self.duration_s]
        return t_s - max(ends) if ends else float("inf")


@dataclass
class ThermalSensor:
    """Stateful per-stream sensor: fixed pattern and dead pixels drawn once from the stream's rng,
    ``expose(scene_c_ss, t_s)`` -> (raw (h,w) uint16 in the stream's units, telemetry FFC state)."""

    spec: SensorSpec
    width: int
    height: int
    rng: np.random.Generator
    fpn_c: np.ndarray = field(init=False)
    dead_yx: np.ndarray = field(init=False)
    ffc: FfcSchedule = field(init=False)
    _last_c: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        s = self.spec
        self.fpn_c = (self.rng.normal(0.0, s.fpn_c, (self.height, self.width))
                      + self.rng.normal(0.0, s.column_fpn_c, (1, self.width))).astype(np.float32)
        n = min(s.dead_pixels, self.width * self.height)
        flat = self.rng.choice(self.width * self.height, size=n, replace=False) if n else np.zeros(0, int)
        self.dead_yx = np.stack([flat // self.width, flat % self.width], axis=1).astype(int)
        self.ffc = FfcSchedule(list(s.ffc_times_s), s.ffc_imminent_s, s.ffc_duration_s)

    def offset_c(self, t_s: float) -> float:
        """Sensor offset at t_s (what the blackbody must measure and remove), degC."""
        s = self.spec
        return s.offset_c + s.drift_c_per_h * t_s / 3600.0 + s.ffc_step_c * self.ffc.steps_before(t_s)

    def optics(self, scene_c_ss: np.ndarray) -> np.ndarray:
        """Supersampled scene (H*SS, W*SS) degC -> blurred, pixel-integrated (H, W) degC."""
        sigma = self.spec.blur_sigma_px * SUPERSAMPLE
        img = cv2.GaussianBlur(scene_c_ss, (0, 0), sigma) if sigma > 0 else scene_c_ss
        return cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def expose(self, scene_c_ss: np.ndarray, t_s: float) -> tuple[np.ndarray, str]:
        """One frame from the supersampled scene (degC) at t_s; see the module docstring."""
        state = self.ffc.state(t_s)
        if state == "in_progress" and self._last_c is not None:
            img = self._last_c  # shutter closed: the camera repeats its last frame
        else:
            img = self.optics(scene_c_ss) + np.float32(self.offset_c(t_s)) + self.fpn_c
            img = img + self.rng.normal(0.0, self.spec.netd_mk / 1000.0, img.shape).astype(np.float32)
            self._last_c = img
        raw = from_celsius(img, self.spec.units)
        if len(self.dead_yx):
            raw[self.dead_yx[:, 0], self.dead_yx[:, 1]] = 0
        return raw, state
