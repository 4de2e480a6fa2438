"""Imported and new-station recordings just work (issue 14 item 11): `import X --out R` writes
the calibration it can derive into R, `demo R` finds it there before calibration/<station>.toml,
THERMAL_EDGE_CALIBRATION is honoured by every command that reads a calibration, a missing one is
a one-line error naming the places searched, and a recording too short to screen anyone says so."""
from __future__ import annotations

import numpy as np
import pytest

from edge.cli import main
from edge.io.flir import encode_flir_jpeg
from edge.paths import REPO_ROOT as REPO
from tests.io.test_flir import PARAMS, scene_raw
from tests.synth_streams import make_recording

SAMPLE_CAL = REPO / "calibration" / "sample-gate-1.toml"


def flir_with_photo(path, astronaut_bgr) -> None:
    """A FLIR-like R-JPEG: synthetic 80x60 radiometric image plus an embedded visible photo with
    a face in it, and a PiP record mapping the photo onto the thermal image."""
    raw, _ = scene_raw()
    visible = np.ascontiguousarray(astronaut_bgr[:384, 64:448])  # 384x384, the face inside
    path.write_bytes(encode_flir_jpeg(raw, PARAMS, visible, pip={"real2ir": 1.0, "offset_x": 0, "offset_y": 0}))


@pytest.mark.slow
def test_import_then_demo_uses_the_calibration_written_next_to_it(tmp_path, capsys, astronaut_bgr, centerface_path):
    files = []
    for i in range(4):
        f = tmp_path / f"img{i}.jpg"
        flir_with_photo(f, astronaut_bgr)
        files.append(str(f))
    one, four = tmp_path / "one", tmp_path / "four"
    assert main(["import", files[0], "--out", str(one)]) == 0
    out = capsys.readouterr().out
    assert (one / "calibration.toml").is_file() and f"wrote {one / 'calibration.toml'}" in out
    assert not (REPO / "calibration" / "flir-import.toml").exists()  # nothing needed there
    assert main(["demo", str(one)]) == 0
    out = capsys.readouterr().out
    assert "subjects seen 0" in out
    assert "note: faces detected in 1 of 1 paired frames, but no subject screened: too few frames" in out
    assert main(["import", *files, "--out", str(four)]) == 0
    capsys.readouterr()
    assert main(["demo", str(four), "--all"]) == 0
    out = capsys.readouterr().out
    assert "subjects seen 1" in out and "no subject screened" not in out


def test_missing_calibration_is_one_line_naming_the_places_searched(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THERMAL_EDGE_CALIBRATION", raising=False)
    s = make_recording(tmp_path / "s", seconds=0.5)  # station 'test-gate': no calibration anywhere
    for cmd in (["demo", str(s)], ["replay", str(s), "--annotate", str(tmp_path / "a.mp4")],
                ["calibrate", "blackbody", str(s)]):
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: no calibration for station 'test-gate': searched "
                                                       "$THERMAL_EDGE_CALIBRATION (unset), "), err
        assert str(s / "calibration.toml") in err and str(REPO / "calibration" / "test-gate.toml") in err
        assert "thermal-edge import" in err and "calibrate registration" in err


@pytest.mark.slow
def test_thermal_edge_calibration_env_is_used_everywhere(tmp_path, capsys, monkeypatch):
    s = make_recording(tmp_path / "s", seconds=0.5)
    cal = tmp_path / "elsewhere.toml"
    cal.write_text('station_id = "test-gate"\ndate = 2026-11-26\n')
    monkeypatch.setenv("THERMAL_EDGE_CALIBRATION", str(cal))
    assert main(["demo", str(s)]) == 0
    assert main(["replay", str(s), "--annotate", str(tmp_path / "a.mp4")]) == 0
    capsys.readouterr()
    # blackbody: it reads the env's file (whose blackbody is the default, not seen in this scene)
    assert main(["calibrate", "blackbody", str(s)]) == 2
    assert "no uniform patch" in capsys.readouterr().err
    (s / "calibration.toml").write_text("this is not toml [")  # the env wins over the folder's file
    assert main(["demo", str(s)]) == 0
    monkeypatch.setenv("THERMAL_EDGE_CALIBRATION", str(tmp_path / "nope.toml"))
    capsys.readouterr()
    assert main(["demo", str(s)]) == 2
    assert capsys.readouterr().err == f"error: $THERMAL_EDGE_CALIBRATION={tmp_path / 'nope.toml'}: calibration file not found\n"


@pytest.mark.parametrize("name", ["face_closeup_ex320.jpg", "audience_e40.jpg", "flir_one_with_rgb.jpg"])
def test_real_flir_file_imports_and_demos(shared_data, tmp_path, capsys, name, centerface_path):
    f = shared_data / "flir_rjpeg" / name
    if not f.is_file():
        pytest.skip(f"{f} not in ../shared/data")
    out = tmp_path / "r"
    assert main(["import", str(f), "--out", str(out), "--faces"]) == 0
    text = capsys.readouterr().out
    assert (out / "calibration.toml").is_file() or "note: no calibration written next to the recording" in text
    if not (out / "calibration.toml").is_file():
        pytest.skip(f"{name}: import derives no calibration ({text.splitlines()[0]})")
    if name == "face_closeup_ex320.jpg":  # one face, found by --faces in the thermal image
        assert "will screen nobody -- faces detected in 1 of 1 paired frames" in text and "tracking.min_hits=3" in text
    assert main(["demo", str(out)]) == 0
    text = capsys.readouterr().out
    assert "summary: subjects seen 0" in text
    if name != "flir_one_with_rgb.jpg":  # its visible photo shows no face: nothing to explain
        assert "note: faces detected in 1 of 1 paired frames, but no subject screened: too few frames" in text
