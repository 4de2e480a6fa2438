"""One UserError base: every error a user can fix inherits it, the CLI prints it as one line and
exits 2, and no library module imports the command line to get it."""
from __future__ import annotations

import ast

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
from edge.paths import REPO_ROOT
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


def test_no_module_but_the_cli_imports_the_cli():
    offenders = []
    for path in sorted((REPO_ROOT / "edge").rglob("*.py")):
        if path.name == "cli.py" and path.parent.name == "edge":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "edge.cli" or n.startswith("edge.cli.") for n in names):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == []
