"""FLIR R-JPEG decoding: a synthetic round trip through the segment/record parser (no shared
data needed) and the real sample files (skipped with a reason when ../shared/data is absent)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge.cli import main
from edge.io.flir import (
    FlirError,
    decode_flir_bytes,
    encode_flir_jpeg,
    extract_fff,
    read_flir,
    read_flir_any,
    split_seq,
)
from edge.io.recording import open_recording
from edge.thermal.radiometry import PlanckParams, celsius_to_raw

PARAMS = PlanckParams(r1=15401.15, r2=0.0111986, b=1406.3, f=1.0, o=-6063.0, emissivity=0.95,
                      reflected_c=21.0, atmosphere_c=22.0, humidity=0.45, distance_m=1.5)


def scene_raw(h=60, w=80):
    t = np.full((h, w), 24.0)
    t[15:45, 25:55] = 34.0  # a face-warm block
    t[25:28, 35:38] = 36.0
    t += np.linspace(0, 0.5, w)[None, :]
    return np.rint(celsius_to_raw(t, PARAMS)).astype(np.uint16), t


@pytest.mark.parametrize("fmt,order,swapped,chunk", [
    ("png", ">", True, 3000),    # the common FLIR quirk: PNG samples written little-endian
    ("png", "<", False, 65000),  # a correct big-endian PNG, little-endian records
    ("raw", "<", False, 2000),   # raw 16-bit, little-endian
    ("raw", ">", False, 5000),   # raw 16-bit, big-endian
])
def test_round_trip(fmt, order, swapped, chunk):
    raw, truth_c = scene_raw()
    visible = np.zeros((48, 64, 3), np.uint8)
    visible[:, :, 1] = 200
    data = encode_flir_jpeg(raw, PARAMS, visible, raw_format=fmt, byte_order=order, png_byte_swapped=swapped,
                            chunk_size=chunk, camera_model="TestCam")
    im = decode_flir_bytes(data, "t.jpg")
    assert np.array_equal(im.raw, raw)
    assert im.raw_format == fmt and im.byte_swapped == (fmt == "png" and swapped)
    assert im.camera["model"] == "TestCam"
    p = im.params
    assert p.r1 == pytest.approx(PARAMS.r1, rel=1e-6) and p.o == PARAMS.o and p.b == pytest.approx(PARAMS.b)
    assert p.emissivity == pytest.approx(0.95) and p.reflected_c == pytest.approx(21.0, abs=1e-3)
    assert p.humidity == pytest.approx(0.45) and p.distance_m == pytest.approx(1.5)
    assert np.allclose(im.temperatures_c(), truth_c, atol=0.02)
    assert im.visible_bgr is not None and im.visible_bgr.shape == (48, 64, 3)
    assert abs(int(im.visible_bgr[..., 1].mean()) - 200) < 5


def test_chunk_order_and_damage():
    raw, _ = scene_raw()
    data = encode_flir_jpeg(raw, PARAMS, chunk_size=1500)
    fff = extract_fff(data)
    assert fff.startswith(b"FFF\x00")
    # drop the second FLIR APP1 segment: the parser must say a chunk is missing
    first = data.index(b"\xff\xe1")
    second = data.index(b"\xff\xe1", first + 4)
    seg_len = int.from_bytes(data[second + 2:second + 4], "big")
    cut = data[:second] + data[second + 2 + seg_len:]
    with pytest.raises(FlirError, match=r"chunk\(s\) \[1\]"):
        decode_flir_bytes(cut, "cut.jpg")
    with pytest.raises(FlirError, match="plain.jpg: no FLIR APP1 segments"):
        decode_flir_bytes(data[:2] + b"\xff\xd9", "plain.jpg")
    with pytest.raises(FlirError, match="x.bin: not a JPEG"):
        decode_flir_bytes(b"hello", "x.bin")


def test_import_command_writes_recording(tmp_path, capsys):
    raw, truth_c = scene_raw()
    files = []
    for i in range(2):
        f = tmp_path / f"img{i}.jpg"
        f.write_bytes(encode_flir_jpeg(raw, PARAMS))  # no visible photo -> false colour RGB
        files.append(str(f))
    out = tmp_path / "stream"
    assert main(["import", *files, "--out", str(out), "--emissivity", "file"]) == 0
    rec = open_recording(out)
    assert rec.meta.thermal.units == "centikelvin" and (rec.meta.thermal.width, rec.meta.thermal.height) == (80, 60)
    assert "false colour" in rec.meta.extra["files"][0]["rgb_source"]
    frame = rec.source("thermal").read()
    assert np.allclose(frame.image * 0.01 - 273.15, truth_c, atol=0.02)
    assert rec.source("rgb").read() is not None
    assert "median" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "s2")]) == 2


def test_pip_mapping_and_import_calibration(tmp_path):
    from edge.io.flir import pip_homography
    from edge.thermal.calibration import load_calibration

    raw, _ = scene_raw()  # 80x60 thermal
    visible = np.zeros((240, 320, 3), np.uint8)
    data = encode_flir_jpeg(raw, PARAMS, visible, pip={"real2ir": 2.0, "offset_x": 8, "offset_y": -4})
    im = decode_flir_bytes(data, "pip.jpg")
    assert im.pip["real2ir"] == pytest.approx(2.0) and (im.pip["offset_x"], im.pip["offset_y"]) == (8, -4)
    h = pip_homography(im)
    # thermal spans 320 / 2.0 = 160 visible px (2 visible px per thermal px), centred at centre + offset
    centre = h @ np.array([159.5 + 8, 119.5 - 4, 1.0])
    assert np.allclose(centre[:2], [39.5, 29.5])
    assert h[0, 0] == pytest.approx(0.5)
    # false-colour import: the written calibration maps RGB px onto the thermal px they came from
    f = tmp_path / "a.jpg"
    f.write_bytes(encode_flir_jpeg(raw, PARAMS))
    cal_path = tmp_path / "cal.toml"
    assert main(["import", str(f), "--out", str(tmp_path / "s"), "--calibration-out", str(cal_path)]) == 0
    cal = load_calibration(cal_path)
    assert not cal.blackbody.enabled and cal.cameras.thermal_id == "flir0"
    # RGB pixel 4x+1.5 is the centre of thermal pixel x (4x upscale)
    assert np.allclose(cal.registration.map_points(np.array([[4 * 10 + 1.5, 4 * 7 + 1.5]])), [[10, 7]])


def test_seq_frames_and_camera_clock(tmp_path):
    raw, truth_c = scene_raw()
    frames = []
    for k in range(3):
        data = encode_flir_jpeg(raw + np.uint16(30 * k), PARAMS, raw_format="raw", byte_order="<",
                                container="fff", time_unix_s=1_700_000_000.0 + 0.125 * k)
        frames.append(data)
    seq = tmp_path / "clip.seq"
    seq.write_bytes(b"".join(frames))
    images = read_flir_any(seq)
    assert len(images) == 3 and all(np.array_equal(im.raw, raw + np.uint16(30 * k)) for k, im in enumerate(images))
    out = tmp_path / "stream"
    assert main(["import", str(seq), "--out", str(out)]) == 0
    rec = open_recording(out)
    assert rec.meta.extra["frame_times"] == "camera clock"
    assert [t for _, t, _ in rec.rows["thermal"]] == [0, 125_000_000, 250_000_000]
    with pytest.raises(FlirError, match="truncated"):
        split_seq(b"".join(frames)[:-100], "cut.seq")
    csq = tmp_path / "x.csq"
    csq.write_bytes(b"\x00" * 100)
    with pytest.raises(FlirError, match="CSQ .* not supported"):
        read_flir_any(csq)


def test_real_files_decode_plausibly(shared_data):
    folder = shared_data / "flir_rjpeg"
    close = read_flir(folder / "face_closeup_ex320.jpg")
    assert close.raw.shape == (240, 320) and close.raw_format == "png"
    t = close.temperatures_c(emissivity=0.98)
    assert 18 < np.nanmin(t) < 23 and 35 < np.nanmax(t) < 38.5  # indoor room, a face
    aud = read_flir(folder / "audience_e40.jpg")
    assert aud.raw.shape == (120, 160) and aud.camera["model"] == "FLIR E40"
    assert 15 < np.nanmedian(aud.temperatures_c()) < 30
    one = read_flir(folder / "flir_one_with_rgb.jpg")
    assert one.byte_swapped and one.visible_bgr is not None  # the PNG byte-order quirk
    t1 = one.temperatures_c()
    assert 20 < np.nanmedian(t1) < 30 and 45 < np.nanmax(t1) < 80  # a hot drink on a table


@pytest.mark.parametrize("name,expect", [
    # Reference numbers from flyr 5.1.0 (an independent pure-Python FLIR decoder), file parameters:
    # min, median, max, pixel (y10, x20), pixel (y60, x80), degC
    ("audience_e40.jpg", (18.7708, 25.4146, 35.6423, 20.3911, 28.2592)),
    ("flir_one_with_rgb.jpg", (25.9483, 26.5778, 62.3203, 26.1415, 26.3344)),
])
def test_real_files_match_an_independent_decoder(shared_data, name, expect):
    t = read_flir(shared_data / "flir_rjpeg" / name).temperatures_c()
    got = (t.min(), np.median(t), t.max(), t[10, 20], t[60, 80])
    assert np.allclose(got, expect, atol=0.001)


def test_real_face_canthus(shared_data, centerface_path, tmp_path):
    from edge.io.flir import face_report
    from edge.vision.detection import build_detector
    close = read_flir(shared_data / "flir_rjpeg" / "face_closeup_ex320.jpg")
    faces = face_report(close.temperatures_c(emissivity=0.98), build_detector())
    assert len(faces) == 1 and faces[0]["gate"] == ""
    assert 34.0 <= faces[0]["canthus_c"] <= 36.5  # a non-febrile inner canthus
    assert 30.0 <= faces[0]["face_median_c"] <= 34.5
    js = tmp_path / "r.json"
    assert main(["import", str(shared_data / "flir_rjpeg" / "audience_e40.jpg"), "--out", str(tmp_path / "a"),
                 "--faces", "--json-out", str(js)]) == 0
    aud = json.loads(js.read_text())[0]["faces"]
    assert len(aud) >= 5
    # every box is a person, not the 18-25 degC hall: the fine-tuned detector also finds the head of
    # someone at the back, half turned away, whose warmest upper-face spot is 29.6 degC
    assert all(28.0 <= f["hot_region_c"] <= 36.5 for f in aud)
    assert sorted(f["hot_region_c"] for f in aud)[len(aud) // 2] >= 33.0


def test_import_refuses_a_non_empty_out_unless_force(tmp_path, capsys):
    """Issue 14 item 9: `import --out DIR` never replaces an existing capture without --force."""
    raw, _ = scene_raw()
    f = tmp_path / "a.jpg"
    f.write_bytes(encode_flir_jpeg(raw, PARAMS))
    out = tmp_path / "stream"
    assert main(["import", str(f), "--out", str(out)]) == 0
    before = (out / "thermal.mkv").read_bytes()
    capsys.readouterr()
    raw2 = raw + np.uint16(200)
    f.write_bytes(encode_flir_jpeg(raw2, PARAMS))
    assert main(["import", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "stream: not empty (" in err and "--force" in err and "\n" not in err
    assert (out / "thermal.mkv").read_bytes() == before
    assert main(["import", str(f), "--out", str(out), "--force"]) == 0
    assert (out / "thermal.mkv").read_bytes() != before
