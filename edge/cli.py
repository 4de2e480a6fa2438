"""`thermal-edge` command line. Subcommands live in edge/commands/<name>.py.

User errors -- ``edge.errors.UserError`` and its subclasses (bad config, missing or corrupt files,
bad arguments), and an OSError about a file the user named -- print one line, `error: ...`, and
exit 2, no traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import edge.commands
from edge.errors import UserError


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
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a file the user named (a socket, a pipe): a bug
            raise
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
