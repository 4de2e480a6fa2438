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
