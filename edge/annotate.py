"""Annotated preview video: RGB and false-colour thermal side by side, one video frame per
processed pair, showing what the pipeline saw and decided -- for testers and installers who
would rather look than read.

Drawn per face (from ``Detections`` and its DATA_KEYS): the box and landmarks in RGB, the mapped
box and both inner-canthus points in thermal, the track id, core/skin temperature, the gate
reason when the frame was not measurable, and the person's latest verdict (elevated red, normal
green, indeterminate amber with its reason). A header line gives the time, the blackbody state
and the FFC state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.thermal.radiometry import to_celsius
from edge.types import FramePair

COLORS = {"elevated": (40, 40, 230), "normal": (60, 200, 60), "indeterminate": (0, 170, 255), None: (230, 230, 230)}
THERMAL_RANGE_C = (25.0, 40.0)  # false-colour span: room to fever
FONT = cv2.FONT_HERSHEY_SIMPLEX


def false_colour(temp_c: np.ndarray, range_c: tuple[float, float]) -> np.ndarray:
    """(h,w) degC -> (h,w,3) uint8 BGR, inferno over the fixed ``range_c`` (lo, hi) degC.

    Clamped outside the range; NaN shows as ``lo``. A fixed scale (no per-image stretch) so a
    colour means the same temperature in every frame and snapshot.
    """
    lo, hi = range_c
    grey = np.clip((np.nan_to_num(temp_c, nan=lo) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)


def _text(img: np.ndarray, s: str, xy: tuple[int, int], color: tuple[int, int, int], scale: float = 0.45) -> None:
    x, y = int(xy[0]), int(max(12, xy[1]))
    cv2.putText(img, s, (x, y), FONT, scale, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(img, s, (x, y), FONT, scale, color, 1, cv2.LINE_AA)


def _val(data: dict[str, np.ndarray], key: str, i: int) -> Any:
    arr = data.get(key)
    return None if arr is None else arr[i]


def _fmt_c(v: Any) -> str:
    return "--" if v is None or not np.isfinite(v) else f"{float(v):.1f}"


class Annotator:
    """Writes the preview video. ``write(pair, result)`` per processed pair; ``close()`` at the end.

    result: the pipeline's PairResult (detections, events, blackbody); only attributes read.
    """

    def __init__(self, path: str | Path, cfg: Any = None, fps: float | None = None, thermal_units: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        th = getattr(getattr(cfg, "sources", None), "thermal", None)
        self.fps = fps or (th.fps if th is not None and th.fps else 8.7)
        self.units = thermal_units or (th.units if th is not None else "centikelvin")
        self.verdicts: dict[int, Any] = {}
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self._t0_ns: int | None = None

    def render(self, pair: FramePair, result: Any) -> np.ndarray:
        for ev in getattr(result, "events", []) or []:
            self.verdicts[int(ev.track_id)] = ev.verdict
        rgb = pair.rgb.image.copy()
        thermal_c = to_celsius(pair.thermal.image, self.units)
        s = rgb.shape[0] / thermal_c.shape[0]  # thermal drawn at the RGB height, pixels kept sharp
        th_img = cv2.resize(false_colour(thermal_c, THERMAL_RANGE_C), (round(thermal_c.shape[1] * s), rgb.shape[0]),
                            interpolation=cv2.INTER_NEAREST)
        dets = getattr(result, "detections", None)
        for i in range(len(dets) if dets is not None else 0):
            self._draw_face(rgb, th_img, s, dets, i)
        bb = getattr(result, "blackbody", None)
        canvas = np.concatenate([rgb, th_img], axis=1)
        if self._t0_ns is None:
            self._t0_ns = pair.t_ns
        header = (f"t={(pair.t_ns - self._t0_ns) / 1e9:7.2f}s  rgb-thermal {pair.dt_ns / 1e6:+.1f}ms  "
                  f"blackbody {getattr(bb, 'state', '?')}  ffc {pair.thermal.ffc_state}")
        cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 22), (0, 0, 0), -1)
        cv2.putText(canvas, header, (6, 16), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return canvas

    def _draw_face(self, rgb: np.ndarray, th: np.ndarray, s: float, dets: Any, i: int) -> None:
        data = dets.data
        tid = _val(data, "track_id", i)
        verdict = self.verdicts.get(int(tid)) if tid is not None and tid >= 0 else None
        status = getattr(verdict, "status", None)
        color = COLORS.get(status, COLORS[None])
        x1, y1, x2, y2 = (int(v) for v in dets.box_xyxy[i])
        cv2.rectangle(rgb, (x1, y1), (x2, y2), color, 2)
        for x, y in dets.landmarks_xy[i]:
            cv2.circle(rgb, (int(x), int(y)), 2, (255, 255, 0), -1)
        gate = _val(data, "gate", i) or ""
        core, skin = _val(data, "core_temp_c", i), _val(data, "skin_temp_c", i)
        label = f"#{tid}" if tid is not None and tid >= 0 else "#?"
        label += f" {_fmt_c(core)}C (skin {_fmt_c(skin)})" if not gate else f" {gate}"
        mask = _val(data, "mask", i)
        if mask and mask != "unknown":
            label += f" mask:{mask}"
        _text(rgb, label, (x1, y1 - 6), color)
        if status:
            reason = getattr(verdict, "reason", "")
            _text(rgb, status.upper() + (f" ({reason})" if reason else ""), (x1, y2 + 16), color)
        box_t = _val(data, "box_xyxy_thermal", i)
        if box_t is not None and np.all(np.isfinite(box_t)):
            bx1, by1, bx2, by2 = (int(v * s) for v in box_t)
            cv2.rectangle(th, (bx1, by1), (bx2, by2), color, 1)
            _text(th, f"{label}", (bx1, by1 - 4), color, 0.4)
        canthi = _val(data, "canthus_xy_thermal", i)
        if canthi is not None:
            for x, y in np.asarray(canthi).reshape(-1, 2):
                if np.isfinite(x) and np.isfinite(y):
                    cv2.drawMarker(th, (int(x * s), int(y * s)), (255, 255, 255), cv2.MARKER_CROSS, 8, 1)

    def write(self, pair: FramePair, result: Any) -> None:
        img = self.render(pair, result)
        h, w = img.shape[:2]
        if self._writer is None:
            self._size = (w - w % 2, h - h % 2)  # codecs want even sizes
            self._writer = cv2.VideoWriter(str(self.path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"mp4v"),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot open an mp4 writer (OpenCV FFmpeg backend)")
        assert self._size is not None  # set with the writer
        if (w, h) != self._size:
            img = np.ascontiguousarray(img[: self._size[1], : self._size[0]])
        self._writer.write(img)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
