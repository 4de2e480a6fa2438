"""The benchmark's input stream and the sources that read it, looped.

The stream is rendered by the simulator (edge/sim) from the committed, seeded
benchmarks/bench_scenario.toml into build/bench/<name>/ (git-ignored) the first time the bench
runs, and again only when the scenario or the generator version changes (a ``.rendered`` stamp
holds both, as for sample_streams/).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from edge.recording import open_recording
from edge.sources import RecordingCameraSource
from edge.types import Frame

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_SCENARIO = REPO_ROOT / "benchmarks" / "bench_scenario.toml"
BENCH_DIR = REPO_ROOT / "build" / "bench"
STAMP = ".rendered"


def ensure_stream(scenario_file: Path = BENCH_SCENARIO, out_dir: Path | None = None,
                  log=print) -> Path:
    """Render ``scenario_file`` into ``out_dir`` (default build/bench/<scenario stem>) unless an
    up-to-date render is there; returns the recording folder."""
    from edge.sim import render_scenario
    from edge.sim.render_all import scenario_stamp

    scenario_file = Path(scenario_file)
    out_dir = Path(out_dir) if out_dir is not None else BENCH_DIR / scenario_file.stem
    want = scenario_stamp(scenario_file)
    stamp = out_dir / STAMP
    if (out_dir / "stream.json").is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out_dir
    if out_dir.exists():
        shutil.rmtree(out_dir)
    log(f"bench: rendering {scenario_file.name} into {out_dir} (once; cached by scenario hash)")
    render_scenario(scenario_file, out_dir)
    stamp.write_text(want + "\n")
    return out_dir


class LimitedSource:
    """A FrameSource that ends after ``n_frames`` frames of ``inner`` (which may loop forever)."""

    def __init__(self, inner, n_frames: int):
        self.inner = inner
        self.name = inner.name
        self.left = int(n_frames)

    def read(self) -> Frame | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def stream_info(stream: Path) -> dict:
    """Frame counts, rates and duration of a recording."""
    rec = open_recording(stream)
    n_rgb, n_th = len(rec.rows["rgb"]), len(rec.rows["thermal"])
    t_all = [r[1] for r in rec.rows["rgb"]] + [r[1] for r in rec.rows["thermal"]]
    return {"path": str(stream), "rgb_frames": n_rgb, "thermal_frames": n_th,
            "rgb_wh": [rec.meta.rgb.width, rec.meta.rgb.height], "rgb_fps": rec.meta.rgb.fps,
            "thermal_wh": [rec.meta.thermal.width, rec.meta.thermal.height], "thermal_fps": rec.meta.thermal.fps,
            "duration_s": round((max(t_all) - min(t_all)) / 1e9, 3), "station_id": rec.meta.station_id}


def looped_sources(stream: Path, loops: float, *, realtime: bool = False) -> list:
    """[rgb, thermal] sources replaying ``stream`` ``loops`` times back to back (fractional loops
    cut the last pass short). Timestamps keep increasing across passes, as a camera's would."""
    rec = open_recording(stream)
    out = []
    for cam in ("rgb", "thermal"):
        inner = RecordingCameraSource(stream, cam, realtime=realtime, loop=loops > 1)
        out.append(LimitedSource(inner, round(len(rec.rows[cam]) * loops)))
    return out
