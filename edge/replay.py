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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge.decision import DecisionConfig
from edge.io.pairing import Pairer, PairingConfig, PairingStats, pair_frames, paired
from edge.io.recording import LOSS_CUT_ROW, Recording, open_recording
from edge.io.sources import FrameSource
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
from edge.vision.tracking import TrackingConfig

if TYPE_CHECKING:
    from edge.config import StationConfig


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
    # frames listed in timestamps.csv that could not be read: {camera: {reason: count}}, and the
    # first message per camera and reason (file and frame); empty for an intact recording
    lost: dict[str, dict[str, int]] = field(default_factory=dict)
    loss_detail: dict[str, dict[str, str]] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)  # frames per camera in timestamps.csv

    @property
    def pairs_with_faces(self) -> int:
        return sum(1 for f in self.frames if len(f.detections))

    @property
    def lost_frames(self) -> int:
        return sum(n for by_reason in self.lost.values() for n in by_reason.values())

    def loss_lines(self) -> list[str]:
        """One line per camera and reason, e.g. 'thermal: 12 of 69 frames lost (video ends early:
        .../thermal.mkv: ends after 57 frames ...)'; [] when nothing was lost."""
        return [f"{cam}: {n} of {self.listed.get(cam, 0)} frames lost ({reason}: {self.loss_detail[cam][reason]})"
                for cam, by_reason in self.lost.items() for reason, n in by_reason.items()]

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def stage_median_ms(self) -> dict[str, float]:
        return {k: float(np.median(v)) for k, v in self.stage_ms.items() if v}


class ScreeningNeeds(Protocol):
    """The config sections ``why_nobody_screened`` reads (a StationConfig has them)."""

    tracking: TrackingConfig
    decision: DecisionConfig


def why_nobody_screened(n_pairs: int, n_pairs_with_faces: int, cfg: ScreeningNeeds) -> str | None:
    """One line saying why faces were seen but no subject was screened (None when that is not
    the case): a face becomes a person only after ``tracking.min_hits`` matched paired frames, and
    a verdict needs ``decision.min_valid_frames`` measurable ones -- a one-frame import has neither."""
    if not n_pairs_with_faces:
        return None
    need = max(cfg.tracking.min_hits, cfg.decision.min_valid_frames)
    why = (f"too few frames: this recording has {n_pairs} paired frame{'s' if n_pairs != 1 else ''}, a face becomes a "
           f"person after tracking.min_hits={cfg.tracking.min_hits} matched frames and a verdict needs "
           f"decision.min_valid_frames={cfg.decision.min_valid_frames} measurable ones"
           if n_pairs < need else
           f"no face was matched in tracking.min_hits={cfg.tracking.min_hits} consecutive paired frames "
           "(faces too far apart between frames, or detections too weak)")
    return f"faces detected in {n_pairs_with_faces} of {n_pairs} paired frames, but no subject screened: {why}"


def replay(stream_dir: str | Path, config: StationConfig | None = None, *, publisher: EventPublisher | None = None,
           detector: FaceDetector | None = None,
           on_pair: Callable[[PairResult], None] | None = None,
           observers: Sequence[PipelineObserver] = ()) -> ReplayResult:
    """Run a recording through the full pipeline as fast as it goes (no sleeping)."""
    rec: Recording = open_recording(stream_dir)
    cfg = config if config is not None else default_config(rec.meta.station_id, stream_dir=stream_dir)
    pipe = build_pipeline(cfg, detector=detector, publisher=publisher,
                          wall_clock=WallClock.from_iso(rec.meta.start_utc, rec.meta.t0_ns),
                          thermal_units=rec.thermal_units, keep_published=True, observers=observers)
    pairer = Pairer(cfg.pairing)
    # tolerate_loss: a capture cut short (full disk, power cut) or with a damaged frame replays
    # every frame that can be read; what cannot is counted in the result, never dropped silently.
    # Both opened before either reader thread starts: a video that cannot be opened must not leave
    # the other's thread decoding while the interpreter exits (an abort, rc 134, not an error line)
    rgb_src = rec.source("rgb", decode=planned_rgb_frames(rec, cfg.pairing), tolerate_loss=True)
    try:
        thermal_src = rec.source("thermal", tolerate_loss=True)
    except BaseException:
        rgb_src.close()
        raise
    sources = [_Prefetch(rgb_src), _Prefetch(thermal_src)]
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
    lost = {s.name: dict(s.lost) for s in (rgb_src, thermal_src) if s.lost}
    detail = {s.name: dict(s.loss_detail) for s in (rgb_src, thermal_src) if s.lost}
    for cam, n in rec.cut_rows.items():  # a row the killed writer left half-written
        lost.setdefault(cam, {})[LOSS_CUT_ROW] = n
        detail.setdefault(cam, {})[LOSS_CUT_ROW] = f"{rec.path / 'timestamps.csv'}: last row has no line end (dropped)"
    return ReplayResult(rec.meta.station_id, pairer.stats.pairs, pairer.stats, frames, events,
                        pipe.screener.verdicts(), pipe.published, elapsed, stage_ms, lost, detail,
                        {cam: len(rec.rows[cam]) for cam in ("rgb", "thermal")})
