"""Blackbody reference: measure it every frame, correct the frame by its offset, and fail closed.

Uncooled microbolometers (Lepton) drift by tenths of a degree to degrees over an hour and jump
at every flat-field correction (FFC). A blackbody at a known set point in the field of view
turns that into a measured offset: ``offset_c = expected_c - measured_c``, added to the whole
frame (one vectorised add, ``apply_offset``).

States (``BlackbodyStatus.state``), checked in this order every frame:

* ``disabled`` -- the station has no blackbody (config); offset 0. Verdicts are then only as
  good as the camera's own accuracy; the measurement stage decides whether to allow them.
* ``ffc`` -- the camera reports FFC imminent / in progress (``edge.types.FFC_ACTIVE``), or the
  station's one after-FFC timer (``measurement.FfcSettle``, ``measurement.ffc_settle_ms``, passed
  in as ``ffc_active``) says it is still settling (telemetry then reads 'complete' -- and keeps
  reading 'complete' until the next FFC, so that state alone suppresses nothing). Measurements are suppressed (the
  shutter image is not the scene, and the offset steps at FFC); the last good offset is kept.
  After FFC the averaging window restarts so the step is not smeared over old frames.
* ``missing`` -- no reference: the ROI does not read like the blackbody (occluded, switched
  off, never found at start-up) and no matching patch is visible elsewhere.
* ``moved`` -- the ROI no longer holds the blackbody but a patch of the same size and reading
  is visible elsewhere: someone knocked the camera or the stand. Stays until restart or
  ``relocate()`` -- a silent re-lock could latch onto a forehead.
* ``unstable`` -- the ROI still reads roughly right but is noisy (spatial SD, temporal SD) or
  jumped between frames beyond a bound, or it is settling: ``recover_frames`` consecutive good
  frames are needed (at start-up too), and after a fault they must also span ``recover_s``.
* ``ok`` -- offset measured this frame from the mean of the last ``average_frames`` good frames.

The reading is the mean of the ROI without its 1-px border (the optics blur pulls edge pixels
towards the colder surroundings). "Elsewhere" candidates for ``moved`` must be as uniform and
as warm as the blackbody AND stand out on all four sides as it did (a forehead or a hand is
uniform and warm too, but has skin on at least one side).

While the state is not ``ok`` the pipeline must not report normal/elevated: subjects become
indeterminate with reason ``blackbody_<state>`` (``status.gate_reason``).
"""
from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from edge.configbase import StrictModel
from edge.thermal.faststats import mean_std, nanmean_std
from edge.types import FFC_ACTIVE

STATES = ("ok", "unstable", "moved", "missing", "disabled", "ffc")


class BlackbodyConfig(StrictModel):
    enabled: bool = Field(True, description="a blackbody reference is in the thermal view")
    setpoint_c: float = Field(35.0, ge=20.0, le=50.0, description="blackbody set point, degC")
    emissivity: float = Field(0.98, ge=0.5, le=1.0, description="blackbody surface emissivity (0..1)")
    camera_emissivity: float | None = Field(
        None, ge=0.5, le=1.0,
        description="emissivity the camera's radiometry assumes; None = same as `emissivity` (no correction)")
    reflected_c: float = Field(22.0, ge=-20.0, le=50.0, description="reflected apparent temperature at the blackbody, degC")
    roi_xywh: list[int] | None = Field(
        None, description="blackbody region in thermal pixels [x, y, w, h]; None = find it automatically at start-up")
    auto_tolerance_c: float = Field(3.0, ge=0.1, le=10.0, description="start-up search: max |reading - set point|, degC")
    auto_min_area_px: int = Field(9, ge=1, le=10000, description="start-up search: smallest blackbody area, thermal px")
    auto_max_area_px: int = Field(
        200, ge=1, le=100000, description="start-up search: largest blackbody area, thermal px (keeps faces out)")
    max_spatial_sd_c: float = Field(0.3, gt=0.0, le=5.0, description="bound on the SD of pixels inside the ROI, degC")
    max_temporal_sd_c: float = Field(
        0.2, gt=0.0, le=5.0, description="bound on the SD of the ROI reading over the averaging window, degC")
    max_jump_c: float = Field(
        0.3, gt=0.0, le=5.0, description="bound on the frame-to-frame change of the ROI reading, degC")
    missing_delta_c: float = Field(
        1.0, gt=0.0, le=10.0,
        description="ROI reading this far from the reference reading means it is not the blackbody, degC")
    average_frames: int = Field(8, ge=1, le=1000, description="good frames averaged into the offset")
    recover_frames: int = Field(
        3, ge=1, le=1000, description="consecutive good frames needed before ok (also at start-up)")
    recover_s: float = Field(1.0, ge=0.0, le=60.0,
                             description="after a missing/moved/unstable spell, good frames must also span this long, s")

    @model_validator(mode="before")
    @classmethod
    def _settle_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "settle_s" in data:
            raise ValueError("settle_s: the after-FFC settle time is the station config's measurement.ffc_settle_ms "
                             "now (one timer for the blackbody and the measurement gate); remove it here")
        return data

    @field_validator("roi_xywh")
    @classmethod
    def _check_roi(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 4 or v[2] < 1 or v[3] < 1 or v[0] < 0 or v[1] < 0):
            raise ValueError(f"roi_xywh={v}: expected [x, y, w, h] with x, y >= 0 and w, h >= 1 thermal px")
        return v

    def expected_c(self) -> float:
        """Apparent temperature the camera should read on the blackbody, degC.

        Equal to the set point when the camera assumes the blackbody's emissivity; otherwise the
        grey-body radiance balance (Stefan-Boltzmann, a good approximation over 8-14 um near
        300 K): e_bb*T^4 + (1-e_bb)*Tr^4 = e_cam*Ta^4 + (1-e_cam)*Tr^4.
        """
        e_cam = self.emissivity if self.camera_emissivity is None else self.camera_emissivity
        if abs(e_cam - self.emissivity) < 1e-9:
            return self.setpoint_c
        t, tr = self.setpoint_c + 273.15, self.reflected_c + 273.15
        ta4 = (self.emissivity * t**4 + (1 - self.emissivity) * tr**4 - (1 - e_cam) * tr**4) / e_cam
        return ta4 ** 0.25 - 273.15


@dataclass
class BlackbodyStatus:
    """Result of one frame. measured_c: ROI reading this frame (mean without the 1-px border,
    uncorrected), NaN if none.
    offset_c: what to add to the frame (last good value while not ok; 0 before the first).
    reason: human-readable why, '' when ok. roi_xywh: current ROI or None."""

    state: str
    measured_c: float
    offset_c: float
    reason: str = ""
    roi_xywh: tuple[int, int, int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def gate_reason(self) -> str:
        """'' when ok, else the indeterminate reason the measurement stage uses."""
        return "" if self.state == "ok" else f"blackbody_{self.state}"


def apply_offset(thermal_c: np.ndarray, status: BlackbodyStatus, out: np.ndarray | None = None) -> np.ndarray:
    """Return ``thermal_c + status.offset_c`` ((h,w) float32 degC); pass ``out=thermal_c`` to
    correct in place. One vectorised add."""
    return np.add(thermal_c, np.float32(status.offset_c), out=out, dtype=np.float32)


def _local_stats(img: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of every w x h window (top-left anchored), each (H-h+1, W-w+1)."""
    f = np.nan_to_num(img.astype(np.float64), nan=-1000.0)
    mean = cv2.boxFilter(f, cv2.CV_64F, (w, h), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REPLICATE)
    sq = cv2.boxFilter(f * f, cv2.CV_64F, (w, h), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REPLICATE)
    hh, ww = img.shape[0] - h + 1, img.shape[1] - w + 1
    mean, sq = mean[:hh, :ww], sq[:hh, :ww]
    return mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))


def find_patch(thermal_c: np.ndarray, target_c: float, tol_c: float, max_sd_c: float,
               min_area_px: int, max_area_px: int = 200) -> tuple[int, int, int, int] | None:
    """Locate a compact uniform patch reading within ``tol_c`` of ``target_c``.

    Pixels close to the target whose 3x3 neighbourhood is smooth form candidate blobs; the
    blob whose median is closest to the target, with min_area_px <= area <= max_area_px and
    filling most of its bounding box (a blackbody aperture is a square or disc), wins.
    Returns its bounding box grown by the 1-px ring the smoothness test removes (x, y, w, h),
    or None; the monitor reads the box without that border.
    """
    img = np.nan_to_num(thermal_c.astype(np.float32), nan=-1000.0)
    mean3 = cv2.blur(img, (3, 3))
    sd3 = np.sqrt(np.maximum(cv2.blur(img * img, (3, 3)) - mean3 * mean3, 0))
    mask = ((np.abs(img - target_c) <= tol_c) & (sd3 <= max_sd_c)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    best, best_err = None, np.inf
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if not (min_area_px <= area <= max_area_px) or area < 0.6 * w * h:
            continue
        err = abs(float(np.median(img[labels == i])) - target_c)
        if err < best_err:
            best, best_err = (int(x), int(y), int(w), int(h)), err
    if best is None:
        return None
    # the smoothness test drops the ring of aperture pixels next to the edge: give it back (the
    # monitor trims the ROI's border again when it reads it)
    x, y, w, h = best
    x0, y0 = max(0, x - 1), max(0, y - 1)
    x1, y1 = min(img.shape[1], x + w + 1), min(img.shape[0], y + h + 1)
    return x0, y0, x1 - x0, y1 - y0


class BlackbodyMonitor:
    """Per-frame blackbody tracking; see the module docstring for the states.

    ``update(thermal_c, ffc_state, t_ns)`` takes the (h,w) float32 degC frame BEFORE correction
    and returns a BlackbodyStatus; correct the frame with ``apply_offset``.
    """

    def __init__(self, cfg: BlackbodyConfig | None = None):
        self.cfg = cfg or BlackbodyConfig()
        self.expected_c = self.cfg.expected_c()
        roi = self.cfg.roi_xywh  # four ints (validated)
        self.roi: tuple[int, int, int, int] | None = (roi[0], roi[1], roi[2], roi[3]) if roi else None
        self._good: deque[float] = deque(maxlen=self.cfg.average_frames)
        self._ref_c: float | None = None  # last good ROI reading (tracks drift)
        self._offset_c = 0.0
        self._prev_c: float | None = None
        self._in_ffc = False
        self._good_run = 0
        self._good_since_ns = 0
        self._was_ok = False
        self._had_fault = False  # recover_s applies only after a fault, not at start-up
        self._contrast_c = float("nan")  # ROI minus its surroundings when last ok, degC
        # (window, roi within it, inside_c) of the last good frame, whose contrast is known to be
        # finite but is computed only if _search_elsewhere ever needs it (rarely)
        self._contrast_pending: tuple[np.ndarray, tuple[int, int, int, int], float] | None = None
        self.last_t_ns: int | None = None

    def relocate(self) -> None:
        """Forget the ROI and reference; the next frames search for the blackbody again."""
        self.roi = None
        self._ref_c = None
        self._good.clear()
        self._prev_c = None
        self._good_run = 0

    def _status(self, state: str, measured: float, reason: str) -> BlackbodyStatus:
        if state not in ("ok", "ffc"):  # FFC has its own settle period
            self._good_run = 0
            self._had_fault = self._had_fault or self._was_ok or self._ref_c is not None
            self._was_ok = False
        return BlackbodyStatus(state, measured, self._offset_c, reason, self.roi)

    def update(self, thermal_c: np.ndarray, ffc_state: str = "none", t_ns: int = 0,
               ffc_active: bool | None = None) -> BlackbodyStatus:
        """ffc_active: the station's one after-FFC timer (measurement.FfcSettle: the FFC or its
        settle time); None = only the FFC states themselves (FFC_ACTIVE), no settle time."""
        cfg = self.cfg
        self.last_t_ns = t_ns
        if not cfg.enabled:
            return BlackbodyStatus("disabled", float("nan"), 0.0, "no blackbody configured", None)
        if ffc_active is None:
            ffc_active = ffc_state in FFC_ACTIVE
        if ffc_active:
            self._in_ffc = True
            return self._status("ffc", float("nan"), f"FFC {ffc_state}" if ffc_state in FFC_ACTIVE
                                else "settling after FFC")
        if self._in_ffc:  # first frame after the FFC and its settle time: the offset may have stepped
            self._in_ffc = False
            self._good.clear()
            self._prev_c = None

        if self.roi is None:
            found = find_patch(thermal_c, self.expected_c, cfg.auto_tolerance_c, cfg.max_spatial_sd_c,
                               cfg.auto_min_area_px, cfg.auto_max_area_px)
            if found is None:
                return self._status("missing", float("nan"), "blackbody not found in the thermal view")
            self.roi = found

        x, y, w, h = self.roi
        if x + w > thermal_c.shape[1] or y + h > thermal_c.shape[0]:
            return self._status("missing", float("nan"), f"roi {self.roi} outside the {thermal_c.shape[::-1]} frame")
        measured, spatial_sd = nanmean_std(roi_core(thermal_c, self.roi))  # (nan, inf) if no pixel
        ref = self._ref_c if self._ref_c is not None else self.expected_c
        tol = cfg.missing_delta_c if self._ref_c is not None else cfg.auto_tolerance_c
        consistent = np.isfinite(measured) and abs(measured - ref) <= tol

        if not consistent or spatial_sd > 2 * cfg.max_spatial_sd_c:
            elsewhere = self._search_elsewhere(thermal_c, ref)
            if elsewhere is not None:
                return self._status("moved", measured, f"blackbody no longer at roi {self.roi}; seen at {elsewhere}")
            if not consistent:
                return self._status("missing", measured,
                                    f"roi reads {measured:.2f} degC, expected {ref:.2f} +- {tol:.2f}")
        if spatial_sd > cfg.max_spatial_sd_c:
            return self._status("unstable", measured, f"roi spatial SD {spatial_sd:.2f} > {cfg.max_spatial_sd_c} degC")
        if self._prev_c is not None and abs(measured - self._prev_c) > cfg.max_jump_c:
            jump = measured - self._prev_c
            self._prev_c = measured
            return self._status("unstable", measured, f"roi jumped {jump:+.2f} degC in one frame")
        self._prev_c = measured
        self._good.append(measured)
        good_mean, tsd = mean_std(np.array(self._good))
        if len(self._good) >= 3 and tsd > cfg.max_temporal_sd_c:
            return self._status("unstable", measured, f"roi temporal SD {tsd:.2f} > {cfg.max_temporal_sd_c} degC")
        self._ref_c = good_mean
        self._offset_c = self.expected_c - self._ref_c
        self._note_contrast(thermal_c, measured)
        if self._good_run == 0:
            self._good_since_ns = t_ns
        self._good_run += 1
        if not self._was_ok:
            # start-up: recover_frames good frames; after a fault also recover_s of them
            need_s = cfg.recover_s if self._had_fault else 0.0
            span_s = (t_ns - self._good_since_ns) / 1e9
            if self._good_run < cfg.recover_frames or span_s < need_s:
                return BlackbodyStatus("unstable", measured, self._offset_c,
                                       f"settling: {self._good_run} good frames over {span_s:.2f} s "
                                       f"(need {cfg.recover_frames} and {need_s:g} s)", self.roi)
        self._was_ok = True
        return BlackbodyStatus("ok", measured, self._offset_c, "", self.roi)

    def _note_contrast(self, thermal_c: np.ndarray, inside_c: float) -> None:
        """Remember this good frame's surround contrast as the reference (when finite).

        The reference is read only when the ROI stops matching, so instead of four medians every
        frame the ROI's neighbourhood is copied and the contrast computed on demand -- when that
        copy is all finite and a strip is inside the frame, the contrast is certain to be finite
        and is the one the reference must hold; otherwise it is computed now, as always."""
        assert self.roi is not None  # called with the ROI known
        x, y, w, h = self.roi
        x0, y0 = max(0, x - 4), max(0, y - 4)
        win = thermal_c[y0:y + h + 4, x0:x + w + 4]
        local = (x - x0, y - y0, w, h)
        if np.isfinite(win).all() and any(a.size for a in _strips(win, local)):
            self._contrast_pending = (win.copy(), local, inside_c)
            return
        contrast = _surround_contrast(thermal_c, self.roi, inside_c)
        if np.isfinite(contrast):
            self._contrast_pending = None
            self._contrast_c = contrast

    @property
    def _ref_contrast_c(self) -> float:
        """ROI minus its surroundings on the last good frame where that was finite, degC."""
        if self._contrast_pending is not None:
            self._contrast_c = _surround_contrast(*self._contrast_pending)
            self._contrast_pending = None
        return self._contrast_c

    def _search_elsewhere(self, thermal_c: np.ndarray, ref_c: float) -> tuple[int, int, int, int] | None:
        """A window of the ROI's size, not overlapping the ROI much, that reads like the blackbody:
        as uniform, as warm, and standing out from its surroundings the way the blackbody did
        (a patch of forehead is uniform and warm too, but its surroundings are skin)."""
        assert self.roi is not None  # called with the ROI known
        x, y, w, h = self.roi
        if thermal_c.shape[0] < h or thermal_c.shape[1] < w:
            return None
        mean, sd = _local_stats(thermal_c, w, h)
        match = (np.abs(mean - ref_c) <= min(0.5, self.cfg.missing_delta_c)) & (sd <= self.cfg.max_spatial_sd_c)
        yy, xx = np.nonzero(match)
        if len(xx) == 0:
            return None
        overlap = (np.clip(np.minimum(xx + w, x + w) - np.maximum(xx, x), 0, None)
                   * np.clip(np.minimum(yy + h, y + h) - np.maximum(yy, y), 0, None)) / float(w * h)
        keep = overlap < 0.5
        yy, xx = yy[keep], xx[keep]
        need = max(MIN_CONTRAST_C, 0.5 * self._ref_contrast_c) if np.isfinite(self._ref_contrast_c) else MIN_CONTRAST_C
        for i in np.argsort(np.abs(mean[yy, xx] - ref_c))[:64]:
            cand = (int(xx[i]), int(yy[i]), w, h)
            if _surround_contrast(thermal_c, cand, float(mean[yy[i], xx[i]])) >= need:
                return cand
        return None


MIN_CONTRAST_C = 2.0  # a blackbody stands out from a room wall by more than this
MAX_ASPECT = 1.5  # a blackbody aperture is a square or a disc; its box is at most this elongated
MIN_CALIBRATION_FRAMES = 3  # fewer frames give no temporal SD to judge stability by


def candidate_problems(frames_c: list[np.ndarray], roi: tuple[int, int, int, int], cfg: BlackbodyConfig,
                       min_frames: int) -> list[str]:
    """Why ``roi`` (found by ``find_patch`` on the frames' mean) is not a blackbody to calibrate
    on; [] when it is. The monitor's own bounds (cfg) over every frame: enough frames
    (``min_frames``, at least MIN_CALIBRATION_FRAMES), uniform in each (spatial SD), stable across
    them (temporal SD, frame-to-frame jump), square or disc-shaped, and standing out from its
    surroundings on all four sides (a patch of skin, the usual impostor, has a face around it).

    frames_c: (h,w) float32 degC frames, FFC excluded; roi: (x, y, w, h) thermal px."""
    problems = []
    need = max(min_frames, MIN_CALIBRATION_FRAMES)
    if len(frames_c) < need:
        problems.append(f"only {len(frames_c)} thermal frame(s) outside FFC, {need} needed to judge stability")
    _, _, w, h = roi
    if max(w, h) > MAX_ASPECT * min(w, h):
        problems.append(f"{w}x{h} px is not square or disc-shaped like a blackbody aperture (aspect > {MAX_ASPECT})")
    stats = [nanmean_std(roi_core(f, roi)) for f in frames_c]
    readings = np.array([m for m, _ in stats])
    worst_sd = max(sd for _, sd in stats)
    if worst_sd > cfg.max_spatial_sd_c:
        problems.append(f"not uniform: spatial SD up to {worst_sd:.2f} > {cfg.max_spatial_sd_c} degC")
    if len(readings) >= MIN_CALIBRATION_FRAMES:
        tsd = float(np.std(readings))
        jump = float(np.max(np.abs(np.diff(readings))))
        if tsd > cfg.max_temporal_sd_c or jump > cfg.max_jump_c:
            problems.append(f"not stable: reading SD {tsd:.2f} degC (bound {cfg.max_temporal_sd_c}), largest "
                            f"frame-to-frame change {jump:.2f} degC (bound {cfg.max_jump_c})")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # dead pixels are NaN in every frame
        mean_c = np.nanmean(np.stack(frames_c), axis=0)
    contrast = _surround_contrast(mean_c, roi, float(np.nanmean(roi_core(mean_c, roi))))
    if not contrast >= MIN_CONTRAST_C:  # NaN too: nothing around it to compare with
        problems.append(f"does not stand out from its surroundings on every side (contrast {contrast:.2f} < "
                        f"{MIN_CONTRAST_C} degC): skin or another warm surface, not a blackbody")
    return problems


def roi_core(thermal_c: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """ROI pixels without its 1-px border when it is at least 5 px wide/high: the optics blur
    pulls edge pixels towards the (colder) surroundings."""
    x, y, w, h = roi
    m = 1 if min(w, h) >= 5 else 0
    return thermal_c[y + m:y + h - m, x + m:x + w - m]


def _surround_contrast(thermal_c: np.ndarray, roi: tuple[int, int, int, int], inside_c: float) -> float:
    """inside_c minus the WARMEST of the four 2-px strips 2 px above, below, left and right of the
    ROI (strips cut off by the frame edge are skipped). A blackbody stands out on every side; a
    patch of skin has a face, a neck or an arm on at least one."""
    meds = [float(np.nanmedian(a)) for a in _strips(thermal_c, roi) if a.size and np.isfinite(a).any()]
    return inside_c - max(meds) if meds else float("nan")


def _strips(thermal_c: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, ...]:
    """The four 2-px strips 2 px above, below, left and right of the ROI (views; cut by the frame)."""
    x, y, w, h = roi
    return (thermal_c[max(0, y - 4):max(0, y - 2), x:x + w], thermal_c[y + h + 2:y + h + 4, x:x + w],
            thermal_c[y:y + h, max(0, x - 4):max(0, x - 2)], thermal_c[y:y + h, x + w + 2:x + w + 4])
