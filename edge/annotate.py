"""Annotated preview video: RGB and false-colour thermal side by side, one video frame per
processed pair, showing what the pipeline saw and decided -- for testers and installers who
would rather look than read.

Drawn per face (from ``Detections`` and its DATA_KEYS): the box and landmarks in RGB, the mapped
box and both inner-canthus points in thermal, the track id, core/skin temperature, the gate
reason when the frame was not measurable, and the person's latest verdict (elevated red, normal
green, indeterminate amber with its reason). A header line gives the time, the blackbody state
and the FFC state. Labels scale with the frame; a colour bar gives the false-colour scale in
degC, and a legend line says why a label's per-frame value differs from the alert's (the alert
aggregates the person's best frames).

Codec, by the output's extension: ``.webm`` VP8 (every browser plays it; the recommended
preview), ``.mp4`` H.264 where the OpenCV build has an encoder for it, else MPEG-4 Part 2 (which
browsers do not play: ``codec_note`` says so), ``.mkv`` VP8, ``.avi`` MJPEG. ``codec`` names what
was written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.io.stderr import quiet_stderr
from edge.thermal.colour import colour_bar as thermal_colour_bar
from edge.thermal.colour import false_colour
from edge.thermal.radiometry import to_celsius
from edge.types import FramePair

COLORS = {"elevated": (40, 40, 230), "normal": (60, 200, 60), "indeterminate": (0, 170, 255), None: (230, 230, 230)}
THERMAL_RANGE_C = (25.0, 40.0)  # false-colour span: room to fever
FONT = cv2.FONT_HERSHEY_SIMPLEX


# (fourcc, what it is, browsers play it) tried in order per extension; the first one this OpenCV
# build opens is used. H.264 needs an encoder pip's opencv-python does not ship (it tries a V4L2
# hardware one and fails), so .mp4 usually falls back to MPEG-4 Part 2.
CODECS = {
    ".webm": [("VP80", "VP8 in WebM", True)],
    ".mp4": [("avc1", "H.264 in MP4", True), ("mp4v", "MPEG-4 Part 2 in MP4", False)],
    ".m4v": [("avc1", "H.264 in MP4", True), ("mp4v", "MPEG-4 Part 2 in MP4", False)],
    ".mkv": [("VP80", "VP8 in Matroska", False)],
    ".avi": [("MJPG", "MJPEG in AVI", False)],
}
LEGEND = ("labels: this frame's reading; verdicts and alerts use the person's aggregate (a high percentile "
          "of their best frames, decision.best_n), so the numbers differ")


def _text(img: np.ndarray, s: str, xy: tuple[int, int], color: tuple[int, int, int], scale: float = 0.45) -> None:
    x, y = int(xy[0]), int(max(round(26 * scale), xy[1]))
    thick = max(1, round(2.2 * scale))
    (w, h), base = cv2.getTextSize(s, FONT, scale, thick)
    pad = max(1, round(3 * scale))
    # a dark plate behind the text: readable on skin, walls and the hot end of the false colour alike
    cv2.rectangle(img, (x - pad, y - h - pad), (x + w + pad, y + base), (0, 0, 0), -1)
    cv2.putText(img, s, (x, y), FONT, scale, color, thick, cv2.LINE_AA)


def label_scale(height_px: int) -> float:
    """Font scale for a frame ``height_px`` tall: text ~1/32 of the height (15 px at 480 rows),
    never under the 0.45 that stays readable on a small frame."""
    return max(0.45, height_px / 480 * 0.6)


def colour_bar(height_px: int, range_c: tuple[float, float], scale: float) -> np.ndarray:
    """(height_px, W, 3) uint8 BGR: edge.thermal.colour's bar, sized for label ``scale``,
    a tick every 5 degC."""
    return thermal_colour_bar(height_px, range_c, round(70 * scale / 0.6), font_scale=scale * 0.8, tick_step_c=5.0)


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
        self._check_writable()
        th = getattr(getattr(cfg, "sources", None), "thermal", None)
        self.fps = fps or (th.fps if th is not None and th.fps else 8.7)
        self.units = thermal_units or (th.units if th is not None else "centikelvin")
        self.verdicts: dict[int, Any] = {}
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self._t0_ns: int | None = None
        self.codec = ""  # what was written, e.g. 'VP8 in WebM' (set with the first frame)
        self.codec_note = ""  # one line when the preview will not play in a browser
        self._bar: np.ndarray | None = None
        if self.path.suffix.lower() not in CODECS:
            from edge.errors import UserError

            raise UserError(f"{self.path}: unknown video type {self.path.suffix!r}; use "
                            f"{', '.join(CODECS)} (.webm plays in every browser)")

    def _check_writable(self) -> None:
        """Before any frame is processed: the output must be creatable, or a one-line UserError
        (a replay must not run to its end and then find nowhere to write)."""
        from edge.errors import UserError

        if self.path.is_dir():
            raise UserError(f"{self.path}: is a folder; --annotate wants a video file name (e.g. preview.mp4)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab"):  # the writer replaces it; this only proves it can be written
                pass
        except (FileExistsError, NotADirectoryError):  # a file where a folder of the path should be
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), self.path.parent)
            raise UserError(f"{self.path}: cannot write the preview video: {blocker} is a file, not a folder") from None
        except OSError as e:
            raise UserError(f"{self.path}: cannot write the preview video: {e.strerror}") from None

    def render(self, pair: FramePair, result: Any) -> np.ndarray:
        for ev in getattr(result, "events", []) or []:
            self.verdicts[int(ev.track_id)] = ev.verdict
        rgb = pair.rgb.image.copy()
        thermal_c = to_celsius(pair.thermal.image, self.units)
        self._scale = fs = label_scale(rgb.shape[0])
        s = rgb.shape[0] / thermal_c.shape[0]  # thermal drawn at the RGB height, pixels kept sharp
        th_img = cv2.resize(false_colour(thermal_c, THERMAL_RANGE_C), (round(thermal_c.shape[1] * s), rgb.shape[0]),
                            interpolation=cv2.INTER_NEAREST)
        dets = getattr(result, "detections", None)
        for i in range(len(dets) if dets is not None else 0):
            self._draw_face(rgb, th_img, s, dets, i)
        bb = getattr(result, "blackbody", None)
        if self._bar is None or self._bar.shape[0] != rgb.shape[0]:
            self._bar = colour_bar(rgb.shape[0], THERMAL_RANGE_C, fs)
        canvas = np.concatenate([rgb, th_img, self._bar], axis=1)
        if self._t0_ns is None:
            self._t0_ns = pair.t_ns
        header = (f"t={(pair.t_ns - self._t0_ns) / 1e9:7.2f}s  rgb-thermal {pair.dt_ns / 1e6:+.1f}ms  "
                  f"blackbody {getattr(bb, 'state', '?')}  ffc {pair.thermal.ffc_state}")
        bar_h = round(34 * fs)
        cv2.rectangle(canvas, (0, 0), (rgb.shape[1] + th_img.shape[1], bar_h), (0, 0, 0), -1)
        _text(canvas, header, (6, round(25 * fs)), (255, 255, 255), fs)
        legend = np.zeros((bar_h, canvas.shape[1], 3), np.uint8)
        _text(legend, LEGEND, (6, round(24 * fs)), (200, 200, 200), fs * 0.75)
        return np.concatenate([canvas, legend], axis=0)

    def _draw_face(self, rgb: np.ndarray, th: np.ndarray, s: float, dets: Any, i: int) -> None:
        data = dets.data
        tid = _val(data, "track_id", i)
        verdict = self.verdicts.get(int(tid)) if tid is not None and tid >= 0 else None
        status = getattr(verdict, "status", None)
        color = COLORS.get(status, COLORS[None])
        fs = getattr(self, "_scale", 0.45)
        x1, y1, x2, y2 = (int(v) for v in dets.box_xyxy[i])
        cv2.rectangle(rgb, (x1, y1), (x2, y2), color, max(2, round(3 * fs)))
        for x, y in dets.landmarks_xy[i]:
            cv2.circle(rgb, (int(x), int(y)), 2, (255, 255, 0), -1)
        gate = _val(data, "gate", i) or ""
        core, skin = _val(data, "core_temp_c", i), _val(data, "skin_temp_c", i)
        label = f"#{tid}" if tid is not None and tid >= 0 else "#?"
        label += f" {_fmt_c(core)}C (skin {_fmt_c(skin)})" if not gate else f" {gate}"
        mask = _val(data, "mask", i)
        if mask and mask != "unknown":
            label += f" mask:{mask}"
        _text(rgb, label, (x1, y1 - round(8 * fs)), color, fs)
        if status:
            reason = getattr(verdict, "reason", "")
            agg = getattr(verdict, "core_temp_c", None)
            agg_txt = f" {agg:.1f}C" if agg is not None and np.isfinite(agg) else ""
            _text(rgb, status.upper() + agg_txt + (f" ({reason})" if reason else ""), (x1, y2 + round(30 * fs)),
                  color, fs)
        box_t = _val(data, "box_xyxy_thermal", i)
        if box_t is not None and np.all(np.isfinite(box_t)):
            bx1, by1, bx2, by2 = (int(v * s) for v in box_t)
            cv2.rectangle(th, (bx1, by1), (bx2, by2), color, 1)
            _text(th, f"{label}", (bx1, by1 - round(6 * fs)), color, fs * 0.85)
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
            self._writer = self._open_writer()
        assert self._size is not None  # set with the writer
        if (w, h) != self._size:
            img = np.ascontiguousarray(img[: self._size[1], : self._size[0]])
        self._writer.write(img)
        self.frames += 1

    def _open_writer(self) -> cv2.VideoWriter:
        """The first codec of CODECS[extension] this OpenCV build opens; sets codec/codec_note."""
        from edge.errors import UserError

        tried: list[str] = []
        for fourcc, what, browsers in CODECS[self.path.suffix.lower()]:
            with quiet_stderr():
                assert self._size is not None  # set by the first frame, before the writer opens
                writer = cv2.VideoWriter(str(self.path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*fourcc),
                                         self.fps, self._size)
            if writer.isOpened():
                self.codec = what
                if not browsers:
                    self.codec_note = (f"{self.path} is {what}, which browsers do not play"
                                       + (f" (this OpenCV build has no {tried[0]} encoder)" if tried else "")
                                       + f"; for a browser use --annotate {self.path.with_suffix('.webm')} (VP8)")
                return writer
            writer.release()
            tried.append(what)
        raise UserError(f"{self.path}: OpenCV cannot open a video writer for {', '.join(tried)} (FFmpeg backend)")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
