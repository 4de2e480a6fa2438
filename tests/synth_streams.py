"""Small synthetic recordings (the recording format) for source, capture and station tests: fast to write,
every frame identifiable (thermal pixel (0,0) = frame index + 30000, RGB pixel (0,0) = index % 256)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.io.recording import CameraMeta, RecordingWriter, StreamMeta

RGB_WH = (64, 48)
THERMAL_WH = (32, 24)


def make_recording(path: Path, seconds: float = 2.0, rgb_fps: float = 30.0, thermal_fps: float = 9.0,
                   seed: int = 0, ffc_at: int | None = None, rgb_file: str = "rgb.avi") -> Path:
    """rgb_file: 'rgb.avi' (the simulator's MJPEG AVI) or 'rgb.mkv' (what `record` writes)."""
    rng = np.random.default_rng(seed)
    meta = StreamMeta(
        station_id="test-gate", start_utc="2026-11-26T09:00:00.000000Z", t0_ns=0,
        rgb=CameraMeta("rgb0", RGB_WH[0], RGB_WH[1], rgb_fps, "bgr24", rgb_file),
        thermal=CameraMeta("lepton0", THERMAL_WH[0], THERMAL_WH[1], thermal_fps, "gray16le", "thermal.mkv",
                           units="centikelvin"))
    with RecordingWriter(path, meta) as w:
        frames = [("rgb", round(i * 1e9 / rgb_fps) + 1_000_000) for i in range(int(seconds * rgb_fps))]
        frames += [("thermal", round(i * 1e9 / thermal_fps)) for i in range(int(seconds * thermal_fps))]
        n = {"rgb": 0, "thermal": 0}
        for cam, t_ns in sorted(frames, key=lambda f: f[1]):
            i = n[cam]
            n[cam] += 1
            if cam == "rgb":
                img = np.full((RGB_WH[1], RGB_WH[0], 3), 40, np.uint8)
                img[:8, :8] = i % 256
                w.write("rgb", img, t_ns)
            else:
                img = rng.integers(29000, 31500, (THERMAL_WH[1], THERMAL_WH[0]), dtype=np.uint16)
                img[0, 0] = 30000 + i
                ffc = "in_progress" if ffc_at is not None and i == ffc_at else "none"
                w.write("thermal", img, t_ns, ffc)
    return path


