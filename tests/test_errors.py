"""One UserError base: every error a user can fix inherits it, and the CLI prints it as one line
and exits 2. (That no library imports the CLI to get it: tests/test_imports.py.)"""
from __future__ import annotations

import pytest

from edge.assets import AssetError
from edge.cli import main
from edge.config import ConfigError
from edge.errors import UserError
from edge.eval.faces import load_manifest
from edge.feed.journal import JournalError
from edge.feed.security import KeyFileError
from edge.io.flir import FlirError
from edge.io.recording import RecordingError
from edge.sim.scenario import ScenarioError
from edge.thermal.calibration import CalibrationError


@pytest.mark.parametrize("cls", [AssetError, CalibrationError, ConfigError, FlirError, JournalError,
                                 KeyFileError, RecordingError, ScenarioError])
def test_every_user_facing_error_is_a_user_error(cls):
    assert issubclass(cls, UserError)


def test_a_user_error_from_a_library_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "no-such-recording"
    assert main(["replay", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["validate-config", str(tmp_path / "nope.toml")]) in (1, 2)
    err = capsys.readouterr().err
    assert "nope.toml" in err and "Traceback" not in err


def test_eval_faces_manifest_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        load_manifest(tmp_path / "absent")
