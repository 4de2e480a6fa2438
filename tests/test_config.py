"""Station config: composition, one-line key-path errors, env overrides, validate-config and run
refusing a bad file."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge.cli import main
from edge.commands.validate_config import EXAMPLE_VALUES
from edge.config import ConfigError, StationConfig, example_toml, load_config
from edge.paths import REPO_ROOT as REPO

EXAMPLE = REPO / "config" / "station.example.toml"


@pytest.fixture
def station_dir(tmp_path: Path) -> Path:
    (tmp_path / "cal.toml").write_text('station_id = "gate-1"\ndate = 2026-11-26\n')
    return tmp_path


def write(d: Path, body: str, name: str = "station.toml") -> Path:
    p = d / name
    p.write_text('[station]\nid = "gate-1"\n[calibration]\npath = "cal.toml"\n' + body)
    return p


def test_every_stage_section_is_composed():
    for key in ("station", "calibration", "sources", "pairing", "detector", "mask", "measurement", "tracking",
                "decision", "feed", "health"):
        assert key in StationConfig.model_fields, key


def test_minimal_file_gets_defaults_and_resolves_paths_against_its_folder(station_dir, monkeypatch):
    monkeypatch.chdir("/")
    cfg = load_config(write(station_dir, ""))
    assert cfg.calibration.path == station_dir / "cal.toml"
    assert cfg.decision.threshold_c is None and cfg.sources.mode == "live"  # None: the calibration's
    cfg = load_config(write(station_dir, '[feed]\njournal_path = "var/j.sqlite"\n'
                                         'server_secret_key = "keys/server.key_secret"\nauthorized_clients_dir = "clients"\n'))
    assert cfg.feed.journal_path == str(station_dir / "var" / "j.sqlite")
    assert cfg.feed.server_secret_key == str(station_dir / "keys" / "server.key_secret")
    assert cfg.feed.authorized_clients_dir == str(station_dir / "clients")


@pytest.mark.parametrize("body, line", [
    ("[decision]\nthreshold_c = 40.2\n", "station.toml: decision.threshold_c: must be <= 39.0 (got 40.2)"),
    ("[sources]\nqueue_size = 0\n", "station.toml: sources.queue_size: must be >= 1 (got 0)"),
    ("[health]\nlog_format = 'xml'\n", "station.toml: health.log_format: must be one of 'json' or 'text' (got 'xml')"),
    ("[pairing]\ntolerance_ms = 5\n", "station.toml: pairing.tolerance_ms=5.0 is below half the RGB frame period"),
    ("[sources.rgb]\nkind = 'url'\nurl = 'ftp://cam'\n", "station.toml: sources.rgb.url: not an rtsp:// or http(s):// URL"),
    ("[sources.rgb]\nkind = 'url'\n", "station.toml: sources.rgb: kind='url' needs 'url'"),
    ("[feed]\nendpoint = 'tcp://0.0.0.0:5560'\n", "station.toml: feed.endpoint=tcp://0.0.0.0:5560 is not loopback"),
    ("[health]\nmetrics_port = 5560\n", "station.toml: health.metrics_port=5560 collides with feed.endpoint"),
    ("[detector]\nscore_thresold = 0.5\n", "station.toml: detector.score_thresold: unknown key"),
    ("colour = 'blue'\n", "station.toml: colour: unknown key"),
])
def test_errors_are_one_line_with_file_and_key_path(station_dir, body, line):
    p = station_dir / "station.toml"
    p.write_text(body + '[station]\nid = "gate-1"\n[calibration]\npath = "cal.toml"\n' if body.startswith("colour")
                 else '[station]\nid = "gate-1"\n[calibration]\npath = "cal.toml"\n' + body)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert len(e.value.errors) == 1
    msg = e.value.errors[0].replace(str(station_dir) + "/", "")
    assert msg.startswith(line), msg
    assert "\n" not in msg


def test_all_errors_reported_at_once(station_dir):
    p = write(station_dir, "[decision]\nthreshold_c = 33\n[sources]\nmode = 'sideways'\n[mask]\nbogus = 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    keys = sorted(line.split(": ")[1] for line in e.value.errors)
    assert keys == ["decision.threshold_c", "mask.bogus", "sources.mode"]
    assert "(and 2 more" in str(e.value) and "\n" not in str(e.value)


def test_missing_calibration_and_missing_station(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[calibration]\npath = "missing.toml"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    errs = "\n".join(e.value.errors)
    assert "station: required key is missing" in errs
    assert f"calibration.path: calibration file not found: {tmp_path / 'missing.toml'}" in errs


def test_invalid_toml_names_the_line(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[station]\nid = \n")
    with pytest.raises(ConfigError, match=r"s\.toml: invalid TOML: .*line 2"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_env_overrides_paths_and_names_the_variable(station_dir):
    other = station_dir / "other-cal.toml"
    other.write_text('station_id = "gate-1"\ndate = 2026-11-26\n')
    p = write(station_dir, "")
    cfg = load_config(p, environ={"THERMAL_EDGE_CALIBRATION": str(other), "THERMAL_EDGE_METRICS_PORT": "9200",
                                  "THERMAL_EDGE_JOURNAL": "/var/lib/thermal-edge/journal.sqlite"})
    assert cfg.calibration.path == other and cfg.health.metrics_port == 9200
    assert cfg.feed.journal_path == "/var/lib/thermal-edge/journal.sqlite"
    with pytest.raises(ConfigError, match=r"health\.metrics_port: .* \(from \$THERMAL_EDGE_METRICS_PORT\)"):
        load_config(p, environ={"THERMAL_EDGE_METRICS_PORT": "lots"})


def test_every_env_override_names_a_config_key():
    """An override whose key path is not in the model would fail every load ('unknown key (from
    $VAR)'); this catches a renamed field before a deployment does."""
    from edge.config import ENV_OVERRIDES

    for var, path in ENV_OVERRIDES.items():
        model = StationConfig
        for key in path[:-1]:
            model = model.model_fields[key].annotation
        assert path[-1] in model.model_fields, f"{var} -> {'.'.join(path)}"


def test_committed_example_is_valid_and_documents_every_key():
    """The example validates and has every section; this module's own sections (and the
    sources/health ones) document every key. Other stages' sections may gain keys after the
    example was generated; regenerate it with `thermal-edge validate-config --print-example`."""
    cfg = load_config(EXAMPLE)
    assert cfg.station.id == "sample-gate-1"
    assert cfg.sources.rgb.kind == cfg.sources.thermal.kind == "recording"
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    assert set(StationConfig.model_fields) <= set(data), "a section is missing from the example"

    def check(model, table: dict, prefix: str) -> None:
        lines = text.split(f"[{prefix[:-1]}]\n", 1)[-1].split("\n[", 1)[0]
        for name, info in model.model_fields.items():
            if getattr(info.annotation, "model_fields", None) is not None:
                assert name in table, f"[{prefix}{name}] missing from {EXAMPLE.name}"
                check(info.annotation, table[name], f"{prefix}{name}.")
            else:
                assert f"\n{name} = " in lines or f"\n# {name} = " in lines, (
                    f"{prefix}{name} not documented; regenerate: thermal-edge validate-config --print-example")

    for section in ("station", "calibration", "sources", "pairing", "health"):
        check(StationConfig.model_fields[section].annotation, data[section], f"{section}.")


def test_generated_example_round_trips():
    data = tomllib.loads(example_toml(EXAMPLE_VALUES))
    assert data["station"]["id"] == "sample-gate-1" and "threshold_c" not in data["decision"]


def test_validate_config_says_which_alarm_threshold_is_in_force(station_dir, capsys):
    """The calibration's fitted threshold unless the station config overrides it; the line names
    the source (the default calibration here has SkinToCore's default threshold)."""
    from edge.thermal.calibration import SkinToCore

    assert main(["validate-config", str(write(station_dir, "", "cal-default.toml"))]) == 0
    default_c = SkinToCore().decision_threshold_c
    assert (f"  alarm threshold {default_c:.1f} degC on the estimated core (calibration "
            f"skin_to_core.decision_threshold_c in {station_dir / 'cal.toml'})") in capsys.readouterr().out
    assert main(["validate-config", str(write(station_dir, "[decision]\nthreshold_c = 38.0\n", "o.toml"))]) == 0
    assert ("  alarm threshold 38.0 degC on the estimated core (station config decision.threshold_c)"
            in capsys.readouterr().out)


def test_validate_config_prints_every_error_and_exits_nonzero(station_dir, capsys):
    p = write(station_dir, "[decision]\nthreshold_c = 40.2\n[sources]\nmode = 'x'\n")
    assert main(["validate-config", str(p)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"error: {p}: decision.threshold_c: must be <= 39.0 (got 40.2)" in err
    assert any(line.startswith(f"error: {p}: sources.mode:") for line in err)
    assert main(["validate-config", str(write(station_dir, "", "ok.toml"))]) == 0
    assert "OK" in capsys.readouterr().out


def test_run_refuses_an_invalid_config_with_the_same_lines(station_dir, capsys):
    p = write(station_dir, "[decision]\nthreshold_c = 40.2\n")
    assert main(["run", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"error: {p}: decision.threshold_c: must be <= 39.0 (got 40.2)" in err and "not starting" in err


def test_validate_config_checks_the_calibration_it_names(station_dir, capsys):
    (station_dir / "cal.toml").write_text('station_id = "gate-1"\ndate = "someday"\n')
    assert main(["validate-config", str(write(station_dir, ""))]) == 1
    assert "cal.toml: date:" in capsys.readouterr().err


def test_committed_example_is_exactly_what_print_example_writes(capsys):
    """One source of truth: config/station.example.toml is the generator's output (it had drifted:
    tracking.max_age_s 1.0 there, 2.0 in the code). After changing a config field, regenerate:
    thermal-edge validate-config --print-example > config/station.example.toml"""
    assert main(["validate-config", "--print-example"]) == 0
    printed = capsys.readouterr().out
    assert EXAMPLE.read_text() == printed, (
        "config/station.example.toml differs from `thermal-edge validate-config --print-example`; regenerate it")
    assert tomllib.loads(printed)["tracking"]["max_age_s"] == 2.0


def test_faults_demo_command_is_the_same_everywhere():
    """The fault drill's command line is written in the config's own comment, README and
    deploy/README: they must agree (README said --seconds 40, the config 60)."""
    import re

    cmd = re.compile(r"thermal-edge run --config config/faults-demo\.toml --seconds (\d+)")
    found = {f: cmd.findall((REPO / f).read_text()) for f in ("config/faults-demo.toml", "README.md", "deploy/README.md")}
    assert all(found.values()), found
    assert len({n for ns in found.values() for n in ns}) == 1, found
    assert load_config(REPO / "config" / "faults-demo.toml").sources.thermal.faults  # and the file itself is valid
