"""Instrumented replay: the whole pipeline as fast as it goes (no sleeping), one process.

The loop is ``edge.replay.replay``'s (``edge.io.pairing.paired`` -> Pipeline.process_pair ->
finish) with a real feed (PUB socket on loopback + synced journal, as a station runs it), plus:
- decode time: each source ``read()`` is timed (OpenCV/FFmpeg decode + the format checks);
- pairing time: each ``Pairer.push``;
- the pipeline's own per-stage ``timing_ms``, the detector's own preprocess/inference/
  postprocess split (``last_timing_ms``), and registration time split out of measurement by
  timing the calls into the Registration object the pipeline hands to ``measure_faces``;
- resident memory sampled once a second (and the peak), for the long replay.
Per-pair samples go into arrays allocated (and touched) up front so the harness itself does not
grow while it measures growth.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench import procstat as ps
from edge.bench.stream import replay_sources, stream_info
from edge.io.pairing import Pairer, paired
from edge.types import Frame, FramePair

# Stage columns of the per-pair table (ms). 'detect' is the pipeline's wall time around
# detector.detect; preprocess/inference/postprocess are the detector's own split of it.
PIPE_STAGES = ("radiometry", "detect", "mask", "measure", "track", "decide", "publish")
DET_STAGES = ("preprocess", "inference", "postprocess", "total")


class TimedRegistration:
    """Wraps the pipeline's Registration; every method call's time adds to ``total_s``."""

    def __init__(self, inner):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "total_s", 0.0)

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return attr(*a, **kw)
            finally:
                object.__setattr__(self, "total_s", self.total_s + time.perf_counter() - t)
        return timed


class TimedPairer(Pairer):
    """A Pairer whose ``push`` calls add their time to ``push_s`` (the pairing cost per frame)."""

    push_s = 0.0

    def push(self, frame: Frame) -> list[FramePair]:
        t = time.perf_counter()
        try:
            return super().push(frame)
        finally:
            self.push_s += time.perf_counter() - t


def bench_config(station_id: str, threads: int, journal_path: Path, detector: dict | None = None) -> Any:
    """Station defaults + calibration/<station>.toml, ``threads`` onnxruntime threads, and a feed
    on random loopback ports with its journal in ``journal_path``."""
    from edge.pipeline import default_config

    cfg = default_config(station_id)
    data = cfg.model_dump()
    data["detector"] = {**data.get("detector", {}), "intra_op_threads": int(threads), **(detector or {})}
    if "feed" in data:
        data["feed"].update(endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*",
                            journal_path=str(journal_path))
    data["health"] = {**data.get("health", {}), "metrics_port": 0}
    return type(cfg).model_validate(data)


def open_bench_feed(cfg: Any):
    """(zmq context, Feed) opened as the station opens its feed (``open_feed``)."""
    import zmq

    from edge.feed.publishing import open_feed

    ctx = zmq.Context()
    return ctx, open_feed(ctx, cfg.feed, cfg.station.id)


def run_replay(stream: Path, *, loops: float = 1.0, threads: int = 1, rss_every_s: float = 1.0,
               detector: dict | None = None, max_wall_s: float | None = None) -> dict:
    """Replay ``stream`` ``loops`` times through the pipeline; returns a JSON-ready dict.

    max_wall_s: stop early (counted, reported) once this much wall time has passed -- the long
    RSS replay is bounded by time on slow machines rather than running for ever.
    """
    import cv2

    from edge.io.recording import open_recording
    from edge.pipeline import WallClock, build_pipeline

    t_setup = time.perf_counter()
    info = stream_info(stream)
    rec = open_recording(stream)
    tmp = tempfile.TemporaryDirectory(prefix="bench-journal-")
    cfg = bench_config(rec.meta.station_id, threads, Path(tmp.name) / "journal.sqlite", detector)
    ctx, feed = open_bench_feed(cfg)
    pipe = build_pipeline(cfg, publisher=feed.publisher,
                          wall_clock=WallClock.from_iso(rec.meta.start_utc, rec.meta.t0_ns),
                          thermal_units=rec.thermal_units)
    reg = TimedRegistration(pipe.registration)
    # a timing proxy (Registration's methods via __getattr__); goes when Pipeline gets its observer hook
    pipe.registration = reg  # type: ignore[assignment]
    det = pipe.detector
    # one warm-up inference outside the clock: onnxruntime allocates its arena on the first run
    det.detect(np.zeros((rec.meta.rgb.height, rec.meta.rgb.width, 3), np.uint8))
    setup_s = time.perf_counter() - t_setup

    n_max = int(info["thermal_frames"] * loops) + 8
    cols = PIPE_STAGES + tuple(f"det_{s}" for s in DET_STAGES) + ("registration", "faces")
    table = {c: np.full(n_max, np.nan) for c in cols}  # touched now: no growth while measuring
    rss_t = np.full(int(3600 / rss_every_s) + 2, np.nan)
    rss_v = np.full_like(rss_t, np.nan)
    n_rss = 0
    decode_wait, decode_work = replay_sources(stream, loops, cfg.pairing)
    pairer = TimedPairer(cfg.pairing)
    n = 0
    events = alerts = 0
    stopped_early = False
    cpu0 = ps.cpu_s()
    t0 = time.perf_counter()
    next_rss = t0
    try:
        for pair in paired(decode_wait, pairer=pairer):  # the last, flushed pairs count like the others
            if n >= n_max:
                break
            reg_before = reg.total_s
            res = pipe.process_pair(pair)
            tm = res.timing_ms
            for s in PIPE_STAGES:
                table[s][n] = tm.get(s, np.nan)
            for s in DET_STAGES:
                table[f"det_{s}"][n] = getattr(det, "last_timing_ms", {}).get(s, np.nan)  # optional on a FaceDetector
            table["registration"][n] = (reg.total_s - reg_before) * 1e3
            table["faces"][n] = len(res.detections)
            events += len(res.events)
            alerts += sum(e.kind == "alert" for e in res.events)
            n += 1
            now = time.perf_counter()
            if now >= next_rss and n_rss < len(rss_t):
                rss_t[n_rss], rss_v[n_rss] = now - t0, ps.rss_mb()
                n_rss += 1
                next_rss = now + rss_every_s
            if max_wall_s is not None and now - t0 > max_wall_s:
                stopped_early = True
                break
        events += len(pipe.finish())
    finally:
        for src in decode_wait:
            src.close()
    wall_s = time.perf_counter() - t0
    cpu_used = ps.cpu_s() - cpu0
    feed.close()
    ctx.term()
    tmp.cleanup()

    m = min(n, n_max)
    per = {c: v[:m] for c, v in table.items()}
    frames = {s.name: s.frames for s in decode_wait}

    def mean_ms(c: str) -> float | None:
        v = per[c][np.isfinite(per[c])]
        return float(v.mean()) if v.size else None

    stage_mean = {
        "decode_wait": sum(s.total_s for s in decode_wait) * 1e3 / max(n, 1),
        "pairing": pairer.push_s * 1e3 / max(n, 1),
        "radiometry": mean_ms("radiometry"),
        "preprocess": mean_ms("det_preprocess"),
        "inference": mean_ms("det_inference"),
        "postprocess": mean_ms("det_postprocess"),
        "detect_other": (mean_ms("detect") or 0.0) - (mean_ms("det_total") or 0.0),
        "mask": mean_ms("mask"),
        "registration": mean_ms("registration"),
        "measurement": (mean_ms("measure") or 0.0) - (mean_ms("registration") or 0.0),
        "tracking": mean_ms("track"),
        "decision": mean_ms("decide"),
        "publish": mean_ms("publish"),
    }
    pipeline_ms = wall_s * 1e3 / max(n, 1)
    stage_mean["other"] = pipeline_ms - sum(v for v in stage_mean.values() if v is not None)
    # decode work done in the reader threads (not in the sum: the loop only paid decode_wait)
    stage_mean["decode"] = sum(s.total_s for s in decode_work) * 1e3 / max(n, 1)
    det_ms = mean_ms("det_total")
    rss = rss_v[:n_rss]
    return {
        "kind": "replay",
        "stream": info,
        "loops": loops,
        "threads": threads,
        "onnxruntime_threads": threads,
        "opencv_threads": cv2.getNumThreads(),
        "stopped_early": stopped_early,
        "setup_s": round(setup_s, 3),
        "pairs": n,
        "frames": frames,
        "stream_s": round(n / max(info["thermal_frames"], 1) * info["duration_s"], 2),
        "events": events,
        "alerts": alerts,
        "faces_per_pair": ps.rnd(np.nanmean(per["faces"]) if m else None, 3),
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_used, 3),
        "cpu_cores_used": round(cpu_used / wall_s, 3) if wall_s > 0 else None,
        # CPU time per pair: less sensitive than wall time to other load on a shared machine
        "cpu_ms_per_pair": round(cpu_used * 1e3 / max(n, 1), 3),
        "pairs_per_s": round(n / wall_s, 3) if wall_s > 0 else None,
        "pipeline_ms_per_pair": round(pipeline_ms, 3),
        "detector_ms": ps.rnd(det_ms, 3),
        "detector_inference_ms": ps.rnd(mean_ms("det_inference"), 3),
        "pipeline_to_detector_ratio": round(pipeline_ms / det_ms, 3) if det_ms else None,
        "stage_ms_mean": {k: ps.rnd(v, 3) for k, v in stage_mean.items()},
        "stage_ms_p50": {c: ps.rnd(ps.median(per[c][np.isfinite(per[c])]), 3) for c in cols if c != "faces"},
        "rss_samples": [[round(float(a), 2), round(float(b), 2)] for a, b in zip(rss_t[:n_rss], rss)],
        "rss_peak_mb": ps.rnd(ps.rss_peak_mb(), 1),
        "rss_growth": rss_growth(rss_t[:n_rss], rss),
    }


def rss_growth(t_s: np.ndarray, rss: np.ndarray) -> dict:
    """Growth of resident memory after warm-up: median of the last tenth of the samples vs the
    median of the second tenth (the first tenth is warm-up: arenas, caches, first tracks).
    Also the least-squares slope over the same span, MiB per minute."""
    k = len(rss)
    if k < 10:
        return {"start_mb": None, "end_mb": None, "growth_pct": None, "slope_mb_per_min": None, "samples": k}
    a, b = k // 10, 2 * (k // 10)
    start = float(np.median(rss[a:b]))
    end = float(np.median(rss[-(k // 10):]))
    slope = float(np.polyfit(t_s[a:] / 60.0, rss[a:], 1)[0])
    return {"start_mb": round(start, 2), "end_mb": round(end, 2), "growth_pct": round(100 * (end - start) / start, 2),
            "slope_mb_per_min": round(slope, 3), "samples": k}
