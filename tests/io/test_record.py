"""`thermal-edge record` writes the recording format the replayer reads: thermal bit-exact,
timestamps and FFC states kept, and a replay of the capture reaches the same verdicts."""
from __future__ import annotations

from pathlib import Path

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
    src = rec.source(cam)
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
    assert all(np.abs(fa.image.astype(int) - fb.image).mean() < 3 for fa, fb in zip(ra, rb))  # MJPEG q95
    assert b.meta.extra["capture"]["thermal"]["dropped"] == 0


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
