"""`thermal-edge` command line. Subcommands live in edge/commands/<name>.py.

User errors (bad config, missing or corrupt files) print one line, `error: ...`, and exit 2 --
no traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import edge.commands
from edge.errors import UserError


def user_error_types() -> tuple[type[BaseException], ...]:
    from edge.assets import AssetError
    from edge.config import ConfigError
    from edge.io.recording import RecordingError

    return (UserError, AssetError, RecordingError, ConfigError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thermal-edge", description=__doc__.splitlines()[0])
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                        help="progress bars on stderr for long commands: auto = only when stderr is a terminal")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(edge.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"edge.commands.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edge.progress import set_mode

    set_mode(args.progress)
    try:
        return int(args.func(args) or 0)
    except user_error_types() as e:
        msg = str(e) if not isinstance(e, FileNotFoundError) else f"{e.filename}: {e.strerror}"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m edge.cli` runs this file as __main__; the commands raise edge.cli.UserError,
    # a different class object from __main__.UserError, so dispatch through the real module.
    from edge.cli import main as _main

    sys.exit(_main())
