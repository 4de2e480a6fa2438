"""Rebuild the metadata of a recording killed before it could write it (`thermal-edge recording
repair DIR`).

Recordings written since the crash-safe writer (FORMAT.md "Crash safety") need no repair: they
have stream.json from the start and a timestamps.csv row per flushed frame. Older ones wrote
both only at the end, so a SIGKILL or a power cut left thermal.mkv (Matroska, readable up to its
last whole cluster) and rgb.avi (no index; FFmpeg reads it frame by frame) without them. This
rebuilds them from the videos themselves:

* thermal: one row per whole frame, ``t_ns`` from the Matroska block times (1 ms resolution,
  relative to the first frame) -- the writer took them from the frames' own capture times;
* rgb: one row per frame FFmpeg (or our Matroska reader) can read, ``t_ns`` at the container's
  nominal frame rate from 0 -- the per-frame capture times are lost with the table, so RGB/thermal
  alignment is approximate (within about one RGB frame, plus the cameras' start-up offset);
* stream.json: sizes and rates from the videos, the station id and units from the user, the
  start time from ``--start-utc`` or the thermal file's modification time minus its duration.

``extra.repaired`` in stream.json says all this, so nobody mistakes a repaired capture's timing
for a recorded one.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import UserError
from edge.io.mkv import Gray16MkvReader, MkvError
from edge.io.recording import (
    TIMESTAMP_COLUMNS,
    CameraMeta,
    StreamMeta,
    _replace_text,
)
from edge.io.stderr import quiet_stderr
from edge.thermal.radiometry import UNIT_SCALE_K
from edge.utc import format_utc

DEFAULT_FPS = {"rgb": 30.0, "thermal": 8.7}


def _thermal_times_ms(video: Path) -> tuple[tuple[int, int], list[int]]:
    """((width, height), block time in ms of every whole, decodable frame) of a v2 thermal.mkv."""
    try:
        reader = Gray16MkvReader.open(video)
    except (MkvError, OSError) as e:
        raise UserError(f"{video}: cannot be repaired: {e}") from None
    if reader is None or reader.codec != "gray16":
        raise UserError(f"{video}: not the v2 thermal layout (raw gray16 + zlib Matroska); cannot be repaired")
    times: list[int] = []
    try:
        for block in reader.frames():
            reader.decode(block)  # a frame cut short or damaged ends the recoverable part
            times.append(reader.block_ms)
    except MkvError:
        pass
    finally:
        reader.close()
    return (reader.width, reader.height), times


def _rgb_frames(video: Path) -> tuple[tuple[int, int], float, int]:
    """((width, height), nominal fps, frames readable) of the RGB video."""
    try:
        mkv = Gray16MkvReader.open(video)
    except (MkvError, OSError):
        mkv = None
    if mkv is not None and mkv.codec == "mjpeg":  # rgb.mkv: never needs this, but a stray one may
        n = 0
        try:
            for _ in mkv.frames():
                n += 1
        except MkvError:
            pass
        mkv.close()
        return (mkv.width, mkv.height), DEFAULT_FPS["rgb"], n
    with quiet_stderr():  # FFmpeg warns about the missing index and the cut last frame
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise UserError(f"{video}: FFmpeg cannot open it (cut off before its header was written?)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        wh = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        n = 0
        while True:
            ok, img = cap.read()
            if not ok or img is None or img.shape[:2] != (wh[1], wh[0]):
                break
            n += 1
        cap.release()
    return wh, (fps if fps and np.isfinite(fps) and 0 < fps <= 240 else DEFAULT_FPS["rgb"]), n


def repair_recording(folder: str | Path, station_id: str, units: str = "centikelvin",
                     start_utc: str | None = None) -> dict[str, Any]:
    """Write stream.json and timestamps.csv for a recording that lost them; returns a summary.
    Refuses (UserError) a folder that still has its timestamps.csv: that one replays as it is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: recording folder not found")
    if (folder / "timestamps.csv").exists():
        raise UserError(f"{folder}: has its timestamps.csv -- nothing to repair; replay reads a cut-short "
                        "recording as it is (lost frames are counted)")
    if units not in UNIT_SCALE_K:
        raise UserError(f"--units {units!r}; allowed: {sorted(UNIT_SCALE_K)}")
    thermal = folder / "thermal.mkv"
    rgb = next((folder / n for n in ("rgb.avi", "rgb.mkv") if (folder / n).is_file()), None)
    if not thermal.is_file() or rgb is None:
        raise UserError(f"{folder}: needs thermal.mkv and rgb.avi (or rgb.mkv) to rebuild from")
    (tw, th), t_ms = _thermal_times_ms(thermal)
    (rw, rh), rgb_fps, n_rgb = _rgb_frames(rgb)
    if not t_ms or not n_rgb:
        raise UserError(f"{folder}: nothing recoverable ({len(t_ms)} whole thermal frames, {n_rgb} RGB frames)")
    steps = np.diff(t_ms)
    th_fps = 1000.0 / float(np.median(steps)) if len(steps) and np.median(steps) > 0 else DEFAULT_FPS["thermal"]
    if start_utc is None:
        mtime = dt.datetime.fromtimestamp(thermal.stat().st_mtime, dt.UTC)
        start = mtime - dt.timedelta(milliseconds=t_ms[-1])
        start_utc, start_how = format_utc(start), "thermal.mkv modification time minus its duration"
    else:
        start_how = "given with --start-utc"
    rows = [("thermal", i, ms * 1_000_000, "none") for i, ms in enumerate(t_ms)]
    rows += [("rgb", i, round(i * 1e9 / rgb_fps), "") for i in range(n_rgb)]
    rows.sort(key=lambda r: (r[2], r[0] != "thermal"))
    meta = StreamMeta(
        station_id=station_id, start_utc=start_utc, t0_ns=0,
        rgb=CameraMeta("rgb0", rw, rh, round(rgb_fps, 3), "bgr24", rgb.name),
        thermal=CameraMeta("thermal0", tw, th, round(th_fps, 3), "gray16le", thermal.name, units=units),
        extra={"repaired": {
            "by": "thermal-edge recording repair",
            "thermal_times": "Matroska block times (1 ms resolution), relative to the first frame",
            "rgb_times": f"nominal {rgb_fps:g} frames/s from 0: capture times lost, alignment with thermal "
                         "approximate (about one RGB frame plus the cameras' start-up offset)",
            "start_utc": start_how, "ffc_state": "unknown (written as none)"}})
    # stream.json (validated by the reader) before the table: a failure leaves nothing half-made
    _replace_text(folder / "stream.json", json.dumps(meta.to_json(), indent=2) + "\n")
    _replace_text(folder / "timestamps.csv",
                  "".join(",".join(map(str, r)) + "\r\n" for r in [TIMESTAMP_COLUMNS, *rows]))
    return {"thermal_frames": len(t_ms), "rgb_frames": n_rgb, "thermal_fps": round(th_fps, 3),
            "rgb_fps": rgb_fps, "start_utc": start_utc}
