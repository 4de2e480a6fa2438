"""A damaged capture is never lost whole (issue 14 item 6): a thermal.mkv or rgb.avi cut short
(disk full, power cut) or with a corrupt frame replays every frame that can be read; the rest is
counted as lost with its reason, and only --strict turns that into a non-zero exit."""
from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import pytest

from edge.cli import main
from edge.io.mkv import ZLIB_LEVEL
from edge.io.recording import LOSS_CORRUPT, LOSS_ENDS_EARLY, open_recording
from edge.paths import REPO_ROOT as REPO
from edge.pipeline import default_config
from edge.replay import replay

SAMPLE = REPO / "sample_streams" / "walkthrough"
CALIBRATION = REPO / "calibration" / "sample-gate-1.toml"


@pytest.fixture(scope="module")
def intact():
    if not (SAMPLE / "stream.json").is_file():
        pytest.skip(f"{SAMPLE} not rendered (make setup renders it)")
    return replay(SAMPLE, default_config("sample-gate-1", CALIBRATION))


def copy_sample(dst: Path) -> Path:
    shutil.copytree(SAMPLE, dst, symlinks=False)  # the sample's files are symlinks: copy their contents
    return dst


def cut(f: Path, fraction: float) -> None:
    data = f.read_bytes()
    f.write_bytes(data[:int(len(data) * fraction)])


@pytest.mark.slow
def test_truncated_thermal_and_rgb_replay_every_readable_frame(tmp_path, intact):
    s = copy_sample(tmp_path / "s")
    cut(s / "thermal.mkv", 0.6)
    cut(s / "rgb.avi", 0.5)
    got = replay(s, default_config("sample-gate-1", CALIBRATION))
    n_thermal = 69 - got.lost["thermal"][LOSS_ENDS_EARLY]
    n_rgb = 240 - got.lost["rgb"][LOSS_ENDS_EARLY]
    assert 0 < n_thermal < 69 and 0 < n_rgb < 240
    # exactly the pairs of the intact replay whose two frames are still there
    want = [(p.thermal_index, p.rgb_index) for p in intact.frames if p.thermal_index < n_thermal and p.rgb_index < n_rgb]
    assert [(p.thermal_index, p.rgb_index) for p in got.frames] == want and len(want) > 20
    for a, b in zip(got.frames, intact.frames):
        assert len(a.detections) == len(b.detections)
    assert got.lost_frames == (69 - n_thermal) + (240 - n_rgb)
    lines = got.loss_lines()
    assert any(line.startswith(f"thermal: {69 - n_thermal} of 69 frames lost (video ends early: ")
               and "thermal.mkv" in line for line in lines)
    assert any(line.startswith(f"rgb: {240 - n_rgb} of 240 frames lost") and "rgb.avi" in line for line in lines)


@pytest.mark.slow
def test_corrupt_thermal_frame_is_skipped_and_counted(tmp_path, intact):
    s = copy_sample(tmp_path / "s")
    f = s / "thermal.mkv"
    rec = open_recording(s)
    src = rec.source("thermal")
    for _ in range(10):
        frame = src.read()
    src.close()
    data = bytearray(f.read_bytes())
    at = data.find(zlib.compress(frame.image.astype("<u2").tobytes(), ZLIB_LEVEL))  # frame 9's block
    assert at > 0
    data[at + 20:at + 24] = b"\0\0\0\0"
    f.write_bytes(bytes(data))
    got = replay(s, default_config("sample-gate-1", CALIBRATION))
    assert got.lost == {"thermal": {LOSS_CORRUPT: 1}}
    assert "frame 9 is corrupt" in got.loss_detail["thermal"][LOSS_CORRUPT]
    assert [p.thermal_index for p in got.frames] == [p.thermal_index for p in intact.frames if p.thermal_index != 9]


@pytest.mark.slow
def test_cli_reports_loss_and_exits_nonzero_only_with_strict(tmp_path, capsys, intact):
    s = copy_sample(tmp_path / "s")
    cut(s / "thermal.mkv", 0.6)
    assert main(["demo", str(s)]) == 0
    out, err = capsys.readouterr()
    assert "summary: subjects seen" in out
    assert err.startswith("warning: thermal: ") and "frames lost (video ends early:" in err
    assert main(["demo", str(s), "--strict"]) == 1
    assert capsys.readouterr().err.startswith("error: thermal: ")
    assert main(["demo", str(SAMPLE), "--strict"]) == 0  # an intact recording is fine under --strict
    assert capsys.readouterr().err == ""
