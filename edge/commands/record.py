"""`thermal-edge record --config station.toml --out DIR --seconds N`: capture what the station's
cameras see into a recording (format v2: lossless 16-bit thermal, MJPEG RGB, one clock), so a
site capture can be replayed (`thermal-edge replay DIR`) and evaluated. An MJPEG camera's JPEG
packets are stored as they arrived (bit-exact, no re-encode); stream.json comes first and every
frame is flushed with its timestamps.csv row, so a recording killed mid-run (SIGKILL, power cut)
replays up to its last complete frame.

Uses the same sources, capture threads and watchdog as `run`, without the pipeline. Live mode:
N seconds of wall time, frames stamped on arrival. Replay mode (sources are recordings): N
seconds of recorded time (or the whole stream), timestamps and wall-clock start kept, nothing
dropped -- a recording re-recorded is the same recording (thermal bit-exact).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_FPS = {"rgb": 30.0, "thermal": 8.7}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record the station's cameras into a replayable recording folder")
    p.add_argument("--config", "-c", type=Path, required=True, help="station config TOML")
    p.add_argument("--out", type=Path, required=True, help="recording folder to create (must not hold a recording)")
    p.add_argument("--seconds", type=float, required=True, help="how long to record, s (replay mode: recorded time)")
    p.set_defaults(func=run)


def _camera_meta(cam: str, cam_cfg: Any, shape: tuple[int, ...], units: str) -> Any:
    from edge.io.recording import CameraMeta, open_recording

    fps, cam_id = cam_cfg.fps, cam
    if cam_cfg.kind == "recording":
        m = getattr(open_recording(cam_cfg.path).meta, cam)
        fps, cam_id = fps or m.fps, m.id
    h, w = shape[:2]
    if cam == "thermal":
        return CameraMeta(cam_id, w, h, fps or DEFAULT_FPS[cam], "gray16le", "thermal.mkv", units=units)
    # MJPEG in Matroska: an MJPEG camera's packets stored as they arrived, each frame flushed
    return CameraMeta(cam_id, w, h, fps or DEFAULT_FPS[cam], "bgr24", "rgb.mkv")


def _shape(frame: Any) -> tuple[int, ...]:
    """A frame's image shape without decoding it (a JpegFrame knows it from its header)."""
    shape = getattr(frame, "shape", None)
    return tuple(shape) if shape is not None else frame.image.shape


def _clock(cfg: Any, first_t_ns: int) -> tuple[str, int]:
    """(start_utc, t0_ns) for stream.json."""
    src = cfg.sources
    if src.mode == "replay" and src.thermal.kind == "recording":
        from edge.io.recording import open_recording

        m = open_recording(src.thermal.path).meta
        return m.start_utc, m.t0_ns
    from edge.pipeline import WallClock

    return WallClock.now().iso(first_t_ns), first_t_ns


def record(cfg: Any, out: Path, seconds: float, stop: threading.Event | None = None,
           config_name: str = "") -> dict[str, Any]:
    """Record ``seconds`` from the configured sources into ``out``. Returns per-camera counts."""
    from edge.errors import UserError
    from edge.io.jpegframes import JpegFrame
    from edge.io.recording import RecordingWriter, StreamMeta
    from edge.station import CAMERAS, build_capture

    if (out / "stream.json").exists():
        raise UserError(f"{out}: already holds a recording; choose another --out")
    live = cfg.sources.mode == "live"
    stop = stop or threading.Event()
    # lazy_decode: MJPEG frames arrive as the camera's JPEG packets (JpegFrame), stored as they are
    hub, by_camera, watchdog = build_capture(cfg.sources, stop, lazy_decode=True)
    workers = list(by_camera.values())
    for w in workers:
        w.start()
    if live:
        watchdog.start()
    writer = None
    pending: list[Any] = []  # frames before both cameras have shown their size
    written = {c: 0 for c in CAMERAS}
    t_begin = time.monotonic()
    first_t: int | None = None
    try:
        while not stop.is_set():
            f = hub.get(0.2)
            if f is None:
                if hub.finished:
                    break
            else:
                first_t = f.t_ns if first_t is None else first_t
                if not live and f.t_ns - first_t >= seconds * 1e9:
                    break
                pending.append(f)
            if writer is None and {p.camera for p in pending} == set(CAMERAS):
                firsts = {c: next(p for p in pending if p.camera == c) for c in CAMERAS}
                assert first_t is not None  # set with the first pending frame
                start_utc, t0_ns = _clock(cfg, first_t)
                units = cfg.sources.thermal.units
                meta = StreamMeta(cfg.station.id, start_utc, t0_ns,
                                  _camera_meta("rgb", cfg.sources.rgb, _shape(firsts["rgb"]), units),
                                  _camera_meta("thermal", cfg.sources.thermal, _shape(firsts["thermal"]), units),
                                  extra={"recorded_by": "thermal-edge record", "config": config_name,
                                         "mode": cfg.sources.mode})
                writer = RecordingWriter(out, meta)
            if writer is not None:
                for p in pending:
                    if isinstance(p, JpegFrame):
                        writer.write_jpeg(p.jpeg, p.t_ns)  # bit-exact: no decode, no re-encode
                    elif by_camera[p.camera].decode_or_count(p):
                        writer.write(p.camera, p.image, p.t_ns, p.ffc_state if p.camera == "thermal" else "none")
                    else:
                        continue
                    written[p.camera] += 1
                pending.clear()
            if live and time.monotonic() - t_begin >= seconds:
                break
    finally:
        stop.set()
        for w in workers:
            w.join(2.0)
    stats = {w.camera: {**w.stats.snapshot(), "written": written[w.camera]} for w in workers}
    if writer is None:
        raise UserError(f"{out}: nothing recorded -- no frames from "
                        + ", ".join(c for c in CAMERAS if not any(p.camera == c for p in pending))
                        + "; " + "; ".join(f"{w.camera}: {w.stats.last_error or w.stats.state}" for w in workers))
    writer.meta.extra["capture"] = {c: {k: s[k] for k in ("dropped", "corrupt", "reconnects", "ts_jumps")}
                                    for c, s in stats.items()}
    writer.close()
    return stats


def run(args: argparse.Namespace) -> int:
    from edge.commands._common import load_or_report
    from edge.logs import setup_logging
    from edge.station import quiet_opencv

    cfg = load_or_report(args.config)
    if cfg is None:
        return 2
    setup_logging(cfg.health.log_format, cfg.health.log_level, cfg.health.log_repeat_window_s)
    quiet_opencv()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())  # stop early, still write a complete recording
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = record(cfg, args.out, args.seconds, stop, str(args.config))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for cam, s in stats.items():
        print(f"{cam}: {s['written']} frames written, {s['dropped']} dropped, {s['corrupt']} corrupt, "
              f"{s['reconnects']} reconnects", file=sys.stderr)
    print(f"recorded {args.out} (replay with: thermal-edge replay {args.out})")
    return 0
