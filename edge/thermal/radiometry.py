"""Raw thermal pixels -> degrees Celsius.

Two kinds of input:

* **Linear radiometric** streams (PureThermal / Lepton "TLinear"): every count is a fixed step
  in kelvin -- 0.01 K (``centikelvin``) or 0.1 K (``decikelvin``). ``to_celsius`` handles them.
* **Raw sensor counts** (FLIR radiometric JPEG/FFF, Lepton without TLinear): the camera
  stores counts proportional to received radiance plus its Planck calibration (R1, R2, B, F, O).
  ``raw_to_celsius`` applies the published FLIR formula (as used by ExifTool's FLIR notes,
  Thermimage ``raw2temp`` and FLIR's ATS documentation): the counts are first corrected for
  the object's emissivity, the reflected apparent temperature, the atmosphere between camera
  and object (transmission from distance, air temperature and humidity with the camera's
  alpha/beta/X constants) and an optional IR window, then inverted through Planck's law.

Everything is vectorised numpy over the whole frame; no per-pixel Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.thermal.faststats import nanmedian

KELVIN_OFFSET = 273.15
UNIT_SCALE_K = {"centikelvin": 0.01, "decikelvin": 0.1}


def _unit_scale_k(units: str) -> float:
    """Kelvin per count of ``units``; ValueError naming the allowed units otherwise."""
    try:
        return UNIT_SCALE_K[units]
    except KeyError:
        raise ValueError(f"thermal units={units!r}; allowed: {sorted(UNIT_SCALE_K)}") from None


def to_celsius(raw: np.ndarray, units: str) -> np.ndarray:
    """Linear radiometric counts -> temperature.

    raw: (h,w) uint16 (any shape works) in ``units``: 'centikelvin' (0.01 K/count) or
        'decikelvin' (0.1 K/count).
    Returns float32 degC of the same shape. Counts of 0 (a dead/unset pixel on Lepton) are
    returned as NaN so they can never look like a temperature.
    """
    scale = _unit_scale_k(units)
    raw = np.asarray(raw)
    # counts -> float32 inside the multiply (exact for uint16), then in place: no temporaries
    out: np.ndarray = np.multiply(raw, np.float32(scale), dtype=np.float32)
    np.subtract(out, np.float32(KELVIN_OFFSET), out=out)
    if raw.dtype.kind in "ui":
        dead = raw == 0
        if dead.any():
            out[dead] = np.nan
    return out


def from_celsius(temp_c: np.ndarray, units: str = "centikelvin") -> np.ndarray:
    """Inverse of ``to_celsius``: degC -> uint16 counts (rounded, clipped to 1..65535)."""
    scale = _unit_scale_k(units)
    counts = np.rint((np.asarray(temp_c, dtype=np.float64) + KELVIN_OFFSET) / scale)
    return np.clip(counts, 1, 65535).astype(np.uint16)


@dataclass(frozen=True)
class PlanckParams:
    """A camera's radiometric calibration and the scene parameters for one measurement.

    Planck constants as FLIR stores them in CameraInfo: R1, R2, B (K), F, O (counts).
    emissivity: of the object (human skin 0.98).
    reflected_c: reflected apparent temperature, degC (what the skin mirrors: usually room).
    atmosphere_c: air temperature between camera and object, degC.
    humidity: relative humidity, 0..1.
    distance_m: object distance, metres (0 -> no atmospheric attenuation).
    ir_window_c / ir_window_transmission: temperature and transmission of a protective window
        in front of the lens (transmission 1 = no window).
    alpha1, alpha2, beta1, beta2, x: FLIR's atmospheric transmission constants.
    """

    r1: float = 21106.77
    r2: float = 0.012545258
    b: float = 1501.0
    f: float = 1.0
    o: float = -7340.0
    emissivity: float = 0.98
    reflected_c: float = 20.0
    atmosphere_c: float = 20.0
    humidity: float = 0.5
    distance_m: float = 1.0
    ir_window_c: float = 20.0
    ir_window_transmission: float = 1.0
    alpha1: float = 0.006569
    alpha2: float = 0.01262
    beta1: float = -0.002276
    beta2: float = -0.00667
    x: float = 1.9

    def __post_init__(self) -> None:
        checks = [
            ("emissivity", self.emissivity, 0.01, 1.0),
            ("humidity", self.humidity, 0.0, 1.0),
            ("distance_m", self.distance_m, 0.0, 10000.0),
            ("ir_window_transmission", self.ir_window_transmission, 0.01, 1.0),
        ]
        for name, val, lo, hi in checks:
            if not (lo <= val <= hi):
                raise ValueError(f"PlanckParams.{name}={val}; allowed range [{lo}, {hi}]")
        if self.r2 <= 0 or self.b <= 0:
            raise ValueError(f"PlanckParams: R2={self.r2} and B={self.b} must be > 0")


def atmospheric_transmission(p: PlanckParams) -> float:
    """Transmission of the air path (one of the two halves FLIR splits it into).

    FLIR models the path as camera -> window -> object with the window in the middle, so each
    half has length distance/2: tau = X*exp(-sqrt(d/2)*(a1 + b1*sqrt(H2O))) +
    (1-X)*exp(-sqrt(d/2)*(a2 + b2*sqrt(H2O))), with H2O the water vapour content from humidity
    and air temperature.
    """
    t = p.atmosphere_c
    h2o = p.humidity * math.exp(1.5587 + 0.06939 * t - 0.00027816 * t**2 + 0.00000068455 * t**3)
    s = math.sqrt(p.distance_m / 2.0)
    return p.x * math.exp(-s * (p.alpha1 + p.beta1 * math.sqrt(h2o))) + (1 - p.x) * math.exp(
        -s * (p.alpha2 + p.beta2 * math.sqrt(h2o)))


def _planck_raw(temp_c: float | np.ndarray, p: PlanckParams) -> float | np.ndarray:
    """Counts a blackbody at ``temp_c`` produces: R1 / (R2 * (exp(B/T) - F)) - O."""
    return p.r1 / (p.r2 * (np.exp(p.b / (np.asarray(temp_c, dtype=np.float64) + KELVIN_OFFSET)) - p.f)) - p.o


def _scene_counts(p: PlanckParams) -> tuple[float, float]:
    """(gain, extra): the camera records raw = gain * (S_obj + extra), with S_obj the object's
    blackbody counts, gain = e * tau^2 * window transmission and extra the counts, referred to
    the object, that the reflected surroundings, both air halves and the window add (FLIR's
    model assumes an anti-reflective window, so window reflections add nothing)."""
    e, tw = p.emissivity, p.ir_window_transmission
    tau = atmospheric_transmission(p)
    raw_refl = float(_planck_raw(p.reflected_c, p))
    raw_atm = float(_planck_raw(p.atmosphere_c, p))
    raw_wind = float(_planck_raw(p.ir_window_c, p))
    refl = (1 - e) / e * raw_refl
    atm1 = (1 - tau) / e / tau * raw_atm
    wind = (1 - tw) / e / tau / tw * raw_wind
    atm2 = (1 - tau) / e / tau / tw / tau * raw_atm
    return e * tau * tw * tau, atm1 + atm2 + wind + refl


def raw_to_celsius(raw: np.ndarray, p: PlanckParams) -> np.ndarray:
    """Raw sensor counts -> object temperature, degC (float32, same shape as ``raw``).

    Subtracts, in counts, what the atmosphere (two halves), the window and the reflected
    surroundings add, divides by emissivity x transmissions, and inverts Planck:
    T = B / ln(R1 / (R2 * (S + O)) + F) - 273.15. Counts that the model cannot invert (the
    corrected signal at or below -O) become NaN instead of a made-up temperature.
    """
    gain, extra = _scene_counts(p)
    raw_obj = np.asarray(raw, dtype=np.float64) / gain - extra
    with np.errstate(invalid="ignore", divide="ignore"):
        arg = p.r1 / (p.r2 * (raw_obj + p.o)) + p.f
        temp_c = p.b / np.log(arg) - KELVIN_OFFSET
    temp_c = np.where((raw_obj + p.o > 0) & (arg > 1), temp_c, np.nan)
    return temp_c.astype(np.float32)


def celsius_to_raw(temp_c: np.ndarray, p: PlanckParams) -> np.ndarray:
    """Inverse of ``raw_to_celsius`` (float64 counts): what the camera would record for an
    object at ``temp_c`` under the same scene parameters. Used by tests and the simulator."""
    gain, extra = _scene_counts(p)
    return (np.asarray(_planck_raw(temp_c, p), dtype=np.float64) + extra) * gain


class AmbientEstimator:
    """Ambient air temperature for the skin->core model (its ambient term is ~-0.1 degC of core
    per degC of ambient), degC.

    A fixed reading (a wall thermometer, ``station.ambient_c``) wins; otherwise the median of
    the blackbody-corrected scene -- walls and floor settle at air temperature indoors, and a
    face covers too little of the frame to move the median -- smoothed over frames so one
    frame full of people does not jump it. Every 4th pixel in each direction is plenty.
    """

    def __init__(self, fixed_c: float | None = None, smoothing: float = 0.1):
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing={smoothing}; allowed: 0 < smoothing <= 1")
        self.fixed_c = fixed_c
        self.smoothing = smoothing
        self.ambient_c: float | None = fixed_c

    def update(self, thermal_c: np.ndarray) -> float | None:
        """thermal_c: (h,w) float32 degC, corrected. Returns the current estimate, degC."""
        if self.fixed_c is not None:
            return self.fixed_c
        scene = nanmedian(thermal_c[::4, ::4])  # = np.nanmedian, without its overhead
        if np.isfinite(scene):
            prev = self.ambient_c
            self.ambient_c = scene if prev is None else prev + self.smoothing * (scene - prev)
        return self.ambient_c
