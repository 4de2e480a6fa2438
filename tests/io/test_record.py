"""`thermal-edge record` writes the recording format the replayer reads: thermal bit-exact,
timestamps and FFC states kept, and a replay of the capture reaches the same verdicts."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.commands.record import record
from edge.config import validate_data
from edge.errors import UserError
from edge.io.recording import open_recording
from edge.paths import REPO_ROOT as REPO
from tests.synth_streams import make_recording

SAMPLE = REPO / "sample_streams" / "walkthrough"
CALIBRATION = REPO / "calibration" / "sample-gate-1.toml"


def replay_cfg(src: Path, cal: Path, station: str = "test-gate"):
    cam = {"kind": "recording", "path": str(src)}
    return validate_data({"station": {"id": station}, "calibration": {"path": str(cal)},
                          "sources": {"mode": "replay", "rgb": cam, "thermal": cam}, "health": {"metrics_port": 0}})


def frames(rec, cam: str) -> list:
    # every index asked for: MJPEG is then decoded by decode_jpeg from the packets, whatever the container
    src = rec.source(cam, decode=set(range(len(rec.rows[cam]))))
    out = []
    while (f := src.read()) is not None:
        out.append(f)
    src.close()
    return out


@pytest.fixture
def cal(tmp_path: Path) -> Path:
    p = tmp_path / "cal.toml"
    p.write_text('station_id = "test-gate"\ndate = 2026-11-26\n')
    return p


def test_rerecording_is_bit_exact(tmp_path, cal):
    src = make_recording(tmp_path / "in", seconds=2.0, ffc_at=5)
    stats = record(replay_cfg(src, cal), tmp_path / "out", seconds=60)
    a, b = open_recording(src), open_recording(tmp_path / "out")
    assert b.meta.start_utc == a.meta.start_utc and b.meta.thermal.units == "centikelvin"
    ta, tb = frames(a, "thermal"), frames(b, "thermal")
    assert len(tb) == len(ta) == 18 and stats["thermal"]["written"] == 18
    for fa, fb in zip(ta, tb):
        np.testing.assert_array_equal(fa.image, fb.image)  # lossless 16-bit
        assert (fa.t_ns, fa.ffc_state) == (fb.t_ns, fb.ffc_state)
    ra, rb = frames(a, "rgb"), frames(b, "rgb")
    assert [f.t_ns for f in ra] == [f.t_ns for f in rb]
    assert all(np.array_equal(fa.image, fb.image) for fa, fb in zip(ra, rb))  # the same JPEGs, decoded the same
    assert b.meta.extra["capture"]["thermal"]["dropped"] == 0


def mjpeg_packets(video: Path) -> list[bytes]:
    """The JPEG images stored in an MJPEG video, undecoded (FFmpeg demuxer, raw packets)."""
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    assert cap.isOpened() and cap.set(cv2.CAP_PROP_FORMAT, -1)
    out = []
    while (r := cap.read())[0]:
        out.append(r[1].tobytes())
    cap.release()
    return out


def test_mjpeg_camera_packets_are_stored_bit_exact(tmp_path, cal):
    """Item 8: an MJPEG camera's JPEGs go into rgb.mkv as they arrived (no decode, no q95
    re-encode): the packets FFmpeg reads back are byte for byte the camera's."""
    src = make_recording(tmp_path / "in", seconds=1.0)
    record(replay_cfg(src, cal), tmp_path / "out", seconds=60)
    meta = open_recording(tmp_path / "out").meta
    assert meta.rgb.file == "rgb.mkv"
    want, got = mjpeg_packets(src / "rgb.avi"), mjpeg_packets(tmp_path / "out" / "rgb.mkv")
    assert len(got) == len(want) == 30 and got == want
    assert open_recording(tmp_path / "out").source("rgb").decoder == "jpeg-mkv"


def test_seconds_limits_recorded_time(tmp_path, cal):
    src = make_recording(tmp_path / "in", seconds=2.0)
    record(replay_cfg(src, cal), tmp_path / "out", seconds=1.0)
    th = frames(open_recording(tmp_path / "out"), "thermal")
    assert len(th) == 9 and th[-1].t_ns < 1e9


def test_refuses_to_overwrite_a_recording(tmp_path, cal):
    src = make_recording(tmp_path / "in", seconds=0.5)
    with pytest.raises(UserError, match="already holds a recording"):
        record(replay_cfg(src, cal), src, seconds=1)


@pytest.mark.slow
def test_record_command_then_replay_reaches_the_same_verdicts(tmp_path, centerface_path, capsys):
    if not (SAMPLE / "stream.json").is_file():
        pytest.skip(f"{SAMPLE} not rendered (make setup renders it)")
    from edge.pipeline import default_config
    from edge.replay import replay

    (tmp_path / "station.toml").write_text(f"""
[station]
id = "sample-gate-1"
[calibration]
path = "{CALIBRATION}"
[sources]
mode = "replay"
[sources.rgb]
kind = "recording"
path = "{SAMPLE}"
[sources.thermal]
kind = "recording"
path = "{SAMPLE}"
[health]
log_format = "text"
""")
    out = tmp_path / "site-capture"
    assert main(["record", "--config", str(tmp_path / "station.toml"), "--out", str(out), "--seconds", "600"]) == 0
    assert "replay with: thermal-edge replay" in capsys.readouterr().out
    cfg = default_config("sample-gate-1", CALIBRATION)
    want, got = replay(SAMPLE, cfg), replay(out, cfg)
    assert {k: v.status for k, v in got.verdicts.items()} == {k: v.status for k, v in want.verdicts.items()}
    assert "elevated" in {v.status for v in got.verdicts.values()}
    for k, v in want.verdicts.items():
        if v.core_temp_c is not None:
            assert got.verdicts[k].core_temp_c == pytest.approx(v.core_temp_c, abs=0.05)


@pytest.mark.slow
def test_sigkilled_record_replays_every_frame_written_before_the_kill(tmp_path, cal):
    """Item 7: a `record` killed with SIGKILL (no clean-up at all) leaves a readable recording:
    stream.json came first, each frame was flushed with its timestamps.csv row, so a replay gets
    every frame the table lists -- nothing lost but what had no row yet."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from edge.io.recording import LOSS_NO_ROW
    from edge.pipeline import default_config
    from edge.replay import replay

    src = make_recording(tmp_path / "in", seconds=2.0)
    (tmp_path / "station.toml").write_text(f"""
[station]
id = "test-gate"
[calibration]
path = "{cal}"
[sources]
mode = "live"
[sources.rgb]
kind = "recording"
path = "{src}"
loop = true
[sources.thermal]
kind = "recording"
path = "{src}"
loop = true
[health]
log_format = "text"
metrics_port = 0
""")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "record", "--config", str(tmp_path / "station.toml"),
                             "--out", str(out), "--seconds", "600"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        ts = out / "timestamps.csv"
        while time.monotonic() < deadline and (not ts.is_file() or ts.read_text().count("thermal,") < 25):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: more than 2 s of frames in, loops still going
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    rec = open_recording(out)
    listed = {cam: len(rec.rows[cam]) for cam in ("rgb", "thermal")}
    assert listed["thermal"] >= 25 and listed["rgb"] >= 60
    th = frames(rec, "thermal")
    assert len(th) == listed["thermal"]
    # the looping source's frames in order: pixel (0,0) is 30000 + its index in the 18-frame source
    assert [int(f.image[0, 0]) - 30000 for f in th] == [i % 18 for i in range(len(th))]
    got = replay(out, default_config("test-gate", cal))
    assert set(got.lost.get("thermal", {})) <= {LOSS_NO_ROW} and set(got.lost.get("rgb", {})) <= {LOSS_NO_ROW}
    assert sum(got.lost.get(c, {}).get(LOSS_NO_ROW, 0) for c in ("rgb", "thermal")) <= 2  # at most the frame in flight
    assert got.pairs + got.stats.unpaired_thermal == listed["thermal"]


@pytest.mark.slow
def test_recording_repair_rebuilds_a_killed_older_capture(tmp_path, cal, capsys):
    """Item 7 for captures made before the crash-safe writer: a SIGKILL left thermal.mkv (cut in
    its last cluster) and an unindexed rgb.avi, but no stream.json or timestamps.csv.
    `recording repair` rebuilds both from the videos; the capture then replays."""
    import signal
    import subprocess
    import sys

    from edge.pipeline import default_config
    from edge.replay import replay

    src = make_recording(tmp_path / "src", seconds=4.0)  # 36 thermal, 120 RGB frames
    old = tmp_path / "old"
    old.mkdir()
    # what the old writer left: the thermal Matroska as written so far, cut in a cluster ...
    data = (src / "thermal.mkv").read_bytes()
    (old / "thermal.mkv").write_bytes(data[:len(data) * 2 // 3])
    # ... and an AVI from a killed OpenCV writer (no index, never closed)
    script = ("import cv2, numpy as np, os, signal\n"
              f"w = cv2.VideoWriter({str(old / 'rgb.avi')!r}, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*'MJPG'), "
              "30.0, (640, 480))\n"
              "rng = np.random.default_rng(0)\n"
              "for i in range(60):\n"
              "    w.write(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL and (old / "rgb.avi").stat().st_size > 0
    assert not (old / "stream.json").exists()
    with pytest.raises(Exception, match="stream.json: missing"):
        open_recording(old)

    assert main(["recording", "repair", str(old), "--station-id", "test-gate",
                 "--start-utc", "2026-11-26T09:00:00.000000Z"]) == 0
    out = capsys.readouterr().out
    rec = open_recording(old)
    th = frames(rec, "thermal")
    assert 20 <= len(th) < 36 and f"{len(th)} thermal frames" in out
    assert [int(f.image[0, 0]) - 30000 for f in th] == list(range(len(th)))  # the source's frames, in order
    src_t = [t for _, t, _ in open_recording(src).rows["thermal"]]
    assert [f.t_ns for f in th] == [t // 1_000_000 * 1_000_000 for t in src_t[:len(th)]]  # ms from the blocks
    assert 50 <= len(rec.rows["rgb"]) <= 60 and rec.meta.rgb.fps == 30.0
    assert "approximate" in rec.meta.extra["repaired"]["rgb_times"]
    got = replay(old, default_config("test-gate", cal))
    assert got.pairs > 0 and not got.lost
    assert main(["recording", "repair", str(old), "--station-id", "test-gate"]) == 2  # nothing left to repair
    assert "nothing to repair" in capsys.readouterr().err
