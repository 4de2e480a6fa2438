"""The CI script: it must parse, and it must run the test command README gives a newcomer.

A mangled merge once left `.ci/run` with a syntax error, so nothing landed; these checks catch
that in `make test` instead of in CI after the session.
"""

import re
import shutil
import subprocess

import pytest

from edge.paths import REPO_ROOT

CI_SCRIPT = REPO_ROOT / ".ci" / "run"


def _readme_test_command() -> str:
    """The second of the two commands README.md starts with (the first code block)."""
    block = re.search(r"```\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no code block with the two commands"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands[:1] == ["make run"] and len(commands) == 2, commands
    return commands[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_ci_script_parses() -> None:
    result = subprocess.run(["bash", "-n", str(CI_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ci_script_is_executable() -> None:
    assert CI_SCRIPT.stat().st_mode & 0o111, ".ci/run must be executable"


def test_ci_script_ends_with_readmes_test_command() -> None:
    lines = [ln.strip() for ln in CI_SCRIPT.read_text().splitlines() if ln.strip()]
    code = [ln for ln in lines if not ln.startswith("#")]
    assert code[-1] == _readme_test_command() == "make test"
    # Exactly one place runs the tests; a doubled block is a sign of a bad merge.
    assert sum(ln == "make test" for ln in code) == 1
