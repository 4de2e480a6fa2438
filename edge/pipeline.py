"""The data path, top to bottom: one paired frame in, screening events out.

    thermal raw ──► °C ──► blackbody check + offset correction
    RGB ──► face detection ──► tracking ──► mask status (kept per person)
        ──► registration into thermal + canthus measurement + quality gates
        ──► per-person decision ──► events ──► publisher

Every stage lives in its own module; this file only wires them. ``replay()`` drives the
pipeline from a recording (testers, evaluation, ``make run``); edge/station.py drives the same
``Pipeline`` from live cameras.
"""
from __future__ import annotations

import gc
import heapq
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edge.decision import Screener
from edge.io.pairing import Pairer, PairingStats
from edge.io.recording import Recording, open_recording
from edge.io.sources import FrameSource
from edge.paths import CALIBRATION_DIR
from edge.thermal.blackbody import BlackbodyMonitor, BlackbodyStatus, apply_offset
from edge.thermal.calibration import Calibration, load_calibration
from edge.thermal.measurement import FfcSettle, MeasureContext, measure_faces
from edge.thermal.radiometry import AmbientEstimator, to_celsius
from edge.types import Detections, Frame, FramePair, ScreeningEvent, Verdict
from edge.vision.detection import (
    CenterFaceDetector,
    FaceDetector,
    load_session,
    model_file,
)
from edge.vision.mask import TrackMaskCache
from edge.vision.tracking import Tracker

STAGES = ("radiometry", "detect", "track", "mask", "measure", "decide", "publish")


@dataclass
class PairResult:
    """What one paired frame produced. ``detections`` carry every per-face data key."""

    pair: FramePair
    detections: Detections
    events: list[ScreeningEvent]
    blackbody: BlackbodyStatus
    timing_ms: dict[str, float]


class WallClock:
    """Maps the monotonic capture clock (t_ns) to UTC wall time for messages."""

    def __init__(self, utc_at_t0: datetime, t0_ns: int):
        self.utc_at_t0 = utc_at_t0
        self.t0_ns = t0_ns

    @classmethod
    def now(cls) -> "WallClock":
        return cls(datetime.now(timezone.utc), time.monotonic_ns())

    @classmethod
    def from_iso(cls, start_utc: str, t0_ns: int) -> "WallClock":
        return cls(datetime.fromisoformat(start_utc.replace("Z", "+00:00")), t0_ns)

    def iso(self, t_ns: int) -> str:
        t = self.utc_at_t0 + timedelta(microseconds=(t_ns - self.t0_ns) / 1000)
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Pipeline:
    """Stages wired for one camera pair. Stateless stages are shared; trackers and the
    screener hold per-person state, so one Pipeline serves exactly one camera pair."""

    def __init__(self, cfg: Any, calibration: Calibration, detector: FaceDetector, *,
                 thermal_units: str = "centikelvin", publisher: Any = None,
                 wall_clock: WallClock | None = None, metrics: Any = None, keep_published: bool = False):
        self.cfg = cfg
        self.station_id = cfg.station.id
        self.calibration = calibration
        self.registration = calibration.registration
        self.detector = detector
        self.thermal_units = thermal_units
        self.publisher = publisher
        self.wall_clock = wall_clock or WallClock.now()
        self.metrics = metrics
        self.blackbody = BlackbodyMonitor(calibration.blackbody)
        self.tracker = Tracker(cfg.tracking)
        self.masks = TrackMaskCache(cfg.mask)
        self.ambient = AmbientEstimator(cfg.station.ambient_c)
        self.screener = Screener(cfg.decision)
        self.ffc_settle = FfcSettle(cfg.measurement)
        self.skin_to_core = calibration.skin_to_core
        # Replays keep every published body for the caller; a live station must not (memory).
        self.keep_published = keep_published
        self.published: list[dict] = []
        self.last_t_ns = 0

    def process_pair(self, pair: FramePair) -> PairResult:
        timing: dict[str, float] = {}
        clock = time.perf_counter

        t = clock()
        thermal_c = to_celsius(pair.thermal.image, self.thermal_units)
        bb = self.blackbody.update(thermal_c, pair.thermal.ffc_state, pair.t_ns)
        thermal_c = apply_offset(thermal_c, bb, out=thermal_c)  # to_celsius made a fresh array
        ffc_active = self.ffc_settle.update(pair.thermal.ffc_state, pair.t_ns)
        ambient_c = self.ambient.update(thermal_c)
        timing["radiometry"] = clock() - t

        t = clock()
        dets = self.detector.detect(pair.rgb.image)
        timing["detect"] = clock() - t

        # Tracking needs only boxes; doing it first lets the mask status be kept per person.
        t = clock()
        dets, ended = self.tracker.update(dets, pair.t_ns)
        timing["track"] = clock() - t

        t = clock()
        dets = self.masks.apply(pair.rgb.image, dets, ended)
        timing["mask"] = clock() - t

        t = clock()
        ctx = MeasureContext(
            blackbody_state=bb.state,
            ffc_active=ffc_active,
            ambient_c=ambient_c,
            skin_to_core=self.skin_to_core.core_c,
            skin_to_core_sd_c=self.skin_to_core.uncertainty_c(),
        )
        dets = measure_faces(dets, thermal_c, self.registration, ctx, self.cfg.measurement, rgb_bgr=pair.rgb.image)
        timing["measure"] = clock() - t

        t = clock()
        events = self.screener.update(dets, pair.t_ns, ended, pair.rgb.image, thermal_c, blackbody_state=bb.state)
        timing["decide"] = clock() - t

        t = clock()
        self._publish(events)
        timing["publish"] = clock() - t

        self.last_t_ns = pair.t_ns
        timing_ms = {k: v * 1000.0 for k, v in timing.items()}
        if self.metrics is not None:
            self.metrics.observe_pair(timing_ms, dets, bb)
        return PairResult(pair, dets, events, bb, timing_ms)

    def finish(self) -> list[ScreeningEvent]:
        """End every open track (end of stream or shutdown) and publish what that decides."""
        events = self.screener.update(Detections.empty(), self.last_t_ns, self.tracker.finish(), None, None)
        events += self.screener.finish()
        self._publish(events)
        return events

    def _publish(self, events: list[ScreeningEvent]) -> None:
        if self.publisher is None:
            return
        for ev in events:
            body = self.publisher.publish_event(ev, self.wall_clock.iso(ev.t_ns))
            if self.keep_published:
                self.published.append(body)


def default_config(station_id: str, calibration_path: Path | None = None) -> Any:
    """Station config with every section at its default, for replays without a config file."""
    from edge.config import StationConfig

    cal = calibration_path or CALIBRATION_DIR / f"{station_id}.toml"
    return StationConfig.model_validate({"station": {"id": station_id}, "calibration": {"path": str(cal)}})


def build_pipeline(cfg: Any, *, detector: FaceDetector | None = None, publisher: Any = None,
                   wall_clock: WallClock | None = None, thermal_units: str = "centikelvin",
                   metrics: Any = None, keep_published: bool = False) -> Pipeline:
    """Open what the config names (calibration file, ONNX session) and wire the stages."""
    calibration = load_calibration(cfg.calibration.path)
    if detector is None:
        session = load_session(model_file(cfg.detector), cfg.detector.intra_op_threads)
        detector = CenterFaceDetector(session, cfg.detector)
    pipe = Pipeline(cfg, calibration, detector, thermal_units=thermal_units, publisher=publisher,
                    wall_clock=wall_clock, metrics=metrics, keep_published=keep_published)
    freeze_setup_heap()
    return pipe


def freeze_setup_heap() -> None:
    """Take what set-up left alive out of the cyclic garbage collector's view.

    A full collection scans every tracked object: ~51k once the pipeline is built (onnx,
    pydantic, numpy, zmq modules and objects), 54-67 ms per pass on the bench machine -- a
    pause on the live path whenever Python decides to run one. Those objects live as long as
    the process, so after one last collection they are frozen (gc.freeze); a full pass then
    only scans what the pipeline allocated since. Reference counting still frees them."""
    gc.collect()
    gc.freeze()


class _Prefetch:
    """Reads a source in its own thread into a small bounded queue, so video decoding (which
    releases the GIL) overlaps detection on the other core. Replay never drops: put() waits."""

    _END = object()

    def __init__(self, source: FrameSource, depth: int = 8):
        self.source = source
        self.name = source.name
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prefetch-{source.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self.source.read()
                self._put(self._END if item is None else item)
                if item is None:
                    return
        except BaseException as e:  # handed to the reader, raised there
            self._put(e)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self) -> Frame | None:
        item = self._q.get()
        if item is self._END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.source.close()


def merged_frames(sources: list[Any]) -> Iterator[Frame]:
    """Frames of several recorded cameras in capture-time order (replay never drops)."""
    heap: list[tuple[int, int, Frame]] = []
    for k, src in enumerate(sources):
        f = src.read()
        if f is not None:
            heap.append((f.t_ns, k, f))
    heapq.heapify(heap)
    while heap:
        _, k, f = heapq.heappop(heap)
        yield f
        nxt = sources[k].read()
        if nxt is not None:
            heapq.heappush(heap, (nxt.t_ns, k, nxt))


def planned_rgb_frames(rec: Recording, pairing_cfg: Any) -> set[int]:
    """RGB frame indices the Pairer will choose, worked out from timestamps.csv alone (same
    merge order as replay), so replay decodes only those."""
    placeholder = np.zeros((0,), np.uint8)
    frames = [Frame(cam, idx, t_ns, placeholder) for cam in ("rgb", "thermal") for idx, t_ns, _ in rec.rows[cam]]
    frames.sort(key=lambda f: (f.t_ns, f.camera != "rgb"))
    pairer = Pairer(pairing_cfg)
    used: set[int] = set()
    for f in frames:
        used.update(p.rgb.index for p in pairer.push(f))
    used.update(p.rgb.index for p in pairer.flush())
    return used


@dataclass
class PairRecord:
    """Per paired frame, what the evaluator scores."""

    thermal_index: int
    rgb_index: int
    t_ns: int
    detections: Detections
    blackbody_state: str


@dataclass
class ReplayResult:
    station_id: str
    pairs: int
    stats: PairingStats
    frames: list[PairRecord]
    events: list[ScreeningEvent]
    verdicts: dict[int, Verdict]
    published: list[dict]
    elapsed_s: float
    stage_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def stage_median_ms(self) -> dict[str, float]:
        return {k: float(np.median(v)) for k, v in self.stage_ms.items() if v}


def replay(stream_dir: str | Path, config: Any = None, *, publisher: Any = None,
           detector: FaceDetector | None = None,
           on_pair: Callable[[PairResult], None] | None = None) -> ReplayResult:
    """Run a recording through the full pipeline as fast as it goes (no sleeping)."""
    rec: Recording = open_recording(stream_dir)
    cfg = config if config is not None else default_config(rec.meta.station_id)
    pipe = build_pipeline(cfg, detector=detector, publisher=publisher,
                          wall_clock=WallClock.from_iso(rec.meta.start_utc, rec.meta.t0_ns),
                          thermal_units=rec.thermal_units, keep_published=True)
    pairer = Pairer(cfg.pairing)
    sources = [_Prefetch(rec.source("rgb", decode=planned_rgb_frames(rec, cfg.pairing))),
               _Prefetch(rec.source("thermal"))]
    frames: list[PairRecord] = []
    events: list[ScreeningEvent] = []
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}

    def handle(pairs: list[FramePair]) -> None:
        for pair in pairs:
            res = pipe.process_pair(pair)
            frames.append(PairRecord(pair.thermal.index, pair.rgb.index, pair.t_ns, res.detections, res.blackbody.state))
            events.extend(res.events)
            for k, v in res.timing_ms.items():
                stage_ms.setdefault(k, []).append(v)
            if on_pair is not None:
                on_pair(res)

    t0 = time.perf_counter()
    try:
        for frame in merged_frames(sources):
            handle(pairer.push(frame))
        handle(pairer.flush())
    finally:
        for s in sources:
            s.close()
    events.extend(pipe.finish())
    elapsed = time.perf_counter() - t0
    return ReplayResult(rec.meta.station_id, pairer.stats.pairs, pairer.stats, frames, events,
                        pipe.screener.verdicts(), pipe.published, elapsed, stage_ms)
