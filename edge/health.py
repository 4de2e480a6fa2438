"""Station health: the status message published on ``status.<station>`` and the Prometheus
metrics, both computed from the same figures so an operator's dashboard and the control room
never disagree.

Figures come from three places:
- per-camera capture counters (``edge.io.capture.CameraStats``: state, frames, drops, corrupt,
  reconnects, timestamp jumps), read at status time and at scrape time;
- per-pair stage timings the pipeline reports through ``StationMetrics.observe_pair``;
- pairing statistics (``edge.io.pairing.PairingStats``).

Metrics live in a ``CollectorRegistry`` passed in (never the process-global one), so several
stations in one test process do not collide.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import Field

from edge.configbase import StrictModel

# Seconds. docs/benchmark.md measures per-pair stage means from ~0.07 ms (publish) to ~21 ms
# (detector) on one core, and a live capture-to-alert p99 near 50 ms; the buckets resolve that
# range and reach 2.5 s so that stalls still land in a bucket of their own.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
STATUS_SCHEMA_VERSION = 1


class HealthConfig(StrictModel):
    """Status messages on the feed, Prometheus metrics, logs."""

    status_interval_s: float = Field(
        5.0, ge=0.5, le=300, description="Seconds between status messages on status.<station>")
    metrics_port: int = Field(
        9108, ge=0, le=65535, description="Prometheus /metrics HTTP port; 0 turns the endpoint off")
    metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="Address the metrics endpoint binds (0.0.0.0 to expose it)")
    log_format: Literal["json", "text"] = Field(
        "json", description="'json': one JSON object per line (journald/Loki); 'text': human-readable")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged")
    log_repeat_window_s: float = Field(
        60.0, ge=0, le=3600,
        description="A repeated message (same logger, level and text) is logged once per window, s, with a count; "
                    "0 logs every repeat")


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("thermal-edge")
    except Exception:  # not installed (running from a source tree)
        return "0+unknown"


class StationMetrics:
    """Prometheus metrics plus the rolling figures the status message needs.

    Thread-safe: capture threads, the pipeline loop and the HTTP scrape thread all touch it.
    Read at scrape time: ``camera_stats`` () -> {camera: CameraStats.snapshot()} and
    ``pairing_stats`` () -> edge.io.pairing.PairingStats.
    """

    def __init__(self, station_id: str, registry: CollectorRegistry | None = None,
                 camera_stats: Callable[[], dict[str, dict[str, Any]]] | None = None,
                 pairing_stats: Callable[[], Any] | None = None):
        self.station_id = station_id
        self.registry = registry if registry is not None else CollectorRegistry()
        self.camera_stats = camera_stats or (lambda: {})
        self.pairing_stats = pairing_stats or (lambda: None)
        self._lock = threading.Lock()
        self._detect_ms: deque[float] = deque(maxlen=200)
        self._pair_t: deque[float] = deque(maxlen=400)  # monotonic s of recent processed pairs
        self.blackbody: dict[str, Any] = {"state": "unknown"}
        self.started_monotonic = time.monotonic()
        r = self.registry
        self.stage_latency = Histogram(
            "thermal_edge_stage_latency_seconds",
            "Per-stage latency: capture = frame age when the pipeline takes the pair; the rest as timed by the pipeline",
            ["stage"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.pairs = Counter("thermal_edge_pairs", "Paired frames processed by the pipeline", registry=r)
        self.faces = Counter("thermal_edge_faces", "Faces detected in paired frames", registry=r)
        self.events = Counter("thermal_edge_events", "Screening events published", ["kind", "type"], registry=r)
        self.bb_ok = Gauge("thermal_edge_blackbody_ok", "1 when the blackbody reference is usable, else 0", registry=r)
        self.uptime = Gauge("thermal_edge_uptime_seconds", "Seconds since the station started", registry=r)
        self.uptime.set_function(lambda: time.monotonic() - self.started_monotonic)
        r.register(_ScrapeCollector(self))

    # --- written by the pipeline (edge/pipeline.py calls observe_pair) ---
    def observe_pair(self, timing_ms: dict[str, float], dets: Any = None, bb: Any = None) -> None:
        for stage, ms in timing_ms.items():
            self.stage_latency.labels(stage).observe(ms / 1000.0)
        self.pairs.inc()
        if dets is not None:
            self.faces.inc(len(dets))
        with self._lock:
            if "detect" in timing_ms:
                self._detect_ms.append(timing_ms["detect"])
            self._pair_t.append(time.monotonic())
        if bb is not None:
            self.blackbody = blackbody_summary(bb)
            self.bb_ok.set(1 if self.blackbody.get("state") == "ok" else 0)

    def observe_capture_age(self, age_s: float) -> None:
        """How old the thermal frame is when the pipeline starts on its pair (queueing + pairing)."""
        self.stage_latency.labels("capture").observe(max(0.0, age_s))

    def observe_events(self, events: list[Any]) -> None:
        for ev in events:
            self.events.labels(getattr(ev, "kind", "?"), getattr(ev, "type", "?")).inc()

    # --- read by the status message ---
    def detector_latency_ms(self) -> dict[str, float | None]:
        with self._lock:
            v = np.array(self._detect_ms, dtype=np.float64)
        if not len(v):
            return {"p50": None, "p95": None, "n": 0}
        return {"p50": round(float(np.median(v)), 2), "p95": round(float(np.percentile(v, 95)), 2), "n": int(len(v))}

    def paired_fps(self, window_s: float = 10.0) -> float:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._pair_t if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return round((len(recent) - 1) / max(now - recent[0], 1e-6), 2)


class _ScrapeCollector:
    """Exposes the camera counters and pairing figures at scrape time (one source of truth: the
    capture threads' CameraStats and the station's PairingStats)."""

    def __init__(self, metrics: StationMetrics):
        self.m = metrics

    def describe(self) -> list:  # no up-front description: families depend on configured cameras
        return []

    def collect(self):
        stats = self.m.camera_stats()
        fams = {
            "frames": CounterMetricFamily("thermal_edge_camera_frames", "Frames captured", labels=["camera"]),
            "dropped": CounterMetricFamily("thermal_edge_camera_dropped_frames",
                                           "Frames dropped (oldest first) because the queue was full", labels=["camera"]),
            "corrupt": CounterMetricFamily("thermal_edge_camera_corrupt_frames", "Corrupt or short frames skipped",
                                           labels=["camera"]),
            "reconnects": CounterMetricFamily("thermal_edge_camera_reconnects", "Successful reconnects after a fault",
                                              labels=["camera"]),
            "ts_jumps": CounterMetricFamily("thermal_edge_camera_timestamp_jumps",
                                            "Frames whose source timestamp went backwards", labels=["camera"]),
        }
        online = GaugeMetricFamily("thermal_edge_camera_online", "1 while the camera delivers frames", labels=["camera"])
        fps = GaugeMetricFamily("thermal_edge_camera_fps", "Frames per second over the last status interval",
                                labels=["camera"])
        for cam, s in stats.items():
            for key, fam in fams.items():
                fam.add_metric([cam], s.get(key, 0))
            online.add_metric([cam], 1 if s.get("state") == "online" else 0)
            fps.add_metric([cam], s.get("fps", 0.0))
        yield from fams.values()
        yield online
        yield fps
        if stats:  # the same rule as the status message's state, current at every scrape
            yield GaugeMetricFamily("thermal_edge_station_degraded", "1 while any camera is not online (replay end: 0)",
                                    value=0 if station_state(stats) in ("ok", "ended") else 1)
        pairing = self.m.pairing_stats()
        if pairing is not None:
            yield GaugeMetricFamily("thermal_edge_unpaired_thermal_frames", "Thermal frames with no RGB frame in tolerance",
                                    value=int(pairing.unpaired_thermal))
            unpaired = CounterMetricFamily("thermal_edge_unpaired_frames",
                                           "Frames not paired, by camera and reason (out_of_order, duplicate_time, "
                                           "no_partner; see edge/io/pairing.py UNPAIRED_REASONS)",
                                           labels=["camera", "reason"])
            for cam, reasons in pairing.unpaired_by_camera().items():
                for reason, n in reasons.items():
                    unpaired.add_metric([cam, reason], n)
            yield unpaired


def blackbody_summary(bb: Any) -> dict[str, Any]:
    """A JSON-safe summary of the pipeline's BlackbodyStatus (whatever fields it carries)."""
    out: dict[str, Any] = {}
    for key in ("state", "reason", "temp_c", "measured_c", "offset_c", "ffc_active"):
        v = getattr(bb, key, None)
        if v is None:
            continue
        if isinstance(v, (np.floating, float)):
            v = None if not np.isfinite(v) else round(float(v), 3)
        elif isinstance(v, np.generic):
            v = v.item()
        out[key] = v
    return out or {"state": "unknown"}


class FpsMeter:
    """Frames per second per camera from counter deltas between two status ticks. ``start``
    marks when the counters were zero, so the first tick already has a rate (without it the
    first status and the live view said 'online 0.0/s' for the first interval)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def start(self, cams: Iterable[str], now_s: float) -> None:
        for cam in cams:
            self._last[cam] = (now_s, 0)

    def update(self, cam: str, frames: int, now_s: float) -> float:
        prev = self._last.get(cam)
        self._last[cam] = (now_s, frames)
        if prev is None or now_s <= prev[0]:
            return 0.0
        return round((frames - prev[1]) / (now_s - prev[0]), 2)


def station_state(cameras: dict[str, dict[str, Any]]) -> str:
    """'ok' when every camera is online, 'starting' before any frame, else 'degraded'.
    A replay whose cameras have all ended is 'ended'."""
    states = [c.get("state") for c in cameras.values()]
    if states and all(s == "online" for s in states):
        return "ok"
    if states and all(s in ("ended", "stopped") for s in states):
        return "ended"
    if states and all(s == "starting" for s in states):
        return "starting"
    return "degraded"


def build_status(station_id: str, cameras: dict[str, dict[str, Any]], metrics: StationMetrics,
                 pairing: Any = None, version: str | None = None) -> dict[str, Any]:
    """The status message body (published by Publisher.publish_status on status.<station>)."""
    pairing_d = {}
    if pairing is not None:
        pairing_d = {k: int(getattr(pairing, k)) for k in ("pairs", "unpaired_thermal", "rgb_unused", "out_of_order",
                                                           "duplicate_time")}
        pairing_d["unpaired"] = pairing.unpaired_by_camera()  # {camera: {reason: frames}}
    state = station_state(cameras)
    return {
        "status_version": STATUS_SCHEMA_VERSION,
        "station_id": station_id,
        "state": state,
        "uptime_s": round(time.monotonic() - metrics.started_monotonic, 1),
        "version": version or package_version(),
        "cameras": {
            cam: {k: s.get(k) for k in ("state", "fps", "frames", "dropped", "corrupt", "reconnects", "ts_jumps",
                                        "offline_s", "last_error", "sensor_temp_c", "ffc_state") if k in s}
            for cam, s in cameras.items()
        },
        "paired_fps": metrics.paired_fps(),
        "pairing": pairing_d,
        "detector_latency_ms": metrics.detector_latency_ms(),
        "blackbody": metrics.blackbody,
    }
