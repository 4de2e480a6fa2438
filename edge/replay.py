"""The replay driver: a recording through the full pipeline as fast as it goes (testers,
evaluation, ``make run``, the bench's loop).

It lives at the top of the package, beside edge/pipeline.py and edge/station.py, because it
wires a recording (edge.io) to a ``Pipeline`` (edge.pipeline): io must not import the pipeline,
and the pipeline only wires stages, so the driver that needs both sits above them.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from edge.io.pairing import Pairer, PairingConfig, PairingStats, pair_frames, paired
from edge.io.recording import Recording, RecordingSource, open_recording
from edge.pipeline import (
    STAGES,
    EventPublisher,
    PairResult,
    PipelineObserver,
    WallClock,
    build_pipeline,
    default_config,
)
from edge.types import Detections, Frame, ScreeningEvent, Verdict
from edge.vision.detection import FaceDetector

if TYPE_CHECKING:
    from edge.config import StationConfig


class _Prefetch:
    """Reads a source in its own thread into a small bounded queue, so video decoding (which
    releases the GIL) overlaps detection on the other core. Replay never drops: put() waits."""

    _END = object()

    def __init__(self, source: RecordingSource, depth: int = 8):
        self.source = source
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


def planned_rgb_frames(rec: Recording, pairing_cfg: PairingConfig) -> set[int]:
    """RGB frame indices the Pairer will choose, worked out from timestamps.csv alone (same
    merge order as replay), so replay decodes only those."""
    placeholder = np.zeros((0,), np.uint8)
    frames = [Frame(cam, idx, t_ns, placeholder) for cam in ("rgb", "thermal") for idx, t_ns, _ in rec.rows[cam]]
    frames.sort(key=lambda f: (f.t_ns, f.camera != "rgb"))
    return {p.rgb.index for p in pair_frames(frames, Pairer(pairing_cfg))}


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


def replay(stream_dir: str | Path, config: StationConfig | None = None, *, publisher: EventPublisher | None = None,
           detector: FaceDetector | None = None,
           on_pair: Callable[[PairResult], None] | None = None,
           observers: Sequence[PipelineObserver] = ()) -> ReplayResult:
    """Run a recording through the full pipeline as fast as it goes (no sleeping)."""
    rec: Recording = open_recording(stream_dir)
    cfg = config if config is not None else default_config(rec.meta.station_id)
    pipe = build_pipeline(cfg, detector=detector, publisher=publisher,
                          wall_clock=WallClock.from_iso(rec.meta.start_utc, rec.meta.t0_ns),
                          thermal_units=rec.meta.thermal.units, keep_published=True, observers=observers)
    pairer = Pairer(cfg.pairing)
    sources = [_Prefetch(rec.source("rgb", decode=planned_rgb_frames(rec, cfg.pairing))),
               _Prefetch(rec.source("thermal"))]
    frames: list[PairRecord] = []
    events: list[ScreeningEvent] = []
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}

    t0 = time.perf_counter()
    try:
        for pair in paired(sources, pairer=pairer):
            res = pipe.process_pair(pair)
            frames.append(PairRecord(pair.thermal.index, pair.rgb.index, pair.t_ns, res.detections, res.blackbody.state))
            events.extend(res.events)
            for k, v in res.timing_ms.items():
                stage_ms.setdefault(k, []).append(v)
            if on_pair is not None:
                on_pair(res)
    finally:
        for s in sources:
            s.close()
    events.extend(pipe.finish())
    elapsed = time.perf_counter() - t0
    return ReplayResult(rec.meta.station_id, pairer.stats.pairs, pairer.stats, frames, events,
                        pipe.screener.verdicts(), pipe.published, elapsed, stage_ms)
