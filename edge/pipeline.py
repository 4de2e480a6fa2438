"""The data path, top to bottom: one paired frame in, screening events out.

    thermal raw ──► °C ──► blackbody check + offset correction
    RGB ──► face detection ──► tracking ──► mask status (kept per person)
        ──► registration into thermal + canthus measurement + quality gates
        ──► per-person decision ──► events ──► publisher

Every stage lives in its own module; this file only wires them. edge/replay.py drives the
pipeline from a recording (testers, evaluation, ``make run``); edge/station.py drives the same
``Pipeline`` from live cameras.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge.decision import Screener
from edge.paths import CALIBRATION_DIR
from edge.thermal.blackbody import BlackbodyMonitor, BlackbodyStatus, apply_offset
from edge.thermal.calibration import Calibration, load_calibration
from edge.thermal.measurement import FfcSettle, MeasureContext, measure_faces
from edge.thermal.radiometry import AmbientEstimator, to_celsius
from edge.types import Detections, FramePair, ScreeningEvent
from edge.utc import format_utc, parse_utc
from edge.vision.detection import (
    CenterFaceDetector,
    FaceDetector,
    load_session,
    model_file,
)
from edge.vision.mask import TrackMaskCache
from edge.vision.tracking import Tracker

log = logging.getLogger("edge.pipeline")

if TYPE_CHECKING:
    from edge.config import StationConfig

STAGES = ("radiometry", "detect", "track", "mask", "measure", "decide", "publish")


@dataclass
class PairResult:
    """What one paired frame produced. ``detections`` carry every per-face data key."""

    pair: FramePair
    detections: Detections
    events: list[ScreeningEvent]
    blackbody: BlackbodyStatus
    timing_ms: dict[str, float]


class EventPublisher(Protocol):
    """Where decided events go (edge.feed.publishing.Publisher: journal, then send)."""

    def publish_event(self, event: ScreeningEvent, time_utc: str) -> dict[str, Any]:
        """Publish one event; returns the message body sent."""
        ...


class PairMetrics(Protocol):
    """Per-pair metrics (edge.health.StationMetrics)."""

    def observe_pair(self, timing_ms: dict[str, float], dets: Detections, bb: BlackbodyStatus) -> None: ...


class PipelineObserver(Protocol):
    """Watches the pipeline work (the benchmark, tools); subclass it and override what you need --
    the methods here do nothing. Called on the pipeline's thread, in this order per pair:
    ``pair_started``, ``event_published`` for each event the pair decided, ``pair_done`` (with the
    per-stage ``timing_ms``); ``finish()`` calls ``event_published`` for what it decides. Keep them
    cheap: they run on the live path."""

    def pair_started(self, pair: FramePair) -> None:
        return None

    def event_published(self, event: ScreeningEvent, body: dict[str, Any]) -> None:
        return None

    def pair_done(self, result: PairResult) -> None:
        return None


class WallClock:
    """Maps the monotonic capture clock (t_ns) to UTC wall time for messages."""

    def __init__(self, utc_at_t0: datetime, t0_ns: int):
        self.utc_at_t0 = utc_at_t0
        self.t0_ns = t0_ns

    @classmethod
    def now(cls) -> WallClock:
        return cls(datetime.now(UTC), time.monotonic_ns())

    @classmethod
    def from_iso(cls, start_utc: str, t0_ns: int) -> WallClock:
        return cls(parse_utc(start_utc), t0_ns)

    def iso(self, t_ns: int) -> str:
        return format_utc(self.utc_at_t0 + timedelta(microseconds=(t_ns - self.t0_ns) / 1000))


class Pipeline:
    """Stages wired for one camera pair. Stateless stages are shared; trackers and the
    screener hold per-person state, so one Pipeline serves exactly one camera pair."""

    def __init__(self, cfg: StationConfig, calibration: Calibration, detector: FaceDetector, *,
                 thermal_units: str = "centikelvin", publisher: EventPublisher | None = None,
                 wall_clock: WallClock | None = None, metrics: PairMetrics | None = None,
                 keep_published: bool = False, observers: Sequence[PipelineObserver] = ()):
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
        self.screener = Screener(cfg.decision, calibration.skin_to_core.decision_threshold_c)
        log.info("alarm threshold %.1f degC (%s)", self.screener.threshold_c, self.screener.threshold_source,
                 extra={"event": "threshold"})
        self.ffc_settle = FfcSettle(cfg.measurement)
        self.skin_to_core = calibration.skin_to_core
        # Replays keep every published body for the caller; a live station must not (memory).
        self.keep_published = keep_published
        self.published: list[dict[str, Any]] = []
        self.observers = tuple(observers)
        self.last_t_ns = 0

    def process_pair(self, pair: FramePair) -> PairResult:
        timing: dict[str, float] = {}
        clock = time.perf_counter
        for o in self.observers:
            o.pair_started(pair)

        t = clock()
        thermal_c = to_celsius(pair.thermal.image, self.thermal_units)
        ffc_active = self.ffc_settle.update(pair.thermal.ffc_state, pair.t_ns)
        bb = self.blackbody.update(thermal_c, pair.thermal.ffc_state, pair.t_ns, ffc_active)
        thermal_c = apply_offset(thermal_c, bb, out=thermal_c)  # to_celsius made a fresh array
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
        result = PairResult(pair, dets, events, bb, timing_ms)
        for o in self.observers:
            o.pair_done(result)
        return result

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
            for o in self.observers:
                o.event_published(ev, body)


CALIBRATION_ENV = "THERMAL_EDGE_CALIBRATION"  # also a config override (edge/config.py ENV_OVERRIDES)
RECORDING_CALIBRATION = "calibration.toml"  # a calibration inside a recording folder (`import` writes it)


def calibration_candidates(station_id: str, stream_dir: str | Path | None = None) -> list[tuple[str, Path | None]]:
    """Where a replay looks for the station calibration, in order: [(what, path or None)]."""
    env = os.environ.get(CALIBRATION_ENV)
    return [(f"${CALIBRATION_ENV}", Path(env) if env else None),
            ("the recording folder", Path(stream_dir) / RECORDING_CALIBRATION if stream_dir is not None else None),
            ("the calibration folder", CALIBRATION_DIR / f"{station_id}.toml")]


def find_calibration(station_id: str, stream_dir: str | Path | None = None) -> Path:
    """The calibration file for replaying a recording of ``station_id``: $THERMAL_EDGE_CALIBRATION
    if set (it must exist), else STREAM/calibration.toml, else calibration/<station>.toml. A
    miss is one UserError line naming every place searched and how to make one."""
    from edge.errors import UserError

    places = calibration_candidates(station_id, stream_dir)
    env = places[0][1]
    if env is not None:
        if not env.is_file():
            raise UserError(f"${CALIBRATION_ENV}={env}: calibration file not found")
        return env
    for _, path in places[1:]:
        if path is not None and path.is_file():
            return path
    searched = ", ".join(f"{path} ({what})" for what, path in places[1:] if path is not None)
    raise UserError(
        f"no calibration for station {station_id!r}: searched ${CALIBRATION_ENV} (unset), {searched}; create one "
        f"with `thermal-edge import ... --out DIR` (writes DIR/{RECORDING_CALIBRATION}) or by copying "
        f"calibration/sample-gate-1.toml to {CALIBRATION_DIR / (station_id + '.toml')} and running "
        f"`thermal-edge calibrate registration` / `blackbody`, or pass --config / ${CALIBRATION_ENV}")


def default_config(station_id: str, calibration_path: Path | None = None,
                   stream_dir: str | Path | None = None) -> StationConfig:
    """Station config with every section at its default, for replays without a config file; the
    calibration is ``calibration_path`` or what ``find_calibration`` finds."""
    from edge.config import StationConfig

    cal = calibration_path or find_calibration(station_id, stream_dir)
    return StationConfig.model_validate({"station": {"id": station_id}, "calibration": {"path": str(cal)}})


def build_pipeline(cfg: StationConfig, *, detector: FaceDetector | None = None,
                   publisher: EventPublisher | None = None, wall_clock: WallClock | None = None,
                   thermal_units: str = "centikelvin", metrics: PairMetrics | None = None,
                   keep_published: bool = False, observers: Sequence[PipelineObserver] = ()) -> Pipeline:
    """Open what the config names (calibration file, ONNX session) and wire the stages."""
    calibration = load_calibration(cfg.calibration.path)
    if detector is None:
        session = load_session(model_file(cfg.detector), cfg.detector.intra_op_threads)
        detector = CenterFaceDetector(session, cfg.detector)
    pipe = Pipeline(cfg, calibration, detector, thermal_units=thermal_units, publisher=publisher,
                    wall_clock=wall_clock, metrics=metrics, keep_published=keep_published, observers=observers)
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
