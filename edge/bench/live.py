"""Real-time replay of the live path: capture-to-alert latency of one camera pair.

The station's own live runner (edge/station.py ``Station`` in ``sources.mode = "live"``): one
capture thread per camera reading the recording through ``RecordingCameraSource`` paced at its
recorded frame rate and looped, the bounded FrameHub (drop-oldest), pairing, the pipeline and
the real feed (PUB on loopback + synced journal). Each frame is stamped on arrival by its
capture thread (``t_ns`` on the monotonic clock), exactly as from a camera.

Two latencies, both from that capture stamp of a paired thermal frame:
- per pair, to the moment ``process_pair`` returned -- every event the pair decided (alerts
  included) has been journaled and handed to the PUB socket by then, so this is the latency an
  alert decided on that pair has when it leaves the socket; every pair is a sample;
- per alert, to the moment a SUB socket on loopback received it, from the capture stamp of
  the pair whose processing published it (noted by a ``PipelineObserver``: the pair being
  processed when each message went out; the message's own ``t_ns`` is the person's best frame,
  possibly older) --
  the end-to-end check, few samples. Only 'new' and 'update' alerts count: an 'end' alert is
  sent when the track ends, later by design.
"""
from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench import procstat as ps
from edge.bench.replay import bench_config, open_bench_feed
from edge.bench.stream import stream_info
from edge.pipeline import PipelineObserver
from edge.types import FramePair, ScreeningEvent

WARMUP_S = 2.0


def _subscribe(ctx, endpoint: str, out: list, ready: threading.Event, stop: threading.Event) -> None:
    import zmq

    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"alert")
    sub.connect(endpoint)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    ready.set()
    try:
        while not stop.is_set() or poller.poll(0):
            if not poller.poll(50):
                continue
            frames = sub.recv_multipart()
            now = time.monotonic_ns()
            body = json.loads(frames[1])
            out.append((body.get("kind"), body.get("seq"), now))
    finally:
        sub.close(linger=0)


class DecidingPair(PipelineObserver):
    """Notes, for every message published, the capture stamp of the pair being processed:
    ``sent[(kind, seq)] = (type, pair t_ns)``."""

    def __init__(self) -> None:
        self.t_ns = 0
        self.sent: dict[tuple[str, int], tuple[str, int]] = {}

    def pair_started(self, pair: FramePair) -> None:
        self.t_ns = pair.t_ns

    def event_published(self, event: ScreeningEvent, body: dict[str, Any]) -> None:
        self.sent[(body["kind"], body["seq"])] = (body["type"], self.t_ns)


def run_live(stream: Path, *, seconds: float = 30.0, threads: int = 1, detector: dict | None = None,
             subscribe: bool = True, start_at: float | None = None) -> dict:
    """Run the live station on ``stream`` (looped, real-time) for ``seconds``; JSON-ready dict.

    start_at: CLOCK_MONOTONIC second (time.monotonic(), the same clock in every process) to
    start capturing at, so parallel stations measure the same window after all set up."""
    from edge.io.recording import open_recording
    from edge.pipeline import WallClock, build_pipeline
    from edge.station import Station

    info = stream_info(stream)
    rec = open_recording(stream)
    tmp = tempfile.TemporaryDirectory(prefix="bench-live-")
    cfg = bench_config(rec.meta.station_id, threads, Path(tmp.name) / "journal.sqlite", detector)
    data = cfg.model_dump()
    for cam in ("rgb", "thermal"):
        meta = rec.meta.rgb if cam == "rgb" else rec.meta.thermal
        data["sources"][cam] = {"kind": "recording", "path": str(stream), "realtime": True, "loop": True,
                                "fps": meta.fps, "width": meta.width, "height": meta.height,
                                **({"units": meta.units} if cam == "thermal" else {})}
    data["sources"]["mode"] = "live"
    cfg = type(cfg).model_validate(data)
    ctx, feed = open_bench_feed(cfg)
    received: list = []
    stop_sub, ready = threading.Event(), threading.Event()
    sub_th = None
    if subscribe:
        sub_th = threading.Thread(target=_subscribe, args=(ctx, feed.endpoint, received, ready, stop_sub),
                                  daemon=True)
        sub_th.start()
        ready.wait(5)
        time.sleep(0.3)  # PUB/SUB join: let the subscription reach the publisher

    from prometheus_client import CollectorRegistry

    # Which pair decided each message: noted with the message's seq as it is published. (An
    # event's own t_ns is its person's best frame, which may be older than the frame that
    # tipped the decision.)
    deciding = DecidingPair()
    pipe = build_pipeline(cfg, publisher=feed.publisher, wall_clock=WallClock.now(),
                          thermal_units=rec.thermal_units, observers=[deciding])
    sent = deciding.sent
    lat_ms = np.full(int(seconds * 12) + 64, np.nan)
    proc_ms = np.full_like(lat_ms, np.nan)  # the pipeline's own time for that pair
    stage_ms: dict[str, np.ndarray] = {}  # per pipeline stage, for the tail
    n = [0]

    done_ns = np.zeros(len(lat_ms), np.int64)  # when each pair finished (warm-up split)

    def on_pair(pair, res) -> None:
        if n[0] < len(lat_ms):
            done_ns[n[0]] = now = time.monotonic_ns()
            lat_ms[n[0]] = (now - pair.t_ns) / 1e6
            proc_ms[n[0]] = sum(res.timing_ms.values())
            for k, v in res.timing_ms.items():
                if k not in stage_ms:  # once per stage (setdefault would allocate on every pair)
                    stage_ms[k] = np.full_like(lat_ms, np.nan)
                stage_ms[k][n[0]] = v
        n[0] += 1

    # the station opens its cameras from the config: recording, realtime, loop (RecordingCameraSource)
    station = Station(cfg, pipeline=pipe, publisher=feed.publisher, registry=CollectorRegistry(),
                      on_pair=on_pair)
    if start_at is not None and start_at > time.monotonic():
        time.sleep(start_at - time.monotonic())
    cpu0, t0 = ps.cpu_s(), time.monotonic()
    # thermal frames dropped during the warm-up (sessions' first runs, caches), counted apart
    # like the pairs: a gateway is judged on its steady state
    dropped_warm = {}

    def note_warmup_drops() -> None:
        w = station.workers.get("thermal")
        dropped_warm["thermal"] = w.stats.dropped if w is not None else 0

    warm_timer = threading.Timer(WARMUP_S, note_warmup_drops)
    warm_timer.start()
    result = station.run(max_seconds=seconds)
    warm_timer.cancel()
    wall_s = time.monotonic() - t0
    cpu_used = ps.cpu_s() - cpu0
    time.sleep(0.3)  # let the last alerts arrive
    stop_sub.set()
    if sub_th is not None:
        sub_th.join(2)
    cams = {c: w.stats.snapshot() for c, w in station.workers.items()}
    feed.close()
    ctx.term()
    tmp.cleanup()

    k = min(n[0], len(lat_ms))
    ok = np.isfinite(lat_ms[:k])
    # skip the first second: sessions and caches warm up, the first pair waits on both cameras
    skip = int(info["thermal_fps"]) if ok.sum() > 2 * info["thermal_fps"] else 0
    warm, proc = lat_ms[:k][ok][skip:], proc_ms[:k][ok][skip:]
    wait = warm - proc  # pairing (waiting for the next RGB frame), queues, the loop
    stages = {}
    for name, v in stage_ms.items():
        v = v[:k][ok][skip:]
        stages[name] = {"p50": ps.rnd(ps.pct(v, 50)), "p99": ps.rnd(ps.pct(v, 99))}

    def dist(v: np.ndarray) -> dict:
        return {"n": int(len(v)), "p50": ps.rnd(ps.pct(v, 50)), "p90": ps.rnd(ps.pct(v, 90)),
                "p99": ps.rnd(ps.pct(v, 99)), "max": ps.rnd(v.max() if len(v) else None)}
    # 'end' alerts leave when the track ends (later by design); the latency that matters is the
    # decision's: 'new' (and 'update'), from the capture stamp of the pair that decided it
    alert_lat = []
    for kind, seq, now in received:
        typ, t_ns = sent.get((kind, seq), ("", 0))
        if typ in ("new", "update") and t_ns > 0:
            alert_lat.append((now - t_ns) / 1e6)
    expected_pairs = wall_s * info["thermal_fps"]
    # steady state: after the first WARMUP_S (cameras opening, sessions warming; the first
    # thermal frames can arrive before any RGB frame and stay unpaired)
    t_warm = int((t0 + WARMUP_S) * 1e9)
    steady_pairs = int((done_ns[:min(n[0], len(done_ns))] >= t_warm).sum())
    steady_expected = max(0.0, wall_s - WARMUP_S) * info["thermal_fps"]
    return {
        "kind": "live",
        "seconds": round(wall_s, 2),
        "threads": threads,
        "pairs": result.pairs,
        "expected_pairs": round(expected_pairs, 1),
        "steady_pairs": steady_pairs,
        "steady_expected_pairs": round(steady_expected, 1),
        "pipeline_errors": result.pipeline_errors,
        # thermal frames no RGB frame was near enough to (|dt| > pairing tolerance): in live mode
        # frames are stamped on arrival, so a capture thread delayed by CPU load skews its stamps
        "unpaired_thermal": station.pairer.stats.unpaired_thermal,
        "rgb_dropped": cams["rgb"]["dropped"],
        "thermal_dropped": cams["thermal"]["dropped"],
        "thermal_dropped_warmup": dropped_warm.get("thermal", cams["thermal"]["dropped"]),
        "frames": {c: cams[c]["frames"] for c in cams},
        "cpu_s": round(cpu_used, 3),
        "cpu_cores_used": round(cpu_used / wall_s, 3) if wall_s > 0 else None,
        "pair_latency_ms": dist(warm),
        "pair_processing_ms": dist(proc),
        "pair_wait_ms": dist(wait),
        "pair_stage_ms": stages,
        "alert_latency_ms": {"n": len(alert_lat), "p50": ps.rnd(ps.pct(alert_lat, 50)),
                             "p99": ps.rnd(ps.pct(alert_lat, 99)),
                             "max": ps.rnd(max(alert_lat) if alert_lat else None)},
        "alerts_received": len(received),
        "rss_peak_mb": ps.rnd(ps.rss_peak_mb(), 1),
    }
