"""The benchmark's input stream and the sources that read it, looped.

The stream is rendered by the simulator (edge/sim) from the committed, seeded
benchmarks/bench_scenario.toml into build/bench/<name>/ (git-ignored) the first time the bench
runs, and again only when the scenario or the generator version changes (a ``.rendered`` stamp
holds both, as for sample_streams/).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from edge.io.recording import Recording, open_recording
from edge.paths import REPO_ROOT
from edge.types import Frame

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


def span_ns(rec: Recording) -> int:
    """Time from the recording's first frame to its last, either camera, ns."""
    t_all = [r[1] for cam in ("rgb", "thermal") for r in rec.rows[cam]]
    return max(t_all) - min(t_all)


def stream_info(stream: Path) -> dict:
    """Frame counts, rates and duration of a recording."""
    rec = open_recording(stream)
    n_rgb, n_th = len(rec.rows["rgb"]), len(rec.rows["thermal"])
    return {"path": str(stream), "rgb_frames": n_rgb, "thermal_frames": n_th,
            "rgb_wh": [rec.meta.rgb.width, rec.meta.rgb.height], "rgb_fps": rec.meta.rgb.fps,
            "thermal_wh": [rec.meta.thermal.width, rec.meta.thermal.height], "thermal_fps": rec.meta.thermal.fps,
            "duration_s": round(span_ns(rec) / 1e9, 3), "station_id": rec.meta.station_id}


class LoopedRecordingSource:
    """One camera of a recording played ``loops`` times back to back, as ``replay()`` reads it:
    RGB frames nobody pairs with are skipped undecoded (``image=None``).

    Every pass is shifted by the same offset for both cameras (the stream's span plus one RGB
    period), so each pass pairs exactly like the first and one decode plan serves them all.
    A fractional last pass stops after that fraction of the camera's frames.
    """

    def __init__(self, rec: Recording, camera: str, loops: float, decode: set[int] | None):
        self.rec, self.name, self.decode = rec, camera, decode
        rows = rec.rows[camera]
        self.left = round(len(rows) * loops)
        self.pass_ns = span_ns(rec) + int(1e9 / max(rec.meta.rgb.fps, 1e-3))
        self.k = 0
        self._src = rec.source(camera, decode=decode)
        self._in_pass = 0
        self._n = len(rows)

    def read(self) -> Frame | None:
        if self.left <= 0:
            return None
        if self._in_pass >= self._n:
            self._src.close()
            self._src = self.rec.source(self.name, decode=self.decode)
            self.k += 1
            self._in_pass = 0
        f = self._src.read()
        if f is None:
            return None
        self.left -= 1
        self._in_pass += 1
        f.t_ns += self.k * self.pass_ns
        f.index += self.k * self._n  # frame numbers keep counting, as a camera's would
        return f

    def close(self) -> None:
        self._src.close()


class TimedSource:
    """Times every read() of a source: total seconds and frames."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.total_s = 0.0
        self.frames = 0

    def read(self) -> Frame | None:
        t = time.perf_counter()
        f = self.inner.read()
        self.total_s += time.perf_counter() - t
        self.frames += f is not None
        return f

    def close(self) -> None:
        self.inner.close()


def replay_sources(stream: Path, loops: float, pairing_cfg) -> tuple[list[TimedSource], list[TimedSource]]:
    """[rgb, thermal] sources exactly as ``edge.replay.replay`` builds them (decode only the RGB
    frames pairing uses; each camera read in its own prefetch thread), looped ``loops`` times.

    Returns (the sources for the loop, timed around its reads = time the loop waited for frames;
    the timers inside the prefetch threads = decode work)."""
    from edge.replay import _Prefetch, planned_rgb_frames  # the replay's own machinery

    rec = open_recording(stream)
    plan = planned_rgb_frames(rec, pairing_cfg)
    work = [TimedSource(LoopedRecordingSource(rec, cam, loops, plan if cam == "rgb" else None))
            for cam in ("rgb", "thermal")]
    wait = []
    for w in work:
        wait.append(TimedSource(_Prefetch(w)))
    return wait, work
