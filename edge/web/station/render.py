"""Frames for the station's live view (``/``) and alignment check (``/align``), as BGR images.

Pure drawing: a ``ViewState`` (one processed pair, what the pipeline decided about it, and the
station's health figures, snapshotted on the station thread) in, a BGR canvas out; the hub
(edge/web/station/hub.py) JPEG-encodes it for the browser. Nothing here runs unless a browser
watches.

Live view, left to right: the RGB frame (face boxes, landmarks, per-person state label), the
thermal frame in false colour at the same height (mapped boxes, both inner-canthus points,
blackbody ROI with its state), and a colour bar with its degC scale. A header gives the station,
cameras, pairs/s, blackbody and FFC; a footer the visitor-guidance message. Text is drawn at
a size readable when the ~1350 px wide frame is shown at its own size or a little smaller.

Alignment check: the RGB frame with the thermal frame's edges (and a faint false-colour blend)
drawn onto it through the station's registration -- the homography plus the parallax shift for
the distance shown in the header (the nearest face's distance from its inter-ocular distance, or
the registration's reference distance without a face) -- and the thermal frame with the mapped
boxes beside it, so an installer sees at once whether the boxes land on the faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.thermal.colour import colour_bar as thermal_colour_bar
from edge.thermal.colour import false_colour, to_u8
from edge.thermal.registration import Registration

RANGE_C = (25.0, 40.0)  # false-colour span of the live view: room to fever, fixed (a colour = a temperature)
FONT = cv2.FONT_HERSHEY_SIMPLEX
STATE_COLOURS = {  # BGR
    "elevated": (60, 60, 255), "normal": (90, 210, 90), "indeterminate": (0, 176, 255),
    "measuring": (255, 200, 80), "gated": (200, 200, 200),
}
BB_COLOURS = {"ok": (90, 210, 90), "ffc": (0, 176, 255), "disabled": (200, 200, 200)}  # others: red
HEADER_PX, FOOTER_PX, BAR_PX = 36, 40, 86
TEXT_SCALE = 0.62


@dataclass
class PersonLabel:
    """What the view says about one tracked person: state in measuring / normal / elevated /
    indeterminate (live verdict) or 'gated' (this frame not measurable); reason: the gate or
    the indeterminate reason."""

    state: str
    reason: str = ""
    core_c: float | None = None


@dataclass
class ViewState:
    """One processed pair and what the station knew then; built on the station thread.

    rgb_bgr: (H,W,3) uint8; thermal_c: (h,w) float32 degC (blackbody-corrected);
    dets: the pair's Detections; labels: track_id -> PersonLabel; bb_state / bb_roi_xywh: the
    blackbody; info: header figures (station, pairs_per_s, cameras {name: (state, fps)}, ffc);
    guidance: the visitor message shown now."""

    t_ns: int
    rgb_bgr: np.ndarray
    thermal_c: np.ndarray
    dets: Any
    labels: dict[int, PersonLabel] = field(default_factory=dict)
    bb_state: str = "unknown"
    bb_roi_xywh: tuple[int, int, int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    guidance: str = ""


_OUTLINE = ((-1, -1), (1, -1), (-1, 1), (1, 1), (0, 2))


def _text(img: np.ndarray, s: str, xy: tuple[int, int], colour: tuple[int, int, int],
          scale: float = TEXT_SCALE, thick: int = 1, outline: bool = True) -> int:
    """Text with a black outline (legible on faces and on false colour); returns its width, px.
    The outline is the same glyphs shifted by a pixel: a thicker stroke would advance further
    and leave a shadow trailing the text."""
    x, y = int(xy[0]), int(xy[1])
    if outline:
        for dx, dy in _OUTLINE:
            cv2.putText(img, s, (x + dx, y + dy), FONT, scale, (0, 0, 0), thick + 1, cv2.LINE_AA)
    cv2.putText(img, s, (x, y), FONT, scale, colour, thick, cv2.LINE_AA)
    return cv2.getTextSize(s, FONT, scale, thick)[0][0]


def _fmt(v: float | None) -> str:
    return "--" if v is None or not math.isfinite(v) else f"{v:.1f}"


def label_text(tid: int, lab: PersonLabel) -> str:
    """'#3 NORMAL 36.8C', '#3 INDETERMINATE glasses', '#3 MEASURING', '#3 too_far'."""
    if lab.state == "gated":
        return f"#{tid} {lab.reason}"
    s = f"#{tid} {lab.state.upper()}"
    if lab.state in ("normal", "elevated") and lab.core_c is not None:
        s += f" {_fmt(lab.core_c)}C"
    if lab.reason:
        s += f" {lab.reason}"
    return s


def colour_bar(height_px: int, range_c: tuple[float, float] = RANGE_C, width_px: int = BAR_PX) -> np.ndarray:
    """(height,width,3) BGR: edge.thermal.colour's bar, a tick every 2.5 degC."""
    return thermal_colour_bar(height_px, range_c, width_px, font_scale=0.5, tick_step_c=2.5)


def _thermal_image(thermal_c: np.ndarray, height_px: int) -> tuple[np.ndarray, float]:
    """False colour at ``height_px`` (nearest neighbour: the sensor's pixels stay visible)."""
    s = height_px / thermal_c.shape[0]
    img = false_colour(thermal_c, RANGE_C)
    return cv2.resize(img, (round(thermal_c.shape[1] * s), height_px), interpolation=cv2.INTER_NEAREST), s


def _data(dets: Any, key: str, i: int) -> Any:
    arr = dets.data.get(key) if dets is not None else None
    return None if arr is None else arr[i]


def _draw_faces(rgb: np.ndarray, th: np.ndarray, s: float, view: ViewState) -> None:
    dets = view.dets
    for i in range(0 if dets is None else len(dets)):
        tid = _data(dets, "track_id", i)
        tid = -1 if tid is None else int(tid)
        gate = str(_data(dets, "gate", i) or "")
        lab = view.labels.get(tid) or PersonLabel("gated" if gate else "measuring", gate)
        colour = STATE_COLOURS.get(lab.state, STATE_COLOURS["gated"])
        text = label_text(tid, lab) if tid >= 0 else "new face"
        x1, y1, x2, y2 = (int(v) for v in np.rint(dets.box_xyxy[i]))
        cv2.rectangle(rgb, (x1, y1), (x2, y2), colour, 2)
        for x, y in dets.landmarks_xy[i]:
            cv2.circle(rgb, (int(x), int(y)), 2, (255, 255, 0), -1)
        _text(rgb, text, (x1, max(18, y1 - 8)), colour, thick=2)
        box_t = _data(dets, "box_xyxy_thermal", i)
        if box_t is not None and np.all(np.isfinite(box_t)):
            bx1, by1, bx2, by2 = (int(v) for v in np.rint(np.asarray(box_t) * s))
            cv2.rectangle(th, (bx1, by1), (bx2, by2), colour, 2)
            _text(th, text, (bx1, max(18, by1 - 8)), colour, thick=2)
        canthi = _data(dets, "canthus_xy_thermal", i)
        if canthi is not None:
            for x, y in np.asarray(canthi, np.float64).reshape(-1, 2):
                if math.isfinite(x) and math.isfinite(y):
                    cv2.drawMarker(th, (int(x * s), int(y * s)), (255, 255, 255), cv2.MARKER_CROSS, 14, 2)


def _draw_blackbody(th: np.ndarray, s: float, view: ViewState) -> None:
    if view.bb_roi_xywh is None:
        return
    x, y, w, h = view.bb_roi_xywh
    colour = BB_COLOURS.get(view.bb_state, (60, 60, 255))
    p1, p2 = (int(x * s), int(y * s)), (int((x + w) * s), int((y + h) * s))
    cv2.rectangle(th, p1, p2, colour, 2)
    _text(th, f"blackbody {view.bb_state}", (max(2, p1[0] - 40), min(th.shape[0] - 6, p2[1] + 20)), colour)


def _header(width: int, view: ViewState) -> np.ndarray:
    bar = np.full((HEADER_PX, width, 3), 28, np.uint8)
    info = view.info
    x = 8
    x += _text(bar, str(info.get("station", "")), (x, 24), (255, 255, 255), outline=False) + 20
    for cam, (state, fps) in (info.get("cameras") or {}).items():
        colour = (90, 210, 90) if state == "online" else (60, 60, 255)
        x += _text(bar, f"{cam} {state} {fps:.1f}/s", (x, 24), colour, outline=False) + 18
    x += _text(bar, f"pairs {info.get('pairs_per_s', 0.0):.1f}/s", (x, 24), (255, 255, 255), outline=False) + 18
    x += _text(bar, f"blackbody {view.bb_state}", (x, 24), BB_COLOURS.get(view.bb_state, (60, 60, 255)),
               outline=False) + 18
    ffc = str(info.get("ffc", "none"))
    _text(bar, f"FFC {ffc}", (x, 24), (0, 176, 255) if ffc in ("imminent", "in_progress") else (200, 200, 200),
          outline=False)
    return bar


def render_live(view: ViewState) -> np.ndarray:
    """The live view frame (BGR), see the module docstring."""
    rgb = view.rgb_bgr.copy()
    th, s = _thermal_image(view.thermal_c, rgb.shape[0])
    _draw_blackbody(th, s, view)
    _draw_faces(rgb, th, s, view)
    body = np.concatenate([rgb, th, colour_bar(rgb.shape[0])], axis=1)
    footer = np.full((FOOTER_PX, body.shape[1], 3), 28, np.uint8)
    if view.guidance:
        _text(footer, f"visitor sees: {view.guidance}", (8, 28), (255, 255, 255), 0.7, outline=False)
    return np.concatenate([_header(body.shape[1], view), body, footer], axis=0)


def render_no_pairs(view: ViewState, size_wh: tuple[int, int]) -> np.ndarray:
    """What the views show while no paired frame arrives: the cameras' states, how long, and
    the visitor message -- never the last picture, frozen, as if all were well."""
    w, h = size_wh
    img = np.full((h, w, 3), 40, np.uint8)
    img[:HEADER_PX] = _header(w, view)
    secs = float(view.info.get("no_pairs_s", 0.0))
    _text(img, f"NO PAIRED FRAMES FOR {secs:.0f} s", (40, h // 2 - 20), (60, 60, 255), 1.3, 3, outline=False)
    _text(img, "screening paused: check the cameras (header) and the station log", (40, h // 2 + 30),
          (230, 230, 230), 0.8, 2, outline=False)
    if view.guidance:
        _text(img, f"visitor sees: {view.guidance}", (8, h - 12), (255, 255, 255), 0.7, outline=False)
    return img


def nearest_distance_m(dets: Any, registration: Registration) -> float | None:
    """Distance of the nearest face (largest inter-ocular distance), m; None without a face."""
    if dets is None or not len(dets):
        return None
    d = registration.distance_m(dets.inter_ocular_px)
    d = d[np.isfinite(d)]
    return float(d.min()) if len(d) else None


def thermal_to_rgb_matrix(registration: Registration, distance_m: float) -> np.ndarray:
    """(3,3) thermal px -> RGB px at ``distance_m``: the inverse of the registration's mapping
    (homography, then the parallax shift for that distance)."""
    inv = 1.0 / max(distance_m, 1e-3) - 1.0 / registration.reference_distance_m
    sx, sy = registration.parallax_px_m * inv
    unshift = np.array([[1.0, 0.0, -sx], [0.0, 1.0, -sy], [0.0, 0.0, 1.0]])
    return np.linalg.inv(registration.homography) @ unshift


def render_align(view: ViewState, registration: Registration) -> np.ndarray:
    """The alignment-check frame (BGR), see the module docstring."""
    rgb = view.rgb_bgr.copy()
    h, w = rgb.shape[:2]
    face_d = nearest_distance_m(view.dets, registration)
    d = face_d if face_d is not None else registration.reference_distance_m
    m = thermal_to_rgb_matrix(registration, d)
    warped_c = cv2.warpPerspective(view.thermal_c, m, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    inside = np.isfinite(warped_c)
    blend = false_colour(warped_c, RANGE_C)
    rgb[inside] = cv2.addWeighted(rgb, 0.65, blend, 0.35, 0)[inside]
    # dead pixels are NaN: give them the median so they make no edges of their own
    finite_c = np.nan_to_num(view.thermal_c, nan=float(np.nanmedian(view.thermal_c)))
    edges = cv2.Canny(to_u8(finite_c), 60, 140)
    edges_rgb = cv2.warpPerspective(edges, m, (w, h), flags=cv2.INTER_NEAREST)
    edges_rgb = cv2.dilate(edges_rgb, np.ones((2, 2), np.uint8))
    rgb[edges_rgb > 0] = (255, 255, 0)
    dets = view.dets
    for i in range(0 if dets is None else len(dets)):
        x1, y1, x2, y2 = (int(v) for v in np.rint(dets.box_xyxy[i]))
        cv2.rectangle(rgb, (x1, y1), (x2, y2), (90, 210, 90), 2)
    th, s = _thermal_image(view.thermal_c, h)
    _draw_blackbody(th, s, view)
    _draw_faces(np.zeros_like(rgb), th, s, view)
    body = np.concatenate([rgb, th, colour_bar(h)], axis=1)
    head = np.full((HEADER_PX, body.shape[1], 3), 28, np.uint8)
    src = "nearest face (from its inter-ocular distance)" if face_d is not None else "reference distance, no face"
    _text(head, f"thermal edges drawn through the registration at {d:.2f} m: {src}; homography fitted at "
                f"{registration.reference_distance_m:.2f} m", (8, 24), (255, 255, 255), outline=False)
    foot = np.full((FOOTER_PX, body.shape[1], 3), 28, np.uint8)
    _text(foot, "cyan: thermal edges on RGB | green: RGB face boxes | right: boxes mapped into thermal", (8, 28),
          (220, 220, 220), outline=False)
    return np.concatenate([head, body, foot], axis=0)
