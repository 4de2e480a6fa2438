"""The live station runner: cameras -> pairing -> the pipeline, with health, watchdog and a
clean shutdown.

Threads: one capture thread per camera (edge/io/capture.py), the watchdog, the Prometheus HTTP
server, and this loop (the caller's thread), which pairs frames, runs the pipeline and sends
status messages. Only this loop touches the pipeline and sends through the publisher.

MJPEG RGB frames stay compressed from capture to pairing (``lazy_decode``): the loop decodes
an RGB frame only when pairing picks it (~8.7 of 30 per second) instead of the capture thread
decoding all 30. A frame that turns out damaged is logged and counted as the camera's corrupt
frame, like one caught in capture, and its pair is skipped; the station goes on.

Shutdown order (SIGTERM/SIGINT -> ``request_stop``): stop capture, process the frames still
queued, flush pairing, ``pipeline.finish()`` (ends every open track and publishes what that
decides), send a last status, close the preview video, stop the metrics server. The caller then
closes the feed (sockets with linger), so a decided alert is out or journaled before exit.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry

from edge.guidance import Guidance, Guide
from edge.health import FpsMeter, StationMetrics, build_status, package_version
from edge.io.capture import CameraWorker, FrameHub, Watchdog
from edge.io.pairing import Pairer
from edge.io.sources import CameraConfig, FrameSource, SourcesConfig, source_opener
from edge.types import FramePair, ScreeningEvent

if TYPE_CHECKING:
    from edge.config import StationConfig
    from edge.pipeline import PairResult

if TYPE_CHECKING:  # the web layer (starlette) is imported only by stations that serve it
    from edge.web.station.hub import StationHub

log = logging.getLogger("edge.station")
CAMERAS = ("rgb", "thermal")


def quiet_opencv() -> None:
    """OpenCV's own stderr warnings (e.g. 'BGR conversion turned OFF' on every 16-bit open) are
    not station logs; our sources report problems themselves."""
    try:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


def sd_notify(message: str) -> bool:
    """Tell systemd (Type=notify, WatchdogSec=) how we are; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), addr)
        return True
    except OSError:
        return False


class PairProcessor(Protocol):
    """What the station needs of its pipeline (edge.pipeline.Pipeline)."""

    def process_pair(self, pair: FramePair) -> PairResult:
        """Run one pair; the result's ``events`` are what it decided."""
        ...

    def finish(self) -> list[ScreeningEvent]:
        """End every open track; the events that decides (already published)."""
        ...


class StationPublisher(Protocol):
    """The feed (edge.feed.publishing.Publisher): the pipeline publishes events through it, the
    station its status messages."""

    def publish_event(self, event: ScreeningEvent, time_utc: str) -> dict[str, Any]: ...

    def publish_status(self, status: dict[str, Any], time_utc: str) -> dict[str, Any]: ...

    def publish_guidance(self, guidance: dict[str, Any], time_utc: str) -> dict[str, Any]: ...


@dataclass
class StationResult:
    pairs: int = 0
    events: list[ScreeningEvent] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pipeline_errors: int = 0
    stop_reason: str = ""


def expected_shape(camera: str, cam_cfg: CameraConfig) -> tuple[int, ...] | None:
    if cam_cfg.width and cam_cfg.height:
        return (cam_cfg.height, cam_cfg.width) if camera == "thermal" else (cam_cfg.height, cam_cfg.width, 3)
    return None


def build_capture(sources: SourcesConfig, stop: threading.Event, *, lazy_decode: bool = False,
                  openers: dict[str, Callable[[], FrameSource]] | None = None,
                  ) -> tuple[FrameHub, dict[str, CameraWorker], Watchdog]:
    """The capture side of a station (also `thermal-edge record`'s): one worker per camera on a
    shared hub, and the watchdog; nothing started. ``stop`` stops the workers and the watchdog.

    openers: {camera: () -> FrameSource} overriding the configured sources (tests).
    """
    live = sources.mode == "live"
    hub = FrameHub(list(CAMERAS), sources.queue_size, live)
    epoch_ns = time.monotonic_ns() + 200_000_000  # recording stand-ins start together, 0.2 s from now
    workers = {}
    for cam in CAMERAS:
        cam_cfg = getattr(sources, cam)
        opener = (openers or {}).get(cam) or source_opener(cam, cam_cfg, live=live, epoch_ns=epoch_ns)
        workers[cam] = CameraWorker(cam, opener, hub, sources, expected_shape(cam, cam_cfg), stop=stop,
                                    lazy_decode=lazy_decode)
    watchdog = Watchdog(list(workers.values()), sources.watchdog_timeout_s, sources.watchdog_period_s, stop)
    return hub, workers, watchdog


class Station:
    """One camera pair, its capture threads and the pipeline.

    pipeline: a ``PairProcessor`` (edge.pipeline.Pipeline); built from the config if None.
    publisher: edge.feed.publishing.Publisher (status messages; the pipeline publishes events), or None.
    openers: {camera: () -> FrameSource} to override the configured sources (tests).
    on_pair: called with (pair, result) after each processed pair (annotated preview).
    web_hub: the live view's hub (edge.web.station.hub), offered every processed pair; or None.
    Visitor guidance (edge.guidance) runs when the web pages are on or guidance.publish is set.
    """

    def __init__(self, cfg: StationConfig, *, pipeline: PairProcessor | None = None,
                 publisher: StationPublisher | None = None,
                 registry: CollectorRegistry | None = None,
                 openers: dict[str, Callable[[], FrameSource]] | None = None,
                 on_pair: Callable[[FramePair, PairResult], None] | None = None,
                 web_hub: StationHub | None = None):
        self.cfg = cfg
        self.station_id = cfg.station.id
        self.publisher = publisher
        self.on_pair = on_pair
        self.live = cfg.sources.mode == "live"
        self.stop_event = threading.Event()  # the whole station
        self.capture_stop = threading.Event()  # capture threads (stopped first)
        self.stop_reason = ""
        self.hub, self.workers, self.watchdog = build_capture(cfg.sources, self.capture_stop, lazy_decode=True,
                                                              openers=openers)
        self.pairer = Pairer(cfg.pairing)
        self.metrics = StationMetrics(self.station_id, registry,
                                      camera_stats=lambda: {c: w.stats.snapshot() for c, w in self.workers.items()},
                                      pairing_stats=lambda: self.pairer.stats)
        self.pipeline = pipeline if pipeline is not None else self._build_pipeline()
        self._fps = FpsMeter()
        self._http: Any = None
        self.version = package_version()
        self.web_hub = web_hub
        self.guide = (Guide(cfg.guidance, blackbody_required=not cfg.measurement.allow_without_blackbody)
                      if cfg.guidance.publish or web_hub is not None else None)
        self._guidance_sent: tuple[tuple[str, int, str], float] = (("", -2, ""), 0.0)  # (what, monotonic s)
        self._last_pair_s = time.monotonic()

    def _build_pipeline(self) -> PairProcessor:
        from edge.pipeline import WallClock, build_pipeline

        clock = WallClock.now()
        th = self.cfg.sources.thermal
        if not self.live and th.kind == "recording":
            # replayed timestamps are the recording's: wall time comes from its start_utc
            from edge.io.recording import open_recording

            assert th.path is not None  # a recording source names its folder (SourcesConfig checks)
            meta = open_recording(th.path).meta
            clock = WallClock.from_iso(meta.start_utc, meta.t0_ns)
        return build_pipeline(self.cfg, publisher=self.publisher, metrics=self.metrics, wall_clock=clock,
                              thermal_units=th.units)

    # --- control ---
    def request_stop(self, reason: str = "requested") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            log.info("stopping: %s", reason, extra={"event": "stopping"})
        self.stop_event.set()

    def start_metrics_server(self) -> None:
        h = self.cfg.health
        if not h.metrics_port:
            return
        from prometheus_client import start_http_server

        try:
            self._http = start_http_server(h.metrics_port, h.metrics_host, registry=self.metrics.registry)
            log.info("metrics on http://%s:%d/metrics", h.metrics_host, h.metrics_port)
        except OSError as e:  # the station matters more than its metrics: keep running, say so
            log.error("health.metrics_port %d: cannot serve metrics: %s", h.metrics_port, e)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        for cam, w in self.workers.items():
            w.stats.fps = self._fps.update(cam, w.stats.frames, now)
        cams = {c: w.stats.snapshot() for c, w in self.workers.items()}
        return build_status(self.station_id, cams, self.metrics, self.pairer.stats, self.version)

    def _send_status(self, result: StationResult, state: str | None = None) -> None:
        st = self.status()
        if state:
            st["state"] = state
        result.statuses.append(st)
        if self.publisher is not None:
            from edge.utc import utc_iso

            try:
                self.publisher.publish_status(st, utc_iso())
            except Exception as e:  # a status message is not worth the station
                log.error("status not published: %s", e)
        log.debug("status %s", st["state"], extra={"event": "status", "station_state": st["state"]})

    # --- the loop ---
    def _process(self, pairs: list[FramePair], result: StationResult) -> None:
        for pair in pairs:
            if not self.workers["rgb"].decode_or_count(pair.rgb):  # still compressed until paired
                continue
            if self.live:
                self.metrics.observe_capture_age((time.monotonic_ns() - pair.t_ns) / 1e9)
            try:
                res = self.pipeline.process_pair(pair)
            except Exception:
                if not self.live:
                    raise
                # one bad pair must not stop screening; the log is rate-limited per message
                result.pipeline_errors += 1
                log.exception("pipeline failed on a pair; continuing", extra={"t_ns": pair.t_ns})
                continue
            result.pairs += 1
            events = list(getattr(res, "events", []) or [])
            result.events.extend(events)
            self.metrics.observe_events(events)
            if self.on_pair is not None:
                self.on_pair(pair, res)
            self._guide_and_view(pair, res)

    # --- visitor guidance and the live view ---
    def _live_verdict(self, track_id: int) -> Any:
        screener = getattr(self.pipeline, "screener", None)
        return screener.live_verdict(track_id) if screener is not None else None

    def _view_info(self) -> dict[str, Any]:
        """Header figures of the live view (read only while someone watches)."""
        return {"station": self.station_id, "pairs_per_s": self.metrics.paired_fps(),
                "cameras": {c: (w.stats.state, float(w.stats.fps or 0.0)) for c, w in self.workers.items()}}

    def _guide_and_view(self, pair: FramePair, res: Any) -> None:
        self._last_pair_s = time.monotonic()
        if self.guide is None or getattr(res, "detections", None) is None:
            return
        bb = getattr(res, "blackbody", None)
        cameras_ok = all(w.stats.state != "offline" for w in self.workers.values())
        g = self.guide.update(pair.t_ns, res.detections, self._live_verdict, getattr(res, "events", []) or [],
                              getattr(bb, "state", "unknown"), cameras_ok)
        self._show_guidance(g)
        if self.web_hub is not None:
            self.web_hub.offer(pair, res, self._live_verdict, self._view_info)

    def _guidance_idle(self, now_s: float) -> None:
        """No pair for guidance.no_pairs_pause_s: the kiosk says 'paused' (silence is a report too)."""
        idle_s = now_s - self._last_pair_s
        if self.guide is not None and idle_s >= self.cfg.guidance.no_pairs_pause_s:
            self._show_guidance(self.guide.update_idle(time.monotonic_ns()))
            if self.web_hub is not None:  # the live view must not freeze on the last picture
                self.web_hub.offer_no_pairs(idle_s, self._view_info)

    def _show_guidance(self, g: Guidance) -> None:
        if self.web_hub is not None:
            temp_c = None
            if self.cfg.web.kiosk_show_temperature and g.key in ("proceed", "see_staff"):
                v = self._live_verdict(g.track_id)
                temp_c = getattr(v, "core_temp_c", None)
            self.web_hub.set_guidance(g, temp_c)
        what, sent_s = self._guidance_sent
        now = time.monotonic()
        if (g.key, g.track_id, g.text) == what and now - sent_s < self.cfg.guidance.publish_interval_s:
            return
        self._guidance_sent = ((g.key, g.track_id, g.text), now)
        if self.publisher is not None and self.cfg.guidance.publish:
            from edge.feed.publishing import utc_iso

            try:
                self.publisher.publish_guidance(g.body(), utc_iso())
            except Exception as e:  # guidance is not worth the station
                log.error("guidance not published: %s", e)

    def run(self, max_seconds: float | None = None) -> StationResult:
        """Run until request_stop(), ``max_seconds``, or (replay) the end of the streams."""
        result = StationResult()
        self.start_metrics_server()
        for w in self.workers.values():
            w.start()
        self._fps.start(self.workers, time.monotonic())
        if self.live:
            self.watchdog.start()
        sd_notify("READY=1")
        t_start = time.monotonic()
        next_status = t_start + min(1.0, self.cfg.health.status_interval_s)
        last_ping = 0.0
        try:
            while not self.stop_event.is_set():
                frame = self.hub.get(0.2)
                if frame is not None:
                    self._process(self.pairer.push(frame), result)
                elif self.hub.finished:
                    self.request_stop("end of streams")
                    break
                now = time.monotonic()
                self._guidance_idle(now)
                if now >= next_status:
                    self._send_status(result)
                    next_status = now + self.cfg.health.status_interval_s
                if now - last_ping >= 1.0:
                    sd_notify("WATCHDOG=1")
                    last_ping = now
                if max_seconds is not None and now - t_start >= max_seconds:
                    self.request_stop(f"ran {max_seconds} s")
        finally:
            self._shutdown(result)
        return result

    def _shutdown(self, result: StationResult) -> None:
        sd_notify("STOPPING=1")
        self.capture_stop.set()
        for w in self.workers.values():
            w.join(2.0)
        for frame in self.hub.drain():
            self._process(self.pairer.push(frame), result)
        self._process(self.pairer.flush(), result)
        try:
            events = list(self.pipeline.finish() or [])
        except Exception:
            log.exception("pipeline.finish failed")
            events = []
        result.events.extend(events)
        self.metrics.observe_events(events)
        self._send_status(result, state="stopped")
        result.stop_reason = self.stop_reason
        if self._http is not None:
            server, _thread = self._http  # start_http_server returns (server, thread) (prometheus-client >= 0.20)
            server.shutdown()
            server.server_close()
        log.info("station stopped (%s): %d pairs, %d events", self.stop_reason, result.pairs, len(result.events),
                 extra={"event": "stopped"})
