"""`thermal-edge console --config console.toml`: the control-room web console (live alert queue,
acknowledgement and secondary screening, stations, history, statistics), subscribed to the feed.

`thermal-edge console adduser NAME --role operator` adds or updates a login;
`thermal-edge console demo` runs it on the bundled sample streams (what `make console` does).
"""
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from edge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("console", help="control-room web console: live alerts, acknowledgement, stations, history",
                       description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="console TOML (see config/console.example.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    cs = p.add_subparsers(dest="console_cmd", metavar="SUBCOMMAND")
    a = cs.add_parser("adduser", help="add a user (or change their password/role) in the users file")
    a.add_argument("name", help="login name (letters, digits, . _ -)")
    a.add_argument("--role", default="operator", choices=("viewer", "operator", "admin"),
                   help="viewer: sees; operator: also acknowledges and closes alerts; admin: everything (default operator)")
    a.add_argument("--config", dest="sub_config", type=Path, help="console TOML naming web.users_file")
    a.add_argument("--users", type=Path, help="users file (overrides the config's web.users_file)")
    a.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    a.add_argument("--delete", action="store_true", help="remove the user instead")
    d = cs.add_parser("demo", help="replay sample streams into local feeds and serve the console on them")
    d.add_argument("--port", type=int, default=8080, help="web port on 127.0.0.1 (default 8080)")
    d.add_argument("--dir", type=Path, default=Path("var/console-demo"), help="working folder (store, journals, users)")
    d.add_argument("--streams", nargs="*", default=None, help="sample streams to replay (default: a few bundled ones)")
    d.add_argument("--loop", action="store_true", help="keep replaying (new alerts every few seconds)")
    p.set_defaults(func=run)


def _config(path: Path | None):
    from edge.web.console.config import ConsoleConfig, load_console_config

    return load_console_config(path) if path else ConsoleConfig()


def adduser(args: argparse.Namespace) -> int:
    from edge.web.auth import Users

    cfg_path = args.sub_config or args.config
    users_file = args.users or Path(_config(cfg_path).web.users_file)
    users = Users(users_file)
    if args.delete:
        if not users.remove(args.name):
            raise UserError(f"{users_file}: no user {args.name!r}")
        print(f"{users_file}: removed {args.name}")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    new = users.set(args.name, args.role, password)
    print(f"{users_file}: {'added' if new else 'updated'} {args.name} ({args.role})")
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.console_cmd == "adduser":
        return adduser(args)
    if args.console_cmd == "demo":
        from edge.web.console.demo import run_demo

        return run_demo(args.dir, args.port, args.streams, loop=args.loop)
    if args.config is None:
        raise UserError("console: --config console.toml is required (see config/console.example.toml)")
    from edge.web.console.app import run_console

    run_console(_config(args.config))
    return 0
