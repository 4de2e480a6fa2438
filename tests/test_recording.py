"""Recording format v1: lossless round trip and one-line errors for broken recordings."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge.recording import CameraMeta, RecordingError, RecordingWriter, StreamMeta, open_recording


def _meta(n_rgb_w=64, n_rgb_h=48):
    return StreamMeta(
        station_id="t1", start_utc="2026-11-26T09:00:00.000000Z", t0_ns=0,
        rgb=CameraMeta("rgb0", n_rgb_w, n_rgb_h, 30.0, "bgr24", "rgb.avi"),
        thermal=CameraMeta("th0", 32, 24, 8.7, "gray16le", "thermal.mkv", units="centikelvin"),
    )


def _write(path, n_thermal=4, n_rgb=12, seed=0):
    rng = np.random.default_rng(seed)
    thermal = [rng.integers(27000, 31500, (24, 32), dtype=np.uint16) for _ in range(n_thermal)]
    with RecordingWriter(path, _meta()) as w:
        for i in range(n_rgb):
            w.write("rgb", np.full((48, 64, 3), i * 10, np.uint8), t_ns=i * 33_333_333)
        for i, img in enumerate(thermal):
            w.write("thermal", img, t_ns=i * 114_942_528, ffc_state="in_progress" if i == 2 else "none")
    return thermal


def test_thermal_round_trip_is_bit_exact(tmp_path):
    thermal = _write(tmp_path / "s")
    rec = open_recording(tmp_path / "s")
    src = rec.source("thermal")
    got = []
    while (f := src.read()) is not None:
        got.append(f)
    assert [f.index for f in got] == [0, 1, 2, 3]
    for f, want in zip(got, thermal):
        assert f.image.dtype == np.uint16
        assert np.array_equal(f.image, want)
    assert [f.ffc_state for f in got] == ["none", "none", "in_progress", "none"]
    assert got[1].t_ns == 114_942_528
    assert rec.thermal_scale_k == 0.01


def test_rgb_frames_read_back_with_timestamps(tmp_path):
    _write(tmp_path / "s")
    src = open_recording(tmp_path / "s").source("rgb")
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert len(frames) == 12
    assert frames[3].t_ns == 3 * 33_333_333
    assert abs(int(frames[3].image.mean()) - 30) <= 2  # MJPEG is lossy, but barely


def test_missing_folder_is_one_line_error(tmp_path):
    with pytest.raises(RecordingError) as e:
        open_recording(tmp_path / "nope")
    assert "nope" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_stream_json_names_file_and_line(tmp_path):
    _write(tmp_path / "s")
    (tmp_path / "s" / "stream.json").write_text('{"format": "thermal-edge-recording",\n "version": ')
    with pytest.raises(RecordingError, match=r"stream\.json: invalid JSON at line 2"):
        open_recording(tmp_path / "s")


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("station_id"), "missing key 'station_id'"),
    (lambda d: d.update(version=7), "'version' is 7"),
    (lambda d: d["cameras"]["thermal"].update(units="fahrenheit"), "units is 'fahrenheit'"),
])
def test_bad_stream_json_keys(tmp_path, mutate, match):
    _write(tmp_path / "s")
    f = tmp_path / "s" / "stream.json"
    d = json.loads(f.read_text())
    mutate(d)
    f.write_text(json.dumps(d))
    with pytest.raises(RecordingError, match=match):
        open_recording(tmp_path / "s")


def test_thermal_video_shorter_than_table_names_file_and_counts(tmp_path):
    _write(tmp_path / "s")
    ts = tmp_path / "s" / "timestamps.csv"
    ts.write_text(ts.read_text() + "thermal,4,999999999,none\n")
    src = open_recording(tmp_path / "s").source("thermal")
    with pytest.raises(RecordingError, match=r"thermal\.mkv: ends after 4 frames but timestamps\.csv lists 5"):
        while src.read() is not None:
            pass


def test_malformed_timestamp_row_names_line(tmp_path):
    _write(tmp_path / "s")
    ts = tmp_path / "s" / "timestamps.csv"
    ts.write_text(ts.read_text() + "thermal,x,1,none\n")
    with pytest.raises(RecordingError, match=r"timestamps\.csv:\d+: malformed row"):
        open_recording(tmp_path / "s")
