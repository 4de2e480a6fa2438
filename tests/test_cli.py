"""CLI consistency (issue 12): ``--json`` is a switch that prints JSON on stdout in every command,
``--json-out PATH`` writes it to a file, and every command that reads a station config reports an
invalid one the same way (every problem on its own line, then the count, exit 2). Every subcommand's
description is whole (`simulate --help` and `eval --help` used to stop mid-sentence)."""
from __future__ import annotations

import argparse

import pytest

from edge.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, f"{prefix}{name} ")
    yield prefix.strip(), parser


COMMANDS = [(name, p) for name, p in _subcommands(build_parser()) if name]


@pytest.mark.parametrize("name, parser", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_json_is_a_print_switch_and_json_out_takes_a_path(name, parser):
    opts = {o: a for a in parser._actions for o in a.option_strings}
    if "--json" in opts:
        assert opts["--json"].nargs == 0 and opts["--json"].dest == "json", f"{name}: --json must be a switch"
    if "--json-out" in opts:
        assert opts["--json-out"].nargs is None and opts["--json-out"].dest == "json_out", name


def test_some_commands_print_and_some_write(tmp_path):
    names = {n for n, p in COMMANDS for a in p._actions if "--json" in a.option_strings}
    assert {"listen", "demo", "replay", "eval", "eval-faces", "eval-clinical", "import"} <= names
    names = {n for n, p in COMMANDS for a in p._actions if "--json-out" in a.option_strings}
    assert {"eval", "eval-faces", "eval-clinical", "import", "calibrate clinical", "bench"} <= names


BAD_CONFIG = """
[station]
id = "x"
colour = "red"
[decision]
threshold_c = 99
"""


@pytest.mark.parametrize("argv", [
    ["run", "--config", "{cfg}"],
    ["record", "--config", "{cfg}", "--out", "{tmp}/rec", "--seconds", "1"],
    ["demo", "sample_streams/walkthrough", "--config", "{cfg}"],
    ["replay", "sample_streams/walkthrough", "--config", "{cfg}"],
    ["eval-faces", "{tmp}", "--config", "{cfg}"],
], ids=lambda a: a[0])
def test_every_command_reports_every_config_error_alike(argv, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(BAD_CONFIG)
    assert main([a.format(cfg=cfg, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    problems = [line for line in err if line.startswith("error: ")]
    assert len(problems) >= 2, err  # both problems, not just the first
    assert any("station.colour" in line for line in problems) and any("decision.threshold_c" in line for line in problems)
    assert err[-1].startswith(f"{cfg}: {len(problems)} error(s); ")


def test_validate_config_prints_the_same_lines(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(BAD_CONFIG)
    assert main(["validate-config", str(cfg)]) == 1  # a checker: 1 = the file is invalid
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("error: ")]) >= 2
    assert err[-1].startswith(f"{cfg}: ") and "error(s)" in err[-1]


def test_every_description_is_a_whole_sentence():
    for name, sub in COMMANDS:
        d = sub.description
        if d:
            assert d.rstrip().endswith((".", ")")), f"`thermal-edge {name} --help` stops mid-sentence: {d!r}"
            assert "\n" not in d.strip() or d.count("`") % 2 == 0, name


@pytest.mark.slow
def test_progress_bar_on_stderr_only_when_asked_or_on_a_terminal(tmp_path, capsys):
    """Long commands draw a tqdm bar on stderr: with `--progress on`, or on a terminal (auto);
    never on stdout, and nothing when stderr is not a terminal (pytest's capture is not)."""
    from edge.cli import main
    from edge.progress import enabled, set_mode
    from tests.test_sim import TINY

    sc = tmp_path / "tiny.toml"
    sc.write_text(TINY.format(sensor=""))
    try:
        assert main(["simulate", str(sc), "--out", str(tmp_path / "a")]) == 0
        out, err = capsys.readouterr()
        assert "frame/s" not in err and "%|" not in err and not enabled()
        assert main(["--progress", "on", "simulate", str(sc), "--out", str(tmp_path / "b")]) == 0
        out, err = capsys.readouterr()
        assert "simulate tiny" in err and "%|" in err  # the bar, on stderr
        assert "%|" not in out
    finally:
        set_mode("auto")
