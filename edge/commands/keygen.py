"""`thermal-edge keygen DIR`: create CURVE key pairs for the feed (zmq.auth certificates)."""
from __future__ import annotations

from edge.errors import UserError
from edge.feed.security import KeyFileError, create_keys


def register(sub) -> None:
    p = sub.add_parser("keygen", help="create CURVE key pairs (NAME.key public, NAME.key_secret private)",
                       description=__doc__.splitlines()[0])
    p.add_argument("dir", help="folder for the key files (created)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="key pair name (repeatable; default: server and client)")
    p.add_argument("--authorize", metavar="DIR",
                   help="also copy the new public keys into this allowlist folder (e.g. DIR/authorized)")
    p.set_defaults(func=run)


def run(args) -> int:
    names = args.name or ["server", "client"]
    try:
        created = create_keys(args.dir, names, args.authorize)
    except (KeyFileError, OSError) as e:
        raise UserError(str(e)) from None
    for path in created:
        print(f"created {path.with_suffix('.key')} (public) and {path} (secret: keep private)")
    if args.authorize:
        print(f"authorized: copied the public keys into {args.authorize}")
    return 0
