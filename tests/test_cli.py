"""The command line's own texts: every subcommand's description is whole (`simulate --help` and
`eval --help` used to stop mid-sentence)."""
from __future__ import annotations

import argparse

from edge.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _subparsers(sub, f"{prefix}{name} ")


def test_every_description_is_a_whole_sentence():
    for name, sub in _subparsers(build_parser()):
        d = sub.description
        if d:
            assert d.rstrip().endswith((".", ")")), f"`thermal-edge {name} --help` stops mid-sentence: {d!r}"
            assert "\n" not in d.strip() or d.count("`") % 2 == 0, name


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
