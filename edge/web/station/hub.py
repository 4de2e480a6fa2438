"""Between the station loop and the browsers: the latest pair for the view, the render thread,
the JPEG frames per view, and the guidance message.

The station loop calls ``offer`` after every processed pair. Cost without a viewer: one
attribute read and a return -- nothing is copied, converted or drawn. With viewers, ``offer``
snapshots what the frame needs (a dict of labels, a few figures; the images are referenced, not
copied: the pipeline never writes into a pair's images) into a slot of one, latest wins, and
returns: the pipeline never waits for the web layer; frames for the view are dropped, never
pairs. One render thread draws the views that have viewers at up to ``max_fps`` and JPEG-encodes
them; stream handlers wait for the next frame number.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.guidance import Guidance
from edge.thermal.radiometry import to_celsius
from edge.thermal.registration import Registration
from edge.web.station.render import (
    PersonLabel,
    ViewState,
    render_align,
    render_live,
    render_no_pairs,
)

log = logging.getLogger(__name__)
VIEWS = ("live", "align")


@dataclass
class Frame:
    seq: int
    jpeg: bytes
    t_ns: int


def person_labels(dets: Any, live_verdict: Callable[[int], Any]) -> dict[int, PersonLabel]:
    """track_id -> PersonLabel from this frame's gate and the person's live verdict."""
    labels: dict[int, PersonLabel] = {}
    if dets is None or not len(dets) or "track_id" not in dets.data:
        return labels
    gates = dets.data.get("gate")
    for i, tid in enumerate(np.asarray(dets.data["track_id"]).tolist()):
        if tid < 0:
            continue
        v = live_verdict(tid)
        gate = str(gates[i]) if gates is not None else ""
        if v is not None:
            core = v.core_temp_c if v.status in ("normal", "elevated") else None
            labels[tid] = PersonLabel(v.status, v.reason, core)
        else:
            labels[tid] = PersonLabel("gated", gate) if gate else PersonLabel("measuring")
    return labels


class StationHub:
    """registration: the station's (for /align). thermal_units: raw thermal units of the pairs.
    max_fps: frames per second per view at most. jpeg_quality: 1..100."""

    def __init__(self, registration: Registration, *, thermal_units: str = "centikelvin", max_fps: float = 10.0,
                 jpeg_quality: int = 80, station_id: str = ""):
        self.registration = registration
        self.thermal_units = thermal_units
        self.min_period_s = 1.0 / max_fps
        self.jpeg_quality = int(jpeg_quality)
        self.station_id = station_id
        self._lock = threading.Condition()
        self._viewers = {v: 0 for v in VIEWS}
        self._slot: ViewState | None = None  # the bounded queue of one: latest wins
        self._frames: dict[str, Frame | None] = {v: None for v in VIEWS}
        self._seq = 0
        self._guidance: Guidance | None = None
        self._guidance_seq = 0
        self._guidance_temp_c: float | None = None
        self._no_pairs_at = 0.0
        self._last_size: tuple[int, int] = (1366, 556)  # (w, h) of the last live frame
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rendered = {v: 0 for v in VIEWS}  # frames drawn per view (tests, bench)
        self.dropped = 0  # view frames replaced in the slot before they were drawn
        self.render_errors = 0

    # --- station side (the station loop's thread) -------------------------------------------
    @property
    def watching(self) -> bool:
        return self._viewers["live"] > 0 or self._viewers["align"] > 0

    def offer(self, pair: Any, result: Any, live_verdict: Callable[[int], Any], info: Callable[[], dict[str, Any]]
              ) -> None:
        """After each processed pair. Returns at once; does nothing without a viewer."""
        if not self.watching:
            return
        bb = getattr(result, "blackbody", None)
        view = ViewState(
            t_ns=pair.t_ns, rgb_bgr=pair.rgb.image, thermal_c=pair.thermal.image, dets=result.detections,
            labels=person_labels(result.detections, live_verdict),
            bb_state=getattr(bb, "state", "unknown"), bb_roi_xywh=getattr(bb, "roi_xywh", None),
            info={**info(), "ffc": pair.thermal.ffc_state, "bb_offset_c": getattr(bb, "offset_c", 0.0)},
            guidance=self._guidance.text if self._guidance is not None else "")
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = view
            self._lock.notify_all()

    def offer_no_pairs(self, idle_s: float, info: Callable[[], dict[str, Any]]) -> None:
        """No pair for ``idle_s`` seconds (cameras down): the views show that instead of freezing
        on the last picture. At most once a second; nothing without a viewer."""
        if not self.watching or time.monotonic() - self._no_pairs_at < 1.0:
            return
        self._no_pairs_at = time.monotonic()
        view = ViewState(t_ns=time.monotonic_ns(), rgb_bgr=np.zeros((0, 0, 3), np.uint8),
                         thermal_c=np.zeros((0, 0), np.float32), dets=None,
                         info={**info(), "no_pairs_s": idle_s},
                         guidance=self._guidance.text if self._guidance is not None else "")
        with self._lock:
            self._slot = view
            self._lock.notify_all()

    def set_guidance(self, guidance: Guidance, temp_c: float | None = None) -> None:
        """The visitor message now; temp_c: the person's core temperature, only where the
        station shows temperatures on the kiosk (web.kiosk_show_temperature)."""
        with self._lock:
            cur, cur_t = self._guidance, self._guidance_temp_c
            if cur is None or (cur.key, cur.track_id, cur.text, cur_t) != (guidance.key, guidance.track_id,
                                                                          guidance.text, temp_c):
                self._guidance_seq += 1
            self._guidance, self._guidance_temp_c = guidance, temp_c
            self._lock.notify_all()

    # --- render thread ----------------------------------------------------------------------
    def start(self) -> StationHub:
        self._thread = threading.Thread(target=self._run, name="web-render", daemon=True)
        self._thread.start()
        return self

    @property
    def closed(self) -> bool:
        """Closed: streams end (close the hub before the server, so none holds up its shutdown)."""
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set() and (self._slot is None or not self.watching):
                    self._lock.wait()  # woken by offer (only while watched) and close: idle costs nothing
                view, self._slot = self._slot, None
            if view is None:
                continue
            try:
                self._render(view)
            except Exception:  # the view must never take the station down; say so once per message
                self.render_errors += 1
                log.exception("live view: rendering a frame failed")
            wait = self.min_period_s - (time.monotonic() - last)
            if wait > 0:
                self._stop.wait(wait)  # at most max_fps; a pair arriving meanwhile replaces the slot
            last = time.monotonic()

    def _render(self, view: ViewState) -> None:
        if "no_pairs_s" in view.info:
            img = render_no_pairs(view, self._last_size)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            with self._lock:
                for name in VIEWS:
                    if self._viewers[name]:
                        self._seq += 1
                        self._frames[name] = Frame(self._seq, buf.tobytes(), view.t_ns)
                self._lock.notify_all()
            return
        raw = view.thermal_c
        thermal_c = to_celsius(raw, self.thermal_units)
        offset = float(view.info.get("bb_offset_c") or 0.0)
        view.thermal_c = np.add(thermal_c, np.float32(offset), out=thermal_c) if offset else thermal_c
        for name in VIEWS:
            if not self._viewers[name]:
                continue
            img = render_live(view) if name == "live" else render_align(view, self.registration)
            if name == "live":
                self._last_size = (img.shape[1], img.shape[0])
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise ValueError(f"cannot JPEG-encode a {img.shape} view frame")
            with self._lock:
                self._seq += 1
                self._frames[name] = Frame(self._seq, buf.tobytes(), view.t_ns)
                self.rendered[name] += 1
                self._lock.notify_all()

    # --- browser side -----------------------------------------------------------------------
    @contextlib.contextmanager
    def viewer(self, view: str = "live") -> Iterator[None]:
        """Count a watching client for the duration (rendering runs only while one watches)."""
        if view not in VIEWS:
            raise ValueError(f"view={view!r}; allowed: {VIEWS}")
        with self._lock:
            self._viewers[view] += 1
            self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._viewers[view] -= 1
                if not self.watching:
                    self._slot = None
                    self._frames = {v: None for v in VIEWS}  # no stale frame for the next viewer

    def viewers(self) -> dict[str, int]:
        with self._lock:
            return dict(self._viewers)

    def next_frame(self, view: str, after_seq: int, timeout_s: float) -> Frame | None:
        """The view's newest frame with seq > after_seq, waiting up to timeout_s (None: none came)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                f = self._frames[view]
                if f is not None and f.seq > after_seq:
                    return f
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return None
                self._lock.wait(left)

    def next_guidance(self, after_seq: int, timeout_s: float) -> tuple[int, Guidance | None, float | None]:
        """(seq, guidance, temp_c) once seq > after_seq, or the current one after timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._guidance_seq <= after_seq and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return self._guidance_seq, self._guidance, self._guidance_temp_c

