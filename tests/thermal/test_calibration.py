"""Station calibration files: schema, one-line errors naming file and key, saving in place."""
from __future__ import annotations

import tomllib

import numpy as np
import pytest

from edge.cli import main
from edge.paths import REPO_ROOT as REPO
from edge.thermal.calibration import (
    CalibrationError,
    SkinToCore,
    load_calibration,
    parse_calibration,
    save_calibration,
)

SAMPLE = REPO / "calibration" / "sample-gate-1.toml"


def test_sample_station_file_loads():
    cal = load_calibration(SAMPLE)
    assert cal.station_id == "sample-gate-1" and cal.schema_version == 1
    assert cal.cameras.thermal_id == "lepton0"
    out = cal.registration.map_points(np.array([[320.0, 240.0]]))
    assert 0 <= out[0, 0] < 160 and 0 <= out[0, 1] < 120
    assert cal.blackbody.setpoint_c == 35.0
    core = cal.skin_to_core.core_c(35.7, 24.0)
    assert 36.5 < core < 37.5 and cal.skin_to_core.uncertainty_c() > 0


def test_shipped_skin_to_core_matches_station_file():
    shipped = tomllib.loads((REPO / "calibration" / "skin_to_core.toml").read_text())["skin_to_core"]
    # the same fitted model; the simulated station's alarm threshold is its truth's fever
    # threshold (37.5, pinned in tests/eval/test_scenarios.py), the shipped one the Youden pick
    station = load_calibration(SAMPLE).skin_to_core
    assert SkinToCore.model_validate(shipped) == station.model_copy(update={"decision_threshold_c": 37.4})
    assert station.decision_threshold_c == 37.5


MINIMAL = 'schema_version = 1\nstation_id = "g"\ndate = "2026-11-26"\n'


@pytest.mark.parametrize("extra,expect", [
    ('[registration]\nhomography = [[1, 0, 0], [0, 1, 0]]\n', "registration.homography: expected 3 rows of 3 numbers"),
    ('[registration]\nhomography = [[0, 0, 0], [0, 0, 0], [0, 0, 1]]\n', "registration.homography: must be finite and invertible"),
    ('[blackbody]\nsetpoint_c = 80\n', "blackbody.setpoint_c: Input should be less than or equal to 50"),
    ('[blackbody]\nsetpont_c = 35\n', "blackbody.setpont_c: unknown key"),
    ('[skin_to_core]\nmodel = "cubic"\n', "skin_to_core.model"),
    ('[registration]\nparallax_px_m = [1, 2, 3]\n', "registration.parallax_px_m: expected [kx, ky]"),
])
def test_errors_name_file_and_key(tmp_path, extra, expect):
    f = tmp_path / "bad.toml"
    f.write_text(MINIMAL + extra)
    with pytest.raises(CalibrationError) as e:
        load_calibration(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: ") and expect in msg and "\n" not in msg


def test_missing_station_and_version_and_syntax(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('schema_version = 1\ndate = "2026-11-26"\n')
    with pytest.raises(CalibrationError, match="station_id: Field required"):
        load_calibration(f)
    f.write_text('schema_version = 2\nstation_id = "g"\ndate = "2026-11-26"\n')
    with pytest.raises(CalibrationError, match="schema_version: is 2; this version reads 1"):
        load_calibration(f)
    f.write_text('station_id = "g\n')
    with pytest.raises(CalibrationError, match="invalid TOML"):
        load_calibration(f)
    with pytest.raises(CalibrationError, match="nope.toml: calibration file not found"):
        load_calibration(tmp_path / "nope.toml")


def test_defaults_are_valid():
    cal = parse_calibration({"station_id": "x", "date": "2026-01-02"})
    assert cal.registration.map_points(np.array([[640.0, 480.0]])).tolist() == [[160.0, 120.0]]


def test_save_replaces_one_table_and_keeps_comments(tmp_path):
    f = tmp_path / "station.toml"
    f.write_text(SAMPLE.read_text())
    cal = load_calibration(f)
    cal.registration.parallax_px_m = np.array([1.5, -0.5])
    save_calibration(cal, f, only=("registration",))
    text = f.read_text()
    assert "# Blackbody reference in the thermal view" in text  # comments kept
    again = load_calibration(f)
    assert again.registration.parallax_px_m.tolist() == [1.5, -0.5]
    assert again.skin_to_core == cal.skin_to_core and again.blackbody == cal.blackbody
    # a fresh file round-trips too
    g = tmp_path / "new.toml"
    save_calibration(cal, g)
    assert load_calibration(g).registration.parallax_px_m.tolist() == [1.5, -0.5]


@pytest.mark.parametrize("kw,skin,amb,expect", [
    (dict(model="offset", offset_c=1.25), 35.5, None, 36.75),
    (dict(model="offset", offset_c=1.25), 35.5, 30.0, 36.75),
    (dict(model="linear", intercept_c=-6.0, skin_coef=1.2, ambient_coef=-0.1, ambient_ref_c=24.0), 36.0, None, 37.2),
    (dict(model="linear", intercept_c=-6.0, skin_coef=1.2, ambient_coef=-0.1, ambient_ref_c=24.0), 36.0, 26.0, 37.0),
    # ambient clamped to the fitted range [20, 28]
    (dict(model="linear", intercept_c=-6.0, skin_coef=1.2, ambient_coef=-0.1, ambient_ref_c=24.0,
          ambient_range_c=[20.0, 28.0]), 36.0, 40.0, 36.8),
])
def test_skin_to_core_table(kw, skin, amb, expect):
    m = SkinToCore(**kw)
    assert m.core_c(skin, amb) == pytest.approx(expect, abs=1e-6)
    arr = m.core_c(np.array([skin, skin]), amb)
    assert arr.shape == (2,) and np.allclose(arr, expect, atol=1e-5)


def test_cli_reports_bad_calibration_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "[blackbody]\nsetpont_c = 35\n")
    pts = tmp_path / "pts.csv"
    pts.write_text("rgb_x,rgb_y,thermal_x,thermal_y\n0,0,0,0\n640,0,160,0\n0,480,0,120\n640,480,160,120\n")
    rc = main(["calibrate", "registration", "--points", str(pts), "--calibration", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().count("\n") == 0 and "blackbody.setpont_c: unknown key" in err
