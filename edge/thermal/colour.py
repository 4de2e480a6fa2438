"""Thermal images made 8-bit or false colour: the one place (previews, alert snapshots, target
detection, FLIR imports and thermal face detection all call it).

Two scales, both (h,w) in -> (h,w) uint8 out, values truncated (not rounded) to 0..255:

* fixed ``range_c=(lo, hi)`` degC: the same colour means the same temperature in every frame
  and snapshot; clamped outside the range; NaN (no reading) shows as ``lo``, never as warm.
* stretched (``range_c=None``): the image's ``percentiles`` (default 1st..99th, robust to a few
  hot or dead pixels; (0, 100) = its min..max) over 0..255, for images whose absolute level does
  not matter (a calibration target, faces in a thermal-only picture); NaN shows as the minimum.

``false_colour`` is ``to_u8`` through OpenCV's inferno map (BGR).
"""
from __future__ import annotations

import cv2
import numpy as np

COLORMAP = cv2.COLORMAP_INFERNO


def to_u8(img: np.ndarray, range_c: tuple[float, float] | None = None,
          percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """(h,w) image of any number type (degC, raw counts) -> (h,w) uint8; BGR input is made grey
    first. ``range_c`` fixed (lo, hi), or None to stretch over the image's ``percentiles``."""
    f = np.asarray(img)
    if f.ndim == 3:
        f = cv2.cvtColor(f.astype(np.float32), cv2.COLOR_BGR2GRAY)
    if range_c is not None:
        lo, hi = range_c
        return np.clip((np.nan_to_num(f, nan=lo) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    if not np.isfinite(f).all():
        f = np.nan_to_num(f.astype(np.float32), nan=float(np.nanmin(f)))
    if tuple(percentiles) == (0, 100):  # min..max: OpenCV's one pass (what the detector was run on)
        return cv2.normalize(f.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    lo, hi = np.percentile(f, percentiles)
    return np.clip((f - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)


def false_colour(temp_c: np.ndarray, range_c: tuple[float, float] | None = None,
                 percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """(h,w) degC -> (h,w,3) uint8 BGR, inferno over ``to_u8``'s scale (same arguments)."""
    return cv2.applyColorMap(to_u8(temp_c, range_c, percentiles), COLORMAP)


def colour_bar(height_px: int, range_c: tuple[float, float], width_px: int, font_scale: float = 0.5,
               tick_step_c: float = 2.5) -> np.ndarray:
    """(height_px, width_px, 3) uint8 BGR: the false-colour scale of ``false_colour`` over the
    fixed ``range_c`` (lo, hi) degC, hot at the top, a tick and its value every ``tick_step_c``,
    'degC' under it. The one colour bar of the preview video and the station's live view."""
    lo, hi = range_c
    bar = np.zeros((height_px, width_px, 3), np.uint8)
    text_h = max(8, round(22 * font_scale))
    top, bottom = max(12, text_h // 2 + 4), height_px - 2 * text_h - 4  # room for the last value and "degC"
    strip_w = max(8, width_px // 4)
    temps = np.linspace(hi, lo, max(bottom - top, 2), dtype=np.float32)[:, None].repeat(strip_w, axis=1)
    bar[top:top + len(temps), 4:4 + strip_w] = false_colour(temps, range_c)
    white = (255, 255, 255)
    t = np.ceil(lo / tick_step_c) * tick_step_c
    while t <= hi + 1e-6:
        y = round(top + (hi - t) / (hi - lo) * (len(temps) - 1))
        cv2.line(bar, (4 + strip_w, y), (8 + strip_w, y), white, 1)
        label = f"{t:.0f}" if float(tick_step_c).is_integer() else f"{t:.1f}"
        cv2.putText(bar, label, (10 + strip_w, y + text_h // 3), cv2.FONT_HERSHEY_SIMPLEX, font_scale, white, 1,
                    cv2.LINE_AA)
        t += tick_step_c
    cv2.putText(bar, "degC", (4, height_px - 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (220, 220, 220), 1,
                cv2.LINE_AA)
    return bar
