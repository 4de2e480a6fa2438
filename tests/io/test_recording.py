"""Recording format v2 (and v1 backward compatibility): lossless round trip, FFmpeg-readable
thermal video, and one-line errors for broken recordings."""
from __future__ import annotations

import json
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.io.mkv import ZLIB_LEVEL, Gray16MkvReader, Gray16MkvWriter
from edge.io.recording import (
    CameraMeta,
    RecordingError,
    RecordingWriter,
    StreamMeta,
    open_recording,
)


def _meta(n_rgb_w=64, n_rgb_h=48):
    return StreamMeta(
        station_id="t1", start_utc="2026-11-26T09:00:00.000000Z", t0_ns=0,
        rgb=CameraMeta("rgb0", n_rgb_w, n_rgb_h, 30.0, "bgr24", "rgb.avi"),
        thermal=CameraMeta("th0", 32, 24, 8.7, "gray16le", "thermal.mkv", units="centikelvin"),
    )


def _write(path, n_thermal=4, n_rgb=12, seed=0):
    rng = np.random.default_rng(seed)
    thermal = [rng.integers(27000, 31500, (24, 32), dtype=np.uint16) for _ in range(n_thermal)]
    thermal[1][0, :3] = (0, 1, 65535)  # both ends of the range and both bytes of a word
    with RecordingWriter(path, _meta()) as w:
        for i in range(n_rgb):
            w.write("rgb", np.full((48, 64, 3), i * 10, np.uint8), t_ns=i * 33_333_333)
        for i, img in enumerate(thermal):
            w.write("thermal", img, t_ns=i * 114_942_528, ffc_state="in_progress" if i == 2 else "none")
    return thermal


def _read_all(src):
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    return frames


def _write_ffv1_v1(folder, frames):
    """Turn a recording folder into what the v1 writer made: FFV1 thermal via OpenCV, version 1."""
    vw = cv2.VideoWriter(str(folder / "thermal.mkv"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 8.7,
                         (32, 24), [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    meta = folder / "stream.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": 1}))


def test_thermal_round_trip_is_bit_exact(tmp_path):
    thermal = _write(tmp_path / "s")
    rec = open_recording(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "stream.json").read_text())["version"] == 2
    src = rec.source("thermal")
    assert src.decoder == "gray16-zlib"  # the fast path, not FFmpeg
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
    got[0].image[0, 0] += 1  # frames own their (writable) pixels


def test_v2_thermal_video_reads_the_same_through_ffmpeg(tmp_path):
    """thermal.mkv is standard Matroska (raw gray16le, zlib ContentCompression): FFmpeg tools
    and the live Y16 file source decode the same frames."""
    thermal = _write(tmp_path / "s")
    cap = cv2.VideoCapture(str(tmp_path / "s" / "thermal.mkv"), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])
    got = []
    while (r := cap.read())[0]:
        got.append(r[1])
    cap.release()
    assert len(got) == len(thermal)
    for g, want in zip(got, thermal):
        assert g.dtype == np.uint16 and np.array_equal(g.reshape(want.shape), want)


def test_v1_ffv1_recording_still_reads_bit_exact(tmp_path):
    thermal = _write(tmp_path / "s")
    _write_ffv1_v1(tmp_path / "s", thermal)
    src = open_recording(tmp_path / "s").source("thermal")
    assert src.decoder == "ffmpeg"
    got = _read_all(src)
    assert [f.index for f in got] == [0, 1, 2, 3]
    assert all(np.array_equal(f.image, want) for f, want in zip(got, thermal))
    assert [f.ffc_state for f in got] == ["none", "none", "in_progress", "none"]


def test_writer_output_is_reproducible(tmp_path):
    _write(tmp_path / "a")
    _write(tmp_path / "b")
    assert (tmp_path / "a" / "thermal.mkv").read_bytes() == (tmp_path / "b" / "thermal.mkv").read_bytes()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.sampled_from(["full", "narrow", "flat"]))
def test_gray16_matroska_round_trip_any_size_and_values(tmp_path_factory, w, h, n, seed, kind):
    rng = np.random.default_rng(seed)
    lo, hi = {"full": (0, 65536), "narrow": (29000, 29040), "flat": (7, 8)}[kind]
    frames = [rng.integers(lo, hi, (h, w), dtype=np.uint16) for _ in range(n)]
    path = tmp_path_factory.mktemp("mkv") / "t.mkv"
    writer = Gray16MkvWriter(path, w, h, 8.7)
    for i, f in enumerate(frames):
        writer.write(f, 1_000 + i * 114_942_528)
    writer.close()
    reader = Gray16MkvReader.open(path)
    assert reader is not None and (reader.width, reader.height) == (w, h)
    got = [reader.decode(b) for b in reader.frames()]
    reader.close()
    assert len(got) == n and all(g.dtype == np.uint16 and np.array_equal(g, f) for g, f in zip(got, frames))


def test_clusters_of_unknown_size_read_the_same(tmp_path):
    """A live muxer may leave cluster sizes 'unknown' (all ones): their blocks still read."""
    thermal = _write(tmp_path / "s")
    f = tmp_path / "s" / "thermal.mkv"
    data = bytearray(f.read_bytes())
    at, n_patched = data.find(b"\x1f\x43\xb6\x75"), 0
    while at > 0:
        n = 9 - data[at + 4].bit_length()  # length of the size field
        data[at + 4:at + 4 + n] = ((1 << (8 * n - n + 1)) - 1).to_bytes(n, "big")  # marker + all value bits set
        n_patched += 1
        at = data.find(b"\x1f\x43\xb6\x75", at + 4)
    assert n_patched == len(thermal)
    f.write_bytes(bytes(data))
    got = _read_all(open_recording(tmp_path / "s").source("thermal"))
    assert len(got) == len(thermal) and all(np.array_equal(g.image, w) for g, w in zip(got, thermal))


def _frame_offset(folder, frame):
    """Byte offset of a thermal frame's compressed block in thermal.mkv (the stored zlib stream)."""
    data = (folder / "thermal.mkv").read_bytes()
    at = data.find(zlib.compress(frame.astype("<u2").tobytes(), ZLIB_LEVEL))
    assert at > 0
    return at


@pytest.mark.parametrize("where, damage", [
    (+20, b"\x00\x00\x00\x00"),  # inside the deflate data
    (-4, b"\x82"),  # the block header's track number (1 -> 2)
])
def test_corrupt_thermal_frame_names_file_and_frame(tmp_path, where, damage):
    thermal = _write(tmp_path / "s")
    f = tmp_path / "s" / "thermal.mkv"
    data = bytearray(f.read_bytes())
    at = _frame_offset(tmp_path / "s", thermal[2]) + where
    data[at:at + len(damage)] = damage
    f.write_bytes(bytes(data))
    src = open_recording(tmp_path / "s").source("thermal")
    assert np.array_equal(src.read().image, thermal[0]) and np.array_equal(src.read().image, thermal[1])
    with pytest.raises(RecordingError, match=r"thermal\.mkv: frame 2 is corrupt") as e:
        src.read()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("keep", [2, 9, 300])  # cut in the last frame's element header / its data
def test_truncated_thermal_video_names_file_and_counts(tmp_path, keep):
    thermal = _write(tmp_path / "s")
    f = tmp_path / "s" / "thermal.mkv"
    data = f.read_bytes()
    cluster = data.rfind(b"\x1f\x43\xb6\x75")  # the last frame's cluster
    assert cluster > _frame_offset(tmp_path / "s", thermal[2])
    f.write_bytes(data[:cluster + keep])
    src = open_recording(tmp_path / "s").source("thermal")
    for _ in range(3):
        src.read()
    with pytest.raises(RecordingError, match=r"thermal\.mkv: ends after 3 frames but timestamps\.csv lists 4"):
        src.read()


def test_block_of_the_wrong_size_is_a_corrupt_frame(tmp_path):
    thermal = _write(tmp_path / "s")
    writer = Gray16MkvWriter(tmp_path / "s" / "thermal.mkv", 32, 24, 8.7)
    writer.write(thermal[0], 0)
    writer.write(thermal[1][:, :31], 1)  # a block one column short
    writer.close()
    src = open_recording(tmp_path / "s").source("thermal")
    src.read()
    with pytest.raises(RecordingError, match=r"thermal\.mkv: frame 1 is corrupt: 1488 bytes, expected 1536"):
        src.read()


def test_damaged_matroska_header_is_one_line_error(tmp_path):
    _write(tmp_path / "s")
    f = tmp_path / "s" / "thermal.mkv"
    f.write_bytes(f.read_bytes()[:100])  # cut inside the track list
    with pytest.raises(RecordingError, match=r"thermal\.mkv: damaged Matroska header: file ends"):
        open_recording(tmp_path / "s").source("thermal")


def test_thermal_video_of_another_size_than_stream_json(tmp_path):
    _write(tmp_path / "s")
    meta = tmp_path / "s" / "stream.json"
    d = json.loads(meta.read_text())
    d["cameras"]["thermal"]["width"] = 33
    meta.write_text(json.dumps(d))
    with pytest.raises(RecordingError, match=r"thermal\.mkv: frames are 32x24, stream\.json says 33x24"):
        open_recording(tmp_path / "s").source("thermal")


def test_refused_frame_does_not_reach_the_video(tmp_path):
    with RecordingWriter(tmp_path / "s", _meta()) as w:
        w.write("thermal", np.zeros((24, 32), np.uint16), t_ns=0)
        with pytest.raises(ValueError, match="ffc_state='warm'"):
            w.write("thermal", np.ones((24, 32), np.uint16), t_ns=1, ffc_state="warm")
    assert len(_read_all(open_recording(tmp_path / "s").source("thermal"))) == 1


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
    (lambda d: d.update(version=7), "'version' is 7; this reader supports 1, 2"),
    (lambda d: d["cameras"]["thermal"].update(units="fahrenheit"), "units is 'fahrenheit'"),
    # found by the fuzz test: both broke the replay later with a traceback
    (lambda d: d.update(start_utc="x"), "start_utc: not an ISO 8601 UTC time"),
    (lambda d: d.update(station_id="gate:1"), "station_id: string should match pattern"),
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


def test_recordings_have_one_mjpeg_packet_reader():
    """RecordingSource's 'jpeg-packets' decoder and RecordingJpegSource read the same packets
    through edge.io.jpegframes.JpegPacketReader: the same JPEG bytes, frame for frame, and no
    second VideoCapture packet loop in either."""
    import inspect

    from edge.io import recording, sources
    from edge.io.jpegframes import JpegPacketReader, decode_jpeg
    from edge.paths import REPO_ROOT

    rec = open_recording(REPO_ROOT / "sample_streams" / "walkthrough")
    src = rec.source("rgb", decode={0, 5})
    assert src.decoder == "jpeg-packets"
    jpegs = sources.RecordingJpegSource.open(rec)
    packets = JpegPacketReader.open(rec.path / rec.meta.rgb.file)
    for i in range(8):
        a, b, raw = src.read(), jpegs.read(), packets.read()
        assert a.index == b.index == i and np.array_equal(b.jpeg, raw)
        if i in (0, 5):
            assert np.array_equal(a.image, decode_jpeg(raw)) and np.array_equal(a.image, b.image)
        else:
            assert a.image is None
    for s in (src, jpegs, packets):
        s.close()
    assert "CAP_PROP_FORMAT" not in inspect.getsource(recording)
    assert "VideoCapture" not in inspect.getsource(sources.RecordingJpegSource)
