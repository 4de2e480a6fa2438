"""Capture threads, the frame hub between them and the pipeline, and the camera watchdog.

One ``CameraWorker`` thread per camera reads its ``FrameSource`` and puts frames into the
``FrameHub``: in live mode a full queue drops its OLDEST frame (the pipeline wants the newest)
and counts it; in replay mode the worker waits instead, so nothing is lost.

Faults: a source whose read() returns None or raises is closed and reopened with exponential
backoff (``reconnect_initial_s`` doubling up to ``reconnect_max_s``); corrupt frames are
skipped and counted. A source that hangs inside read() cannot be interrupted safely (OpenCV
captures are not thread-safe), so the ``Watchdog`` declares the camera offline after
``watchdog_timeout_s`` without a frame and starts a fresh worker generation; the stuck thread
notices it was superseded when its read() finally returns, closes its source and exits.

Compressed RGB (``JpegFrame`` from MJPEG sources) is checked here from its header (whole JPEG,
expected size) and, with ``lazy_decode``, queued still compressed: the consumer decodes only
the frames it uses through ``CameraWorker.decode_or_count``, so a damaged one is counted
like any corrupt frame. Without it (the default) the worker decodes every frame.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.io.sources import CorruptFrame, FrameSource, JpegFrame, SourcesConfig
from edge.types import Frame

log = logging.getLogger("edge.io.capture")


@dataclass
class CameraStats:
    """Counters of one camera, written by its worker (and the watchdog), read by health."""

    state: str = "starting"  # starting | online | offline | ended | stopped
    frames: int = 0
    dropped: int = 0
    corrupt: int = 0
    reconnects: int = 0
    ts_jumps: int = 0
    last_frame_mono_ns: int = 0
    offline_since_ns: int | None = None
    last_error: str = ""
    # the last outage only (a station runs for months: no per-outage history); each one is logged
    last_outage_s: float | None = None  # declared offline -> first frame again, s
    last_gap_s: float | None = None  # last frame before that outage -> first after, s
    sensor_temp_c: float | None = None
    ffc_state: str | None = None
    fps: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("state", "frames", "dropped", "corrupt", "reconnects", "ts_jumps",
                                            "last_error", "sensor_temp_c", "ffc_state", "fps")}
        if self.offline_since_ns is not None:
            d["offline_s"] = round((time.monotonic_ns() - self.offline_since_ns) / 1e9, 1)
        return d


class FrameHub:
    """Per-camera bounded queues behind one condition variable.

    get() hands out frames in capture-time order: the oldest head first. In replay mode it
    waits until every camera that has not ended has a frame queued, so the order is exact and a
    replay is deterministic; in live mode it takes what is there.
    """

    def __init__(self, cameras: list[str], maxlen: int, live: bool):
        self.live = live
        self.maxlen = maxlen
        self._q: dict[str, deque[Frame]] = {c: deque() for c in cameras}
        self._ended: set[str] = set()
        self._cv = threading.Condition()

    def put(self, cam: str, frame: Frame, stop: threading.Event) -> int:
        """Queue a frame; returns how many old frames were dropped to make room (live mode)."""
        with self._cv:
            q = self._q[cam]
            dropped = 0
            if self.live:
                while len(q) >= self.maxlen:
                    q.popleft()
                    dropped += 1
            else:
                while len(q) >= self.maxlen and not stop.is_set():
                    self._cv.wait(0.1)
            q.append(frame)
            self._cv.notify_all()
            return dropped

    def end(self, cam: str) -> None:
        with self._cv:
            self._ended.add(cam)
            self._cv.notify_all()

    @property
    def finished(self) -> bool:
        with self._cv:
            return len(self._ended) == len(self._q) and not any(self._q.values())

    def get(self, timeout_s: float) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while True:
                heads = {c: q[0] for c, q in self._q.items() if q}
                ready = heads and (self.live or all(c in heads or c in self._ended for c in self._q))
                if ready:
                    cam = min(heads, key=lambda c: heads[c].t_ns)
                    frame = self._q[cam].popleft()
                    self._cv.notify_all()
                    return frame
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def drain(self) -> list[Frame]:
        """Everything still queued, in time order (shutdown)."""
        with self._cv:
            frames = sorted((f for q in self._q.values() for f in q), key=lambda f: f.t_ns)
            for q in self._q.values():
                q.clear()
            self._cv.notify_all()
            return frames


def first_line(e: BaseException) -> str:
    """An exception's message as one status line: its first line, 300 characters at most."""
    text = str(e)
    return text.splitlines()[0][:300] if text else ""


def expected_dtype(camera: str) -> type:
    return np.uint16 if camera == "thermal" else np.uint8


class CameraWorker:
    """Owns one camera: its capture thread(s), reconnects and counters.

    lazy_decode: queue ``JpegFrame``s undecoded (the consumer decodes what it uses with
        ``decode_or_count``); False decodes them here, so every frame queued is plain.
    """

    def __init__(self, camera: str, opener: Callable[[], FrameSource], hub: FrameHub, cfg: SourcesConfig,
                 expected_shape: tuple[int, ...] | None = None, stop: threading.Event | None = None,
                 lazy_decode: bool = False):
        self.camera = camera
        self.lazy_decode = lazy_decode
        self.opener = opener
        self.hub = hub
        self.cfg = cfg
        self.live = cfg.mode == "live"
        self.expected_shape = expected_shape
        self.stats = CameraStats()
        self.stop_event = stop or threading.Event()
        self._gen = 0
        self._lock = threading.Lock()
        self._next_index = 0
        self._last_t_ns: int | None = None
        self._last_src_t_ns: int | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---
    def start(self) -> None:
        self.stats.last_frame_mono_ns = time.monotonic_ns()  # the watchdog times 'starting' from here
        self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            self._gen += 1
            gen = self._gen
        th = threading.Thread(target=self._run, args=(gen,), name=f"capture-{self.camera}-{gen}", daemon=True)
        self._threads.append(th)
        th.start()

    def superseded(self, gen: int) -> bool:
        return gen != self._gen or self.stop_event.is_set()

    def declare_stalled(self, now_ns: int) -> None:
        """Watchdog: no frame for too long. Mark offline and start a fresh worker generation."""
        self._mark_offline(f"no frame for {(now_ns - self.stats.last_frame_mono_ns) / 1e9:.1f} s")
        self._spawn()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))

    # --- the capture thread ---
    def backoff_s(self, failures: int) -> float:
        """Delay before the next open after ``failures`` consecutive failures (0 -> at once)."""
        if failures <= 0:
            return 0.0
        return min(self.cfg.reconnect_initial_s * 2 ** (failures - 1), self.cfg.reconnect_max_s)

    def _mark_offline(self, why: str) -> None:
        st = self.stats
        st.last_error = why
        if st.state != "offline":
            st.state, st.offline_since_ns = "offline", time.monotonic_ns()
            log.warning("camera %s offline: %s; reconnecting", self.camera, why,
                        extra={"camera": self.camera, "event": "camera_offline"})

    def _end(self, error: str | None = None) -> None:
        """Replay: this camera's stream is over, for good or because of ``error`` (logged). The
        hub is told, so the consumer stops waiting for this camera's frames."""
        if error is not None:
            self.stats.last_error = error
            log.error("camera %s: %s", self.camera, error, extra={"camera": self.camera})
        self.stats.state = "ended"
        self.hub.end(self.camera)

    def _run(self, gen: int) -> None:
        st = self.stats
        failures = 0  # consecutive opens/streams that produced no frame
        while not self.superseded(gen):
            if failures and self.stop_event.wait(self.backoff_s(failures)):
                break
            if self.superseded(gen):
                break
            try:
                src = self.opener()
            except Exception as e:
                msg = first_line(e) or type(e).__name__
                if not self.live:  # a replay that cannot open its recording is over
                    self._end(msg)
                    return
                failures += 1
                self._mark_offline(f"open failed: {msg}")
                log.info("camera %s: open attempt failed, next in %.1f s", self.camera, self.backoff_s(failures),
                         extra={"camera": self.camera, "event": "open_failed"})
                continue
            frames_before = st.frames
            try:
                ended = self._pump(src, gen)
            except Exception as e:  # a bug must not end this camera for good: log, reconnect
                log.exception("camera %s: capture failed", self.camera, extra={"camera": self.camera})
                st.last_error = f"capture failed: {type(e).__name__}: {first_line(e)}"
                ended = not self.live
                if ended:
                    self._end()
            finally:
                try:
                    src.close()
                except Exception:  # closing a dead device may fail too; nothing left to do
                    pass
            if ended:
                return
            if self.superseded(gen):
                break
            failures = 0 if st.frames > frames_before else failures + 1
            self._mark_offline(st.last_error or "stream ended")
        if self.stop_event.is_set() and gen == self._gen:
            st.state = "stopped"

    def _pump(self, src: FrameSource, gen: int) -> bool:
        """Read until the source fails. Returns True when the stream ended for good (replay)."""
        st = self.stats
        self._last_src_t_ns = None  # a reopened source may restart its own clock
        while True:
            try:
                frame = src.read()
            except CorruptFrame as e:
                if self.superseded(gen):
                    return False
                self.count_corrupt(str(e))
                continue
            except Exception as e:
                error = f"{type(e).__name__}: {first_line(e)}"
                if not self.live:
                    self._end(error)
                    return True
                st.last_error = error
                return False
            if self.superseded(gen):
                return False
            if frame is None:
                if not self.live:
                    self._end()
                    return True
                st.last_error = "stream ended"
                return False
            prev_frame_ns = st.last_frame_mono_ns
            if not self._accept(frame):
                continue
            if st.state != "online":
                if st.offline_since_ns is not None:
                    st.reconnects += 1
                    outage = (time.monotonic_ns() - st.offline_since_ns) / 1e9
                    st.last_outage_s = outage
                    st.last_gap_s = (frame.t_ns - prev_frame_ns) / 1e9 if self.live else 0.0
                    log.info("camera %s online again after %.2f s", self.camera, outage,
                             extra={"camera": self.camera, "event": "camera_online", "outage_s": round(outage, 3),
                                    "gap_s": round(st.last_gap_s, 3)})
                st.state, st.offline_since_ns = "online", None
            st.dropped += self.hub.put(self.camera, frame, self.stop_event)

    def count_corrupt(self, why: str) -> None:
        """Count and log one damaged frame, skipped. why: one line naming the frame and the damage."""
        with self._lock:
            self.stats.corrupt += 1
            self.stats.last_error = f"corrupt frame: {why}"
        log.warning("camera %s: corrupt frame skipped: %s", self.camera, why, extra={"camera": self.camera})

    def decode_or_count(self, frame: Frame) -> bool:
        """Decode a still-compressed ``JpegFrame`` (a no-op for other frames); False when it turns
        out damaged (counted and logged with ``count_corrupt``). Called by the capture thread
        without ``lazy_decode``, else by the consumer for the frames it uses."""
        if isinstance(frame, JpegFrame):
            try:
                frame.decode()
            except CorruptFrame as e:
                self.count_corrupt(str(e))
                return False
        return True

    def _accept(self, frame: Frame) -> bool:
        """Validate and (live) stamp one frame; False = skip it (counted)."""
        st = self.stats
        now = time.monotonic_ns()
        if not self.lazy_decode and not self.decode_or_count(frame):
            return False
        dtype: object
        shape: tuple[int, ...] | None
        if isinstance(frame, JpegFrame):  # uint8 BGR of the size its header says: checked undecoded
            dtype, shape = np.dtype(np.uint8), frame.shape
        else:
            img = frame.image
            dtype, shape = getattr(img, "dtype", type(img).__name__), getattr(img, "shape", None)
        bad = (dtype != expected_dtype(self.camera) or shape is None
               or len(shape) != (2 if self.camera == "thermal" else 3))
        if not bad:
            if self.expected_shape is None:
                self.expected_shape = shape  # lock onto the first good frame's size
            bad = shape != self.expected_shape
        if bad:
            self.count_corrupt(f"{self.camera} frame {frame.index} is {dtype} {shape}, expected {self.expected_shape}")
            return False
        if self.live:
            # One clock for every camera. A driver's capture time on that clock is kept (it does
            # not include queueing); any other source time is replaced by the arrival time and
            # kept in meta for diagnosis. A source time running backwards (device clock reset,
            # injected jump) is counted; the frame goes on with its arrival time.
            src_t = frame.t_ns
            last_src_t_ns = self._last_src_t_ns
            went_back = last_src_t_ns is not None and src_t < last_src_t_ns
            if went_back and last_src_t_ns is not None:
                st.ts_jumps += 1
                log.warning("camera %s: source timestamp went back; using arrival time", self.camera,
                            extra={"camera": self.camera, "back_s": round((last_src_t_ns - src_t) / 1e9, 3)})
            self._last_src_t_ns = src_t
            frame.meta["source_t_ns"] = src_t
            keep = frame.meta.get("clock") == "monotonic" and not went_back
            frame.t_ns = src_t if keep else now
            if self._last_t_ns is not None and frame.t_ns <= self._last_t_ns:
                frame.t_ns = max(now, self._last_t_ns + 1)  # strictly forward per camera
            frame.index = self._next_index
            self._next_index += 1
        elif self._last_t_ns is not None and frame.t_ns < self._last_t_ns:
            # recorded timestamps out of order: pairing on them would mis-pair; drop and count
            st.ts_jumps += 1
            log.warning("camera %s: frame %d timestamp goes back; skipped", self.camera, frame.index,
                        extra={"camera": self.camera})
            return False
        self._last_t_ns = frame.t_ns
        st.frames += 1
        st.last_frame_mono_ns = now
        if "sensor_temp_c" in frame.meta:
            st.sensor_temp_c = frame.meta["sensor_temp_c"]
        if self.camera == "thermal":
            st.ffc_state = frame.ffc_state
        return True


class Watchdog:
    """One thread watching every live camera: no frame for ``timeout_s`` -> offline + new worker."""

    def __init__(self, workers: list[CameraWorker], timeout_s: float, period_s: float, stop: threading.Event):
        self.workers = workers
        self.timeout_ns = int(timeout_s * 1e9)
        self.period_s = period_s
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def check(self, now_ns: int | None = None) -> list[str]:
        """One look at every camera; returns the cameras declared offline."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        stalled = []
        for w in self.workers:
            st = w.stats
            # 'starting': opened but no first frame yet. Offline cameras are in their backoff loop.
            if w.live and st.state in ("online", "starting") and now_ns - st.last_frame_mono_ns > self.timeout_ns:
                w.declare_stalled(now_ns)
                stalled.append(w.camera)
        return stalled

    def _run(self) -> None:
        while not self.stop.wait(self.period_s):
            self.check()
